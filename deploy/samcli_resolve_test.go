package deploy

// A model of how `sam local start-api` reads the template, so that the
// tests can prove the template against SAM CLI's rules without SAM CLI
// (CI cannot fetch it) and without Docker. CloudFormation's rules are in
// cfn_test.go; SAM CLI follows its own, and what deploys fine can stop
// `sam local start-api` before it serves a request.
//
// SAM CLI (1.164.0) runs SAM's plugins (Globals, the implicit APIs of
// functions' Api events), then resolves intrinsics with a resolver of its
// own (this file), then reads each AWS::Serverless::Api's OpenAPI body with
// a parser of its own (samcli_routes_test.go). The rules were read in its
// source (samcli/lib/intrinsic_resolver, samcli/commands/local/lib/swagger,
// samcli/lib/providers) and checked by running that code on this template
// and on the cases of TestSAMLocalModel (samcli_check_test.go).
//
// Resolving
//
//   - A name is looked up first among the parameter values (the template's
//     defaults, then --parameter-overrides) and the pseudo parameters,
//     which have fixed local values (account 123456789012, region
//     us-east-1 unless the command's region says otherwise, stack name
//     "local"); an empty value there does not count, and the parameter's
//     Default is used instead. Any other name refers to itself: Ref X is
//     "X". Fn::GetAtt X.Arn is the ARN of a Lambda function named after X
//     (its FunctionName, or the logical ID), whatever X is; no other
//     attribute resolves.
//   - AWS::NoValue gives nothing (Python's None) the first time; SAM CLI
//     then stores that nothing among the symbols and fails on every later
//     AWS::NoValue, in whatever resource. Resources are resolved in the
//     template's order, so in template.yaml every AWS::NoValue after the
//     first role's fails.
//   - Resolving nothing is an error. Fn::If resolves its three arguments,
//     both branches included, before it looks at the condition, and then
//     each branch again: a branch that is AWS::NoValue (or a list holding
//     it) makes the whole Fn::If fail, whichever branch the condition
//     picks.
//   - Errors are not reported. The nearest enclosing mapping keeps the
//     failing key's value exactly as the template wrote it, intrinsics and
//     all, and resolution carries on; a list passes the error up to the
//     mapping that holds it.
//   - Fn::Sub replaces ${AWS::...}, ${Name} and ${Name.Attribute}; a name
//     it cannot resolve becomes "$Name.Attribute". A variable given in the
//     Sub's own mapping is resolved, and then its value is looked up as a
//     name once more (a plain value names itself, so "*" stays "*").
//   - Conditions are evaluated only where an Fn::If names one. A
//     resource's own Condition is never evaluated: every resource stays.

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// samResolver resolves a template the way SAM CLI's local commands do.
// Values are those of readTemplate; nil is SAM CLI's None.
type samResolver struct {
	raw     map[string]any
	symbols map[string]any // parameter values and pseudo parameters
	// noValueSeen: the first AWS::NoValue has been resolved; later ones fail.
	noValueSeen bool
	// unmodelled is set when the template uses something this model does
	// not know: the test must fail rather than guess.
	unmodelled error
}

// errSAMNothing is what resolving AWS::NoValue's None a second time gives.
var errSAMNothing = errors.New("nothing to resolve (AWS::NoValue)")

// samPseudo are SAM CLI's local pseudo parameter values.
var samPseudo = map[string]any{
	"AWS::AccountId": "123456789012", "AWS::Partition": "aws", "AWS::Region": "us-east-1",
	"AWS::StackName": "local", "AWS::URLSuffix": "localhost",
	"AWS::StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/local/00000000-0000-0000-0000-000000000000",
}

// samResolve resolves every resource of a template (its YAML text) for
// the given parameter overrides (which may also set AWS::Region, as
// --region does) and returns them by logical ID.
func samResolve(t testing.TB, name string, src []byte, overrides map[string]string) map[string]map[string]any {
	t.Helper()
	raw := parseTemplate(t, name, src)
	r := newSAMResolver(raw, overrides)
	r.checkModelled()
	out := map[string]map[string]any{}
	for _, id := range resourceOrder(t, src) {
		seen := r.noValueSeen
		v, _ := r.resolve(mapOf(raw["Resources"])[id])
		out[id] = mapOf(v)
		// The order of keys within a resource is lost here: which of the
		// first resource's AWS::NoValues resolves is unknown, so its values
		// cannot be trusted. No API may be that resource.
		if !seen && r.noValueSeen && str(out[id]["Type"]) == "AWS::Serverless::Api" {
			r.notModelled("%s holds the template's first AWS::NoValue", id)
		}
	}
	if r.unmodelled != nil {
		t.Fatalf("SAM CLI model: %s: %v", name, r.unmodelled)
	}
	return out
}

// resourceOrder lists the logical IDs of a template's resources in the
// order the file writes them.
func resourceOrder(t testing.TB, src []byte) []string {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil || len(doc.Content) == 0 {
		t.Fatalf("resource order: %v", err)
	}
	var ids []string
	top := doc.Content[0]
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value == "Resources" {
			res := top.Content[i+1]
			for j := 0; j < len(res.Content); j += 2 {
				ids = append(ids, res.Content[j].Value)
			}
		}
	}
	return ids
}

func newSAMResolver(raw map[string]any, overrides map[string]string) *samResolver {
	r := &samResolver{raw: raw, symbols: map[string]any{}}
	for k, v := range samPseudo {
		r.symbols[k] = v
	}
	for name, p := range mapOf(raw["Parameters"]) {
		if d, ok := mapOf(p)["Default"]; ok {
			r.symbols[name] = d
		}
	}
	for k, v := range overrides {
		r.symbols[k] = v
	}
	return r
}

// checkModelled refuses templates that SAM's plugins would change in ways
// this model leaves out: Globals for APIs, and implicit APIs made from
// functions' Api events.
func (r *samResolver) checkModelled() {
	for k := range mapOf(r.raw["Globals"]) {
		if k != "Function" {
			r.notModelled("Globals.%s", k)
		}
	}
	for id, res := range mapOf(r.raw["Resources"]) {
		for name, ev := range mapOf(get(res, "Properties", "Events")) {
			if typ := str(get(ev, "Type")); typ == "Api" || typ == "HttpApi" {
				r.notModelled("%s: event %s of type %s (an implicit API)", id, name, typ)
			}
		}
	}
}

func (r *samResolver) notModelled(format string, args ...any) error {
	err := fmt.Errorf("not modelled: "+format, args...)
	if r.unmodelled == nil {
		r.unmodelled = err
	}
	return err
}

// resolve resolves v; an error is what SAM CLI would raise (and, inside a
// mapping, swallow).
func (r *samResolver) resolve(v any) (any, error) {
	switch x := v.(type) {
	case nil:
		return nil, errSAMNothing
	case []any:
		out := make([]any, 0, len(x))
		for _, e := range x {
			re, err := r.resolve(e)
			if err != nil {
				return nil, err
			}
			out = append(out, re)
		}
		return out, nil
	case map[string]any:
		if len(x) == 1 {
			for k, arg := range x {
				if fn := r.function(k); fn != nil {
					return fn(arg)
				}
			}
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			re, err := r.resolve(e)
			if err != nil {
				re = e // left as the template wrote it
			}
			out[k] = re
		}
		return out, nil
	}
	return v, nil
}

// function returns the handler of an intrinsic function SAM CLI knows, or
// nil: any other key (Condition, Fn::Cidr ...) is a plain mapping key to it.
func (r *samResolver) function(name string) func(any) (any, error) {
	switch name {
	case "Ref":
		return r.ref
	case "Fn::GetAtt":
		return r.getAtt
	case "Fn::Sub":
		return r.sub
	case "Fn::If":
		return r.fnIf
	case "Fn::Equals":
		return r.equals
	case "Fn::Not":
		return r.not
	case "Fn::And":
		return func(arg any) (any, error) { return r.andOr(arg, true) }
	case "Fn::Or":
		return func(arg any) (any, error) { return r.andOr(arg, false) }
	case "Fn::Select":
		return r.selectFn
	case "Fn::Split":
		return r.split
	case "Fn::Join":
		return r.join
	case "Fn::ImportValue":
		return func(any) (any, error) { return nil, errors.New("Fn::ImportValue is not supported locally") }
	case "Fn::Base64", "Fn::FindInMap", "Fn::GetAZs", "Fn::Transform":
		return func(any) (any, error) { return nil, r.notModelled("%s", name) }
	}
	return nil
}

// args resolves an intrinsic's argument list and checks its length (n < 0:
// any).
func (r *samResolver) args(fn string, arg any, n int) ([]any, error) {
	v, err := r.resolve(arg)
	if err != nil {
		return nil, err
	}
	l, ok := v.([]any)
	if !ok || n >= 0 && len(l) != n {
		return nil, fmt.Errorf("%s: want %d arguments, got %v", fn, n, v)
	}
	return l, nil
}

func (r *samResolver) resolveString(v any) (string, error) {
	re, err := r.resolve(v)
	if err != nil {
		return "", err
	}
	s, ok := re.(string)
	if !ok {
		return "", fmt.Errorf("%v is not a string", re)
	}
	return s, nil
}

func (r *samResolver) ref(arg any) (any, error) {
	name, err := r.resolveString(arg)
	if err != nil {
		return nil, err
	}
	return r.symbol(name, "Ref", false)
}

func (r *samResolver) getAtt(arg any) (any, error) {
	l, err := r.args("Fn::GetAtt", arg, 2)
	if err != nil {
		return nil, err
	}
	id, ok1 := l[0].(string)
	attr, ok2 := l[1].(string)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("Fn::GetAtt %v", l)
	}
	return r.symbol(id, attr, false)
}

// symbol resolves Ref (attr "Ref") or Fn::GetAtt of name. lenient is
// Fn::Sub's way: an unknown symbol becomes "$name.attr" instead of an error.
func (r *samResolver) symbol(name, attr string, lenient bool) (any, error) {
	if v, ok := r.symbols[name]; ok && attr == "Ref" && truthy(v) {
		if s, isStr := v.(string); isStr && str(get(r.raw, "Parameters", name, "Type")) == "CommaDelimitedList" {
			var out []any
			for _, e := range strings.Split(s, ",") {
				out = append(out, strings.TrimSpace(e))
			}
			return out, nil
		}
		return v, nil
	}
	switch name {
	case "AWS::NoValue":
		if r.noValueSeen {
			return nil, errors.New("AWS::NoValue after the first")
		}
		r.noValueSeen = true
		return nil, nil
	case "AWS::NotificationArn":
		return nil, errors.New("AWS::NotificationArn has no local value")
	}
	if v, ok := samPseudo[name]; ok {
		return v, nil // overridden with an empty value
	}
	if d := get(r.raw, "Parameters", name, "Default"); d != nil {
		return d, nil
	}
	switch typ := str(get(r.raw, "Resources", name, "Type")); {
	case typ == "AWS::ApiGateway::RestApi" && attr == "RootResourceId":
		return "/", nil
	case (typ == "AWS::Lambda::LayerVersion" || typ == "AWS::Serverless::LayerVersion") && attr == "Ref":
		return map[string]any{"Ref": name}, nil
	case typ == "AWS::Lambda::Alias" && attr == "Ref":
		return nil, r.notModelled("Ref of the alias %s", name)
	}
	switch attr {
	case "Ref":
		return name, nil
	case "Arn":
		return r.lambdaArn(name)
	}
	if lenient {
		return "$" + name + "." + attr, nil
	}
	return nil, fmt.Errorf("%s.%s cannot be resolved locally", name, attr)
}

// lambdaArn is SAM CLI's ARN for any resource's Arn attribute.
func (r *samResolver) lambdaArn(id string) (any, error) {
	region := fmt.Sprint(r.symbols["AWS::Region"])
	partition := "aws"
	if strings.Contains(region, "cn") {
		partition = "aws-cn"
	} else if strings.Contains(region, "gov") {
		partition = "aws-us-gov"
	}
	name := id
	switch fn := get(r.raw, "Resources", id, "Properties", "FunctionName").(type) {
	case nil:
	case string:
		name = fn
	default:
		return nil, r.notModelled("FunctionName %v of %s", fn, id)
	}
	return "arn:" + partition + ":lambda:" + region + ":" + fmt.Sprint(r.symbols["AWS::AccountId"]) + ":function:" + name, nil
}

// samSubName finds the names Fn::Sub replaces: ${AWS::anything} or
// ${Letters} or ${Letters.Letters} (letters and digits only).
var samSubName = regexp.MustCompile(`\$\{(AWS::.*?|[A-Za-z0-9]*\.?[A-Za-z0-9]*)\}`)

func (r *samResolver) sub(arg any) (any, error) {
	text, vars := arg, any(map[string]any{})
	if l, ok := arg.([]any); ok {
		if len(l) != 2 {
			return nil, fmt.Errorf("Fn::Sub %v", arg)
		}
		text, vars = l[0], l[1]
	} else if _, ok := arg.(string); !ok {
		return nil, fmt.Errorf("Fn::Sub %v", arg)
	}
	s, err := r.resolveString(text)
	if err != nil {
		return nil, err
	}
	if _, ok := vars.(map[string]any); !ok {
		return nil, fmt.Errorf("Fn::Sub variables %v", vars)
	}
	rv, err := r.resolve(vars)
	if err != nil {
		return nil, err
	}
	out := s
	for _, m := range samSubName.FindAllStringSubmatch(s, -1) {
		item := any(m[1])
		if v, ok := mapOf(rv)[m[1]]; ok {
			item = v
		}
		name, ok := item.(string)
		if !ok {
			return nil, fmt.Errorf("Fn::Sub variable %s is %v", m[1], item)
		}
		id, attr := name, "Ref"
		if i := strings.LastIndex(name, "."); i >= 0 {
			id, attr = name[:i], name[i+1:]
		}
		val, err := r.symbol(id, attr, true)
		if err != nil {
			return nil, err
		}
		text, err := r.pyStr(val)
		if err != nil {
			return nil, err
		}
		out = strings.ReplaceAll(out, m[0], text)
	}
	return out, nil
}

// pyStr is how Python prints the scalar values Fn::Sub puts in a string.
func (r *samResolver) pyStr(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case nil:
		return "None", nil
	case bool:
		if x {
			return "True", nil
		}
		return "False", nil
	case int:
		return strconv.Itoa(x), nil
	}
	return "", r.notModelled("Fn::Sub of %v", v)
}

func (r *samResolver) fnIf(arg any) (any, error) {
	l, err := r.args("Fn::If", arg, 3) // both branches, before the condition
	if err != nil {
		return nil, err
	}
	name, err := r.resolveString(l[0])
	if err != nil {
		return nil, err
	}
	yes, err := r.resolve(l[1])
	if err != nil {
		return nil, err
	}
	no, err := r.resolve(l[2])
	if err != nil {
		return nil, err
	}
	b, err := r.condition(name)
	if err != nil {
		return nil, err
	}
	if b {
		return yes, nil
	}
	return no, nil
}

func (r *samResolver) condition(name string) (bool, error) {
	def, ok := get(r.raw, "Conditions", name).(map[string]any)
	if !ok {
		return false, fmt.Errorf("no condition %s", name)
	}
	v, err := r.resolve(def)
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("condition %s is %v, not a boolean", name, v)
	}
	return b, nil
}

func (r *samResolver) equals(arg any) (any, error) {
	l, err := r.args("Fn::Equals", arg, 2)
	if err != nil {
		return nil, err
	}
	a, err := r.resolve(l[0])
	if err != nil {
		return nil, err
	}
	b, err := r.resolve(l[1])
	if err != nil {
		return nil, err
	}
	return reflect.DeepEqual(a, b), nil
}

// boolArg is an argument of Fn::Not, Fn::And or Fn::Or: {"Condition": name}
// or anything that resolves to a boolean.
func (r *samResolver) boolArg(v any) (bool, error) {
	if c, ok := mapOf(v)["Condition"]; ok {
		name, ok := c.(string)
		if !ok {
			return false, fmt.Errorf("Condition %v", c)
		}
		return r.condition(name)
	}
	re, err := r.resolve(v)
	if err != nil {
		return false, err
	}
	b, ok := re.(bool)
	if !ok {
		return false, fmt.Errorf("%v is not a boolean", re)
	}
	return b, nil
}

func (r *samResolver) not(arg any) (any, error) {
	l, err := r.args("Fn::Not", arg, 1)
	if err != nil {
		return nil, err
	}
	b, err := r.boolArg(l[0])
	return !b, err
}

func (r *samResolver) andOr(arg any, all bool) (any, error) {
	l, err := r.args("Fn::And/Or", arg, -1)
	if err != nil {
		return nil, err
	}
	for _, e := range l {
		b, err := r.boolArg(e)
		if err != nil {
			return nil, err
		}
		if b != all {
			return !all, nil
		}
	}
	return all, nil
}

func (r *samResolver) selectFn(arg any) (any, error) {
	l, err := r.args("Fn::Select", arg, 2)
	if err != nil {
		return nil, err
	}
	i, ok := l[0].(int)
	if !ok {
		return nil, fmt.Errorf("Fn::Select index %v", l[0])
	}
	items, err := r.resolve(l[1])
	if err != nil {
		return nil, err
	}
	list, ok := items.([]any)
	if !ok {
		return nil, fmt.Errorf("Fn::Select of %v", items)
	}
	if list, err = r.args("Fn::Select", list, -1); err != nil {
		return nil, err
	}
	if i < 0 || i >= len(list) {
		return nil, fmt.Errorf("Fn::Select %d of %v", i, list)
	}
	return list[i], nil
}

func (r *samResolver) split(arg any) (any, error) {
	l, err := r.args("Fn::Split", arg, 2)
	if err != nil {
		return nil, err
	}
	sep, ok := l[0].(string)
	if !ok || sep == "" {
		return nil, fmt.Errorf("Fn::Split delimiter %v", l[0])
	}
	s, err := r.resolveString(l[1])
	if err != nil {
		return nil, err
	}
	var out []any
	for _, p := range strings.Split(s, sep) {
		out = append(out, p)
	}
	return out, nil
}

func (r *samResolver) join(arg any) (any, error) {
	l, err := r.args("Fn::Join", arg, 2)
	if err != nil {
		return nil, err
	}
	sep, ok := l[0].(string)
	if !ok {
		return nil, fmt.Errorf("Fn::Join delimiter %v", l[0])
	}
	values, err := r.args("Fn::Join", l[1], -1)
	if err != nil {
		return nil, err
	}
	var parts []string
	for _, v := range values {
		s, err := r.resolveString(v)
		if err != nil {
			return nil, err
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, sep), nil
}

// truthy is Python's truth of a value.
func truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case string:
		return x != ""
	case bool:
		return x
	case int:
		return x != 0
	case float64:
		return x != 0
	case []any:
		return len(x) > 0
	case map[string]any:
		return len(x) > 0
	}
	return true
}
