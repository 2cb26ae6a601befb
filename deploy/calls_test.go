package deploy

// What each function's code can do, read from the code itself: the AWS SDK
// operations it can call and the FLOWGATE_* settings it reads. The project's
// packages are built into SSA form (golang.org/x/tools/go/ssa) and walked
// from each function's main, the way a call graph by rapid type analysis
// goes: a method called through an interface is followed into every project
// type that the reachable code turns into an interface value. Calls on the
// SDK's clients, whether direct or through the small API interfaces of
// s3store, dynamoledger and publish, are the operations; the SDK's own code
// is not walked (its paginators count as the operation they page through).

import (
	"go/constant"
	"go/types"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"golang.org/x/tools/go/packages"
	"golang.org/x/tools/go/ssa"
	"golang.org/x/tools/go/ssa/ssautil"
)

const module = "github.com/flowgate/flowgate"

// codeFacts is what one function's code can do.
type codeFacts struct {
	Ops  map[string]bool // "s3:PutObject", "dynamodb:GetItem", "eventbridge:PutEvents"
	Env  map[string]bool // FLOWGATE_* names read
	Main string          // the main package's path
}

var (
	programOnce sync.Once
	program     *ssa.Program
	programPkgs map[string]*ssa.Package
	programErr  error
)

// loadProgram builds SSA for the functions and the shared packages, once.
func loadProgram(t testing.TB) (*ssa.Program, map[string]*ssa.Package) {
	t.Helper()
	programOnce.Do(func() {
		cfg := &packages.Config{Mode: packages.LoadSyntax, Dir: ".."}
		pkgs, err := packages.Load(cfg, "./functions/...", "./shared/...")
		if err != nil {
			programErr = err
			return
		}
		if packages.PrintErrors(pkgs) > 0 {
			programErr = errString("the packages do not type-check")
			return
		}
		prog, ssaPkgs := ssautil.Packages(pkgs, ssa.InstantiateGenerics)
		prog.Build()
		program, programPkgs = prog, map[string]*ssa.Package{}
		for _, p := range ssaPkgs {
			if p != nil {
				programPkgs[p.Pkg.Path()] = p
			}
		}
	})
	if programErr != nil {
		t.Fatalf("load the code: %v", programErr)
	}
	return program, programPkgs
}

type errString string

func (e errString) Error() string { return string(e) }

var (
	factsMu    sync.Mutex
	factsCache = map[string]codeFacts{}
)

// functionFacts analyses functions/<dir>.
func functionFacts(t testing.TB, dir string) codeFacts {
	t.Helper()
	factsMu.Lock()
	defer factsMu.Unlock()
	path := module + "/functions/" + dir
	if f, ok := factsCache[path]; ok {
		return f
	}
	prog, pkgs := loadProgram(t)
	main := pkgs[path]
	if main == nil || main.Pkg.Name() != "main" {
		t.Fatalf("%s is not a main package", path)
	}
	w := &walker{prog: prog, facts: codeFacts{Ops: map[string]bool{}, Env: map[string]bool{}, Main: path},
		seen: map[*ssa.Function]bool{}, types: map[types.Type]bool{}, invoked: map[*types.Func]*types.Interface{}}
	w.add(main.Func("main"))
	w.add(main.Func("init"))
	for len(w.queue) > 0 {
		fn := w.queue[len(w.queue)-1]
		w.queue = w.queue[:len(w.queue)-1]
		w.visit(fn)
	}
	if w.unmodelled != "" {
		t.Fatalf("%s: %s", path, w.unmodelled)
	}
	factsCache[path] = w.facts
	return w.facts
}

type walker struct {
	prog       *ssa.Program
	facts      codeFacts
	seen       map[*ssa.Function]bool
	queue      []*ssa.Function
	types      map[types.Type]bool              // project types made into interface values
	invoked    map[*types.Func]*types.Interface // interface methods called
	unmodelled string
}

func inProject(pkg *types.Package) bool {
	return pkg != nil && (pkg.Path() == module || strings.HasPrefix(pkg.Path(), module+"/"))
}

const sdkServices = "github.com/aws/aws-sdk-go-v2/service/"

// add queues a function of the project (or a wrapper the SSA builder made
// for one: a bound method, a thunk, an instantiation).
func (w *walker) add(fn *ssa.Function) {
	if fn == nil || w.seen[fn] || len(fn.Blocks) == 0 {
		return
	}
	if fn.Pkg != nil && !inProject(fn.Pkg.Pkg) {
		return
	}
	if fn.Pkg == nil && (fn.Object() == nil || !inProject(fn.Object().Pkg())) && fn.Synthetic == "" {
		return
	}
	w.seen[fn] = true
	w.queue = append(w.queue, fn)
}

func (w *walker) visit(fn *ssa.Function) {
	for _, anon := range fn.AnonFuncs {
		w.add(anon)
	}
	for _, b := range fn.Blocks {
		for _, instr := range b.Instrs {
			for _, op := range instr.Operands(nil) {
				if op == nil || *op == nil {
					continue
				}
				if f, ok := (*op).(*ssa.Function); ok {
					w.add(f)
				}
			}
			switch in := instr.(type) {
			case ssa.CallInstruction:
				w.call(in.Common())
			case *ssa.MakeInterface:
				w.madeInterface(in.X.Type(), in.Type())
			}
		}
	}
}

var (
	paginator = regexp.MustCompile(`^New(\w+)Paginator$`)
	envGetter = map[string]bool{"String": true, "Int": true, "Duration": true, "List": true, "Level": true, "Size": true}
)

func (w *walker) call(c *ssa.CallCommon) {
	w.envRead(c)
	if c.IsInvoke() {
		m := c.Method
		if svc, ok := sdkOperation(m.Type().(*types.Signature)); ok {
			w.facts.Ops[svc+":"+m.Name()] = true
			return
		}
		iface := c.Value.Type().Underlying().(*types.Interface)
		if _, done := w.invoked[m]; !done {
			w.invoked[m] = iface
			for t := range w.types {
				w.dispatch(t, m, iface)
			}
		}
		return
	}
	callee := c.StaticCallee()
	if callee == nil {
		return
	}
	if obj, ok := callee.Object().(*types.Func); ok && obj.Pkg() != nil && strings.HasPrefix(obj.Pkg().Path(), sdkServices) {
		svc := strings.Split(strings.TrimPrefix(obj.Pkg().Path(), sdkServices), "/")[0]
		sig := obj.Type().(*types.Signature)
		switch {
		case sig.Recv() != nil && isClient(sig.Recv().Type()):
			if _, ok := sdkOperation(sig); ok {
				w.facts.Ops[svc+":"+obj.Name()] = true
			}
		case paginator.MatchString(obj.Name()):
			w.facts.Ops[svc+":"+paginator.FindStringSubmatch(obj.Name())[1]] = true
		case strings.Contains(obj.Name(), "Waiter") || strings.HasPrefix(obj.Name(), "Presign"):
			w.unmodelled = "calls " + obj.FullName() + ", which calls operations this analysis does not see"
		}
		return
	}
	w.add(callee)
}

// envRead records FLOWGATE_* names read: config.Env's getters, os.Getenv,
// os.LookupEnv, or a getenv function value called with a constant.
func (w *walker) envRead(c *ssa.CallCommon) {
	arg := c.Args
	if !c.IsInvoke() && c.Signature().Recv() != nil && len(arg) > 0 {
		arg = arg[1:] // the receiver
	}
	if len(arg) == 0 {
		return
	}
	k, ok := arg[0].(*ssa.Const)
	if !ok || k.Value == nil || k.Value.Kind() != constant.String {
		return
	}
	name := constant.StringVal(k.Value)
	if !strings.HasPrefix(name, "FLOWGATE_") {
		return
	}
	reads := false
	if callee := c.StaticCallee(); callee != nil {
		if obj, ok := callee.Object().(*types.Func); ok && obj.Pkg() != nil {
			full := obj.Pkg().Path() + "." + obj.Name()
			recv := obj.Type().(*types.Signature).Recv()
			reads = full == "os.Getenv" || full == "os.LookupEnv" ||
				(recv != nil && obj.Pkg().Path() == module+"/shared/config" && envGetter[obj.Name()])
		}
	} else if !c.IsInvoke() {
		sig := c.Signature()
		reads = sig.Params().Len() == 1 && sig.Results().Len() == 1 &&
			types.Identical(sig.Params().At(0).Type(), types.Typ[types.String]) &&
			types.Identical(sig.Results().At(0).Type(), types.Typ[types.String])
	}
	if reads {
		w.facts.Env[name] = true
	}
}

// madeInterface follows a project type that became an interface value: its
// methods can now be called through interfaces. Code outside the project
// (net/http calling a Handler, fmt or slog an error's Error) is not walked,
// so the methods of the interface it was converted to, and the few that
// the standard library looks for by assertion, count as called.
func (w *walker) madeInterface(t, to types.Type) {
	if !projectNamed(t) || w.types[t] {
		return
	}
	w.types[t] = true
	for m, iface := range w.invoked {
		w.dispatch(t, m, iface)
	}
	toNamed, _ := types.Unalias(to).(*types.Named)
	external := toNamed == nil || !inProject(toNamed.Obj().Pkg())
	if !external {
		return
	}
	ms := w.prog.MethodSets.MethodSet(t)
	iface := to.Underlying().(*types.Interface)
	for i := range ms.Len() {
		sel := ms.At(i)
		name := sel.Obj().Name()
		if hasMethod(iface, name) || byAssertion[name] {
			w.add(w.prog.MethodValue(sel))
		}
	}
}

var byAssertion = map[string]bool{"Error": true, "String": true, "Unwrap": true, "Is": true, "As": true,
	"MarshalJSON": true, "MarshalText": true, "LogValue": true, "Format": true, "GoString": true}

func hasMethod(iface *types.Interface, name string) bool {
	for i := range iface.NumMethods() {
		if iface.Method(i).Name() == name {
			return true
		}
	}
	return false
}

func (w *walker) dispatch(t types.Type, m *types.Func, iface *types.Interface) {
	if !types.Implements(t, iface) {
		return
	}
	sel := w.prog.MethodSets.MethodSet(t).Lookup(m.Pkg(), m.Name())
	if sel != nil {
		w.add(w.prog.MethodValue(sel))
	}
}

func projectNamed(t types.Type) bool {
	if p, ok := t.(*types.Pointer); ok {
		t = p.Elem()
	}
	n, ok := types.Unalias(t).(*types.Named)
	return ok && inProject(n.Obj().Pkg())
}

func isClient(t types.Type) bool {
	p, ok := t.(*types.Pointer)
	if !ok {
		return false
	}
	n, ok := p.Elem().(*types.Named)
	return ok && n.Obj().Name() == "Client" && strings.HasPrefix(n.Obj().Pkg().Path(), sdkServices)
}

// sdkOperation tells an SDK operation by its shape:
// (context.Context, *<svc>.<Op>Input, ...func(*<svc>.Options)), and returns
// the service's package name.
func sdkOperation(sig *types.Signature) (string, bool) {
	if sig.Params().Len() != 3 || !sig.Variadic() {
		return "", false
	}
	in, ok := sig.Params().At(1).Type().(*types.Pointer)
	if !ok {
		return "", false
	}
	n, ok := in.Elem().(*types.Named)
	if !ok || !strings.HasPrefix(n.Obj().Pkg().Path(), sdkServices) || !strings.HasSuffix(n.Obj().Name(), "Input") {
		return "", false
	}
	return n.Obj().Pkg().Name(), true
}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
