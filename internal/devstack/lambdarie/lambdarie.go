// Package lambdarie runs a flowgate Lambda function the way Lambda runs it:
// its real `bootstrap` (built from functions/<name> with the release flags)
// under the AWS Lambda Runtime Interface Emulator (RIE), the runtime API that
// SAM CLI runs inside its containers. Tests, the benchmark and `make dev` use
// it to exercise what in-process calls skip: the binary's init, its
// environment, aws-lambda-go's runtime loop and RIE's payload limit.
//
// One Instance is one RIE process running one function instance, like one
// Lambda execution environment: it serves one invocation at a time (Invoke
// queues the others) and inits the function on its first invocation, as
// Lambda does a cold start. Several instances of one function are several
// independent processes sharing nothing but their environment's servers.
//
//	inst, err := lambdarie.Start(ctx, lambdarie.Options{Function: "upload", Env: env})
//	defer inst.Stop()
//	out, err := inst.Invoke(ctx, eventJSON) // out is the function's raw JSON answer
//
// RIE listens on two free 127.0.0.1 ports per instance (its invoke API and
// the runtime API the bootstrap talks to), never on its default 0.0.0.0.
// Stop ends RIE and the bootstrap; if the process that started them dies
// first, the kernel kills RIE and the bootstrap exits with it.
//
// RIE is installed at its pinned version by localaws.EnsureRIE (`make test`
// and `make dev` run it through scripts/ensure-aws-servers.sh).
package lambdarie

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/flowgate/flowgate/internal/devstack/localaws"
	"github.com/flowgate/flowgate/internal/proc"
)

// Options says which function to run and with what environment.
type Options struct {
	// Function is the directory under functions/: "upload", "assemble",
	// "authorizer" or "consumer".
	Function string
	// Env is the function's configuration (FLOWGATE_*, the AWS SDK's
	// endpoints and credentials), "KEY=value" each, later ones winning.
	// The function sees only these and what Lambda itself sets
	// (AWS_LAMBDA_FUNCTION_NAME and the like, PATH, LANG, TZ), not the
	// environment of the process that starts it.
	Env []string
	// Name is the function's name (AWS_LAMBDA_FUNCTION_NAME); empty means
	// "flowgate-" + Function.
	Name string
	// MemoryMB and Timeout are what the template gives the function; 0
	// means 1024 MB and 30 s. RIE answers an invocation that runs past
	// Timeout with a timeout error.
	MemoryMB int
	Timeout  time.Duration
	// Output, if set, also receives everything RIE and the function print,
	// as they print it (Logs keeps the recent part in any case).
	Output io.Writer
}

// Instance is one running function instance under RIE.
type Instance struct {
	function  string
	bootstrap string
	proc      *proc.Proc
	invokeURL string
	client    *http.Client
	dir       string        // holds the output file; removed by Stop
	output    string        // RIE's and the function's stdout and stderr
	followed  chan struct{} // closed when the Output follower is done

	final string // the logs as Stop left them

	turn     chan struct{} // holds a token while an invocation runs
	stopped  chan struct{}
	stopOnce sync.Once
}

// The invoke path RIE serves (the Lambda Invoke API's, function "function").
const invokePath = "/2015-03-31/functions/function/invocations"

// maxResponse bounds what Invoke reads back: RIE refuses a response over
// 6 MiB + 100 bytes, as Lambda does.
const maxResponse = 8 << 20

// Start builds the function's bootstrap if this process has not yet (see
// Bootstrap), installs RIE if needed, starts RIE with it on free 127.0.0.1
// ports and returns once RIE accepts invocations. The function itself starts
// on the first Invoke. The caller must call Stop.
func Start(ctx context.Context, opt Options) (*Instance, error) {
	for _, kv := range opt.Env {
		if strings.HasPrefix(kv, "AWS_LAMBDA_MAX_CONCURRENCY=") {
			// RIE would switch to its Lambda Managed Instances mode, where
			// one environment runs several invocations at once.
			return nil, errors.New("lambdarie: AWS_LAMBDA_MAX_CONCURRENCY is not supported: one instance runs one invocation at a time")
		}
	}
	progress := opt.Output
	if progress == nil {
		progress = os.Stderr
	}
	rie, err := localaws.EnsureRIE(ctx, progress)
	if err != nil {
		return nil, err
	}
	bin, err := Bootstrap(ctx, opt.Function)
	if err != nil {
		return nil, err
	}
	env := functionEnv(opt)

	// A free port can be taken between finding it and RIE binding it; RIE
	// then exits at once, and we try others.
	var last error
	for attempt := 0; attempt < 3; attempt++ {
		api, runtimeAPI, err := freeAddrs()
		if err != nil {
			return nil, err
		}
		inst := &Instance{
			function: opt.Function, bootstrap: bin,
			invokeURL: "http://" + api + invokePath,
			client:    &http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 1}},
			followed:  make(chan struct{}),
			turn:      make(chan struct{}, 1),
			stopped:   make(chan struct{}),
		}
		if inst.dir, err = os.MkdirTemp("", "flowgate-rie-"); err != nil {
			return nil, err
		}
		// Output goes to a file, not a pipe: RIE and the bootstrap (which
		// inherits RIE's stdout) write into it directly, so what either
		// printed before RIE answered an invocation is there when Invoke
		// returns.
		inst.output = filepath.Join(inst.dir, "output.log")
		inst.proc, err = proc.Start(proc.Options{
			Name: "RIE", Bin: rie, Args: []string{"--runtime-interface-emulator-address", api, "--runtime-api-address", runtimeAPI, bin},
			// The bootstrap's working directory is its own directory, as
			// /var/task is on Lambda.
			Dir: filepath.Dir(bin), Env: env, Isolated: true,
			LogFile: inst.output, LogLimit: maxLogs,
		})
		if err != nil {
			os.RemoveAll(inst.dir)
			return nil, fmt.Errorf("lambdarie: %w", err)
		}
		if opt.Output != nil {
			go inst.follow(opt.Output)
		} else {
			close(inst.followed)
		}
		last = inst.proc.WaitReady(ctx, 30*time.Second, func() bool {
			c, err := net.DialTimeout("tcp", api, time.Second)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
		if last == nil {
			return inst, nil
		}
		inst.Stop()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	return nil, fmt.Errorf("lambdarie: %w", last)
}

// functionEnv is RIE's environment, which RIE hands on to the function:
// what Lambda sets for every function, then the caller's.
func functionEnv(opt Options) []string {
	name := opt.Name
	if name == "" {
		name = "flowgate-" + opt.Function
	}
	mem, timeout := opt.MemoryMB, opt.Timeout
	if mem <= 0 {
		mem = 1024
	}
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	env := []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"LANG=en_US.UTF-8",
		"TZ=:UTC",
		"AWS_LAMBDA_FUNCTION_NAME=" + name,
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=" + strconv.Itoa(mem),
		"AWS_LAMBDA_FUNCTION_TIMEOUT=" + strconv.Itoa(int((timeout+time.Second-1)/time.Second)),
		"AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
	}
	return append(env, opt.Env...)
}

// Pid is the RIE process's id; the function's bootstrap runs as its child.
func (i *Instance) Pid() int { return i.proc.Pid() }

// Bootstraps lists the ids of the function's processes RIE has started (one
// once the first invocation began; none elsewhere than on Linux).
func (i *Instance) Bootstraps() []int { return proc.Children(i.Pid()) }

// ErrStopped is what Invoke returns once Stop was called.
var ErrStopped = errors.New("lambdarie: the instance is stopped")

// FunctionError is an error the function's handler returned (or a panic
// aws-lambda-go caught), as RIE reports it: a 200 whose body is
// {"errorMessage": ..., "errorType": ...} instead of the handler's answer
// (RIE sends no X-Amz-Function-Error header, unlike Lambda's Invoke API).
// An invocation that ran past the timeout is one too, with RIE's message
// and no type.
type FunctionError struct {
	Type    string `json:"errorType"`
	Message string `json:"errorMessage"`
	// Payload is RIE's answer as it came.
	Payload []byte `json:"-"`
}

func (e *FunctionError) Error() string {
	if e.Type == "" {
		return "lambdarie: function error: " + e.Message
	}
	return "lambdarie: function error " + e.Type + ": " + e.Message
}

// Invoke sends payload (a raw JSON event) to the function and returns its
// raw JSON answer. The function's own failure is a *FunctionError; a function
// that could not start or crashed, RIE not answering, and ctx ending are
// other errors.
//
// Invoke is safe for concurrent use, and queues: an instance runs one
// invocation at a time, and a call waits (until ctx ends) for the ones
// before it. If ctx ends while the function runs, Invoke returns ctx.Err()
// at once but the invocation runs to its end, as on Lambda, and the next
// one waits for it. RIE passes the function at most 6 MiB + 100 bytes of
// payload: a longer one arrives cut short (the function then fails to parse
// it), so a caller that emulates API Gateway must refuse it first.
func (i *Instance) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	select {
	case i.turn <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-i.stopped:
		return nil, ErrStopped
	}
	type result struct {
		body []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		defer func() { <-i.turn }()
		body, err := i.invoke(payload)
		done <- result{body, err}
	}()
	select {
	case r := <-done:
		return r.body, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (i *Instance) invoke(payload []byte) ([]byte, error) {
	// Not the caller's context: an invocation, once sent, runs to its end
	// (Stop ends it by ending RIE).
	req, err := http.NewRequest(http.MethodPost, i.invokeURL, bytes.NewReader(payload))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := i.client.Do(req)
	if err != nil {
		select {
		case <-i.stopped:
			return nil, ErrStopped
		default:
		}
		return nil, fmt.Errorf("lambdarie: %s: invoke: %w\n%s", i.function, err, i.tail())
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, fmt.Errorf("lambdarie: %s: read the answer: %w", i.function, err)
	}
	if resp.StatusCode != http.StatusOK {
		// 502 when the function could not start or exited during the
		// invocation; RIE says why in its log, not in the answer.
		return nil, fmt.Errorf("lambdarie: %s: RIE answered %s %q: the function failed to start or crashed\n%s",
			i.function, resp.Status, body, i.tail())
	}
	if fe := functionError(body); fe != nil {
		return nil, fe
	}
	return body, nil
}

// functionError recognises RIE's report of a failed invocation: an object of
// only errorMessage, errorType (and stackTrace), or RIE's plain-text
// timeout. None of flowgate's handlers answers anything like either.
func functionError(body []byte) *FunctionError {
	if bytes.HasPrefix(body, []byte("Task timed out after ")) {
		return &FunctionError{Message: string(body), Payload: body}
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(body, &fields) != nil {
		return nil
	}
	if _, ok := fields["errorMessage"]; !ok {
		return nil
	}
	for k := range fields {
		if k != "errorMessage" && k != "errorType" && k != "stackTrace" {
			return nil
		}
	}
	fe := &FunctionError{Payload: body}
	json.Unmarshal(body, fe)
	return fe
}

// maxLogs is how much of the output Logs returns: the most recent part.
const maxLogs = 4 << 20

// Logs is what RIE and the function printed so far (the last 4 MiB): the
// function's log lines, RIE's START/END/REPORT lines per invocation and its
// INIT lines. Everything printed before an Invoke returned is in it. After
// Stop it is what they had printed by then.
func (i *Instance) Logs() string {
	select {
	case <-i.stopped:
		i.stopOnce.Do(func() {}) // returns once Stop is done
		return i.final
	default:
	}
	return i.proc.Log()
}

// follow copies the output file to w as it grows, until RIE has exited and
// everything is copied.
func (i *Instance) follow(w io.Writer) {
	defer close(i.followed)
	f, err := os.Open(i.output)
	if err != nil {
		return
	}
	defer f.Close()
	for {
		io.Copy(w, f)
		select {
		case <-i.proc.Exited():
			io.Copy(w, f) // whatever came last
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop ends the instance: RIE is asked to shut down (it stops the bootstrap
// as Lambda stops an environment), and both are killed if they linger. An
// invocation in progress fails with ErrStopped; later ones too. Stop is
// safe to call more than once and returns once both processes are gone.
func (i *Instance) Stop() {
	i.stopOnce.Do(func() {
		close(i.stopped)
		pid := i.proc.Pid()
		kids := proc.Children(pid)
		i.proc.Stop(10 * time.Second)
		// RIE ends its bootstrap when it shuts down; one that outlived a
		// killed RIE (in a process group of its own) is ended here, if it
		// still is our bootstrap.
		for _, k := range kids {
			if exe, err := os.Readlink("/proc/" + strconv.Itoa(k) + "/exe"); err == nil && exe == i.bootstrap {
				syscall.Kill(-k, syscall.SIGKILL)
				syscall.Kill(k, syscall.SIGKILL)
			}
		}
		i.client.CloseIdleConnections()
		<-i.followed
		i.final = i.proc.Log()
		os.RemoveAll(i.dir)
	})
}

// tail is the end of the logs, for error messages.
func (i *Instance) tail() string {
	if s := strings.TrimSpace(i.Logs()); len(s) > 3000 {
		return "RIE and function output:\n..." + s[len(s)-3000:]
	} else if s != "" {
		return "RIE and function output:\n" + s
	}
	return "(RIE printed nothing)"
}

// freeAddrs finds two free ports on 127.0.0.1.
func freeAddrs() (string, string, error) {
	var addrs []string
	for range 2 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", "", fmt.Errorf("lambdarie: no free port on 127.0.0.1: %w", err)
		}
		defer l.Close()
		addrs = append(addrs, l.Addr().String())
	}
	return addrs[0], addrs[1], nil
}
