package lambdarie

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/devstack/localaws"
)

// childRole makes the test binary, run again by TestDiesWithItsStarter,
// start an instance, print the pids of RIE and the bootstrap, and wait to
// be killed.
const childRole = "LAMBDARIE_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childRole) != "" {
		os.Exit(runChild())
	}
	code := localaws.RunTests(m)
	RemoveBootstraps()
	os.Exit(code)
}

func readEvent(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../../../events/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func start(t *testing.T, opt Options) *Instance {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	inst, err := Start(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(inst.Stop)
	return inst
}

// The function sees the environment it is given, not the test process's:
// here the test process's FLOWGATE_LOG_LEVEL would stop the consumer from
// starting. Its answer comes back raw, its error as a *FunctionError, and
// what it logs is in Logs.
func TestInvokeAndEnvironment(t *testing.T) {
	t.Setenv("FLOWGATE_LOG_LEVEL", "loud")
	inst := start(t, Options{Function: "consumer", Env: []string{"FLOWGATE_LOG_LEVEL=info"}})
	ctx := context.Background()

	out, err := inst.Invoke(ctx, readEvent(t, "consumer-upload-completed.json"))
	if err != nil || string(out) != "null" {
		t.Fatalf("sample event: %q %v\n%s", out, err, inst.Logs())
	}
	_, err = inst.Invoke(ctx, []byte(`{"source": "elsewhere", "detail-type": "Object Created"}`))
	var fe *FunctionError
	if !errors.As(err, &fe) || !strings.Contains(fe.Message, `unexpected event "Object Created"`) {
		t.Fatalf("event of another kind: %v, want the handler's error", err)
	}
	logs := inst.Logs()
	for _, want := range []string{`"msg":"upload completed"`, `"uploadKey":"1c0312c723afdd1fe40b2064627b0275"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
	if n := strings.Count(logs, "REPORT RequestId:"); n != 2 {
		t.Errorf("%d REPORT lines for 2 invocations:\n%s", n, logs)
	}
}

// A function that cannot start (here: the upload function without its
// bucket and table) fails each invocation with an error that says so, and
// its own words are in the logs.
func TestInitFailure(t *testing.T) {
	inst := start(t, Options{Function: "upload"})
	_, err := inst.Invoke(context.Background(), readEvent(t, "upload-2-test-get.json"))
	var fe *FunctionError
	if err == nil || errors.As(err, &fe) || !strings.Contains(err.Error(), "failed to start or crashed") {
		t.Fatalf("invoke of a function that cannot start: %v", err)
	}
	if !strings.Contains(inst.Logs(), "FLOWGATE_BUCKET is required") {
		t.Errorf("the function's reason is not in the logs:\n%s", inst.Logs())
	}
}

// RIE serves one invocation at a time (a second one at once is refused);
// Invoke queues concurrent callers so that every one is served.
func TestConcurrentInvokesQueue(t *testing.T) {
	inst := start(t, Options{Function: "consumer"})
	ev := readEvent(t, "consumer-upload-completed.json")
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			out, err := inst.Invoke(context.Background(), ev)
			if err == nil && string(out) != "null" {
				err = fmt.Errorf("answer %q", out)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent invoke: %v\n%s", err, inst.Logs())
		}
	}
	if got := strings.Count(inst.Logs(), "START RequestId:"); got != n {
		t.Errorf("RIE started %d invocations, want %d", got, n)
	}

	// A caller whose context has ended does not wait its turn.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := inst.Invoke(ctx, ev); !errors.Is(err, context.Canceled) {
		t.Errorf("invoke with a cancelled context: %v", err)
	}
}

// Stop ends RIE and the bootstrap, and later invocations fail.
func TestStop(t *testing.T) {
	inst := start(t, Options{Function: "consumer"})
	if _, err := inst.Invoke(context.Background(), readEvent(t, "consumer-upload-completed.json")); err != nil {
		t.Fatal(err)
	}
	rie := inst.Pid()
	kids := inst.Bootstraps()
	if len(kids) != 1 {
		t.Fatalf("RIE has children %v, want its bootstrap", kids)
	}
	inst.Stop()
	waitGone(t, rie, kids[0])
	if _, err := inst.Invoke(context.Background(), []byte("{}")); !errors.Is(err, ErrStopped) {
		t.Errorf("invoke after Stop: %v", err)
	}
	inst.Stop() // again: nothing happens
}

// If the process that started an instance dies without stopping it, RIE
// and the bootstrap go too.
func TestDiesWithItsStarter(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	// Whatever the child leaves (it never gets to clean up) lands here.
	cmd.Env = append(os.Environ(), childRole+"=1", "TMPDIR="+t.TempDir())
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("the child printed no pids: %v", err)
	}
	var pids []int
	for _, f := range strings.Fields(line) {
		p, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("child said %q", line)
		}
		pids = append(pids, p)
	}
	if len(pids) != 2 || !alive(pids[0]) || !alive(pids[1]) {
		t.Fatalf("child's RIE and bootstrap %v are not running", pids)
	}
	cmd.Process.Kill()
	cmd.Wait()
	waitGone(t, pids...)
}

// runChild is the child of TestDiesWithItsStarter.
func runChild() int {
	ctx := context.Background()
	inst, err := Start(ctx, Options{Function: "consumer"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := inst.Invoke(ctx, []byte(`{}`)); err == nil {
		fmt.Fprintln(os.Stderr, "an empty event was taken")
		return 1
	}
	kids := inst.Bootstraps()
	if len(kids) != 1 {
		fmt.Fprintln(os.Stderr, "no bootstrap running")
		return 1
	}
	fmt.Println(inst.Pid(), kids[0])
	select {} // until killed
}

// alive reports whether pid is a running process (not gone, not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && !strings.HasPrefix(strings.TrimSpace(s[i+1:]), "Z")
}

// waitGone waits for processes to end. It fails only if they are still
// there after a minute: ending takes RIE a moment, but not that.
func waitGone(t *testing.T, pids ...int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for _, p := range pids {
		for alive(p) {
			if time.Now().After(deadline) {
				syscall.Kill(p, syscall.SIGKILL)
				t.Fatalf("process %d still runs", p)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
