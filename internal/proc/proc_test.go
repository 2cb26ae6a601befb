package proc

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Stop ends the whole process group: a grandchild too, which a signal to
// the child alone would leave running.
func TestStopEndsTheGroup(t *testing.T) {
	p, err := Start(Options{Bin: "/bin/sh", Args: []string{"-c", "sleep 300 & echo $!; wait"}})
	if err != nil {
		t.Fatal(err)
	}
	var grandchild int
	if err := p.WaitReady(context.Background(), 10*time.Second, func() bool {
		grandchild, _ = strconv.Atoi(strings.TrimSpace(p.Log()))
		return grandchild > 0
	}); err != nil {
		t.Fatal(err)
	}
	p.Stop(5 * time.Second)
	if p.Alive() {
		t.Fatal("the child outlived Stop")
	}
	for deadline := time.Now().Add(5 * time.Second); syscall.Kill(grandchild, 0) == nil; time.Sleep(20 * time.Millisecond) {
		if s, _ := os.ReadFile("/proc/" + strconv.Itoa(grandchild) + "/stat"); strings.Contains(string(s), ") Z ") {
			break // a zombie, waiting for init to reap it: gone
		}
		if time.Now().After(deadline) {
			t.Fatalf("grandchild %d still runs after Stop", grandchild)
		}
	}
}

// The output is kept, the last LogLimit bytes of it, in a temporary file or
// in the log file; a child that exits during WaitReady fails it with its
// output.
func TestLogAndEarlyExit(t *testing.T) {
	for _, file := range []string{"", filepath.Join(t.TempDir(), "out.log")} {
		p, err := Start(Options{Name: "talker", Bin: "/bin/sh", Args: []string{"-c", "echo start; echo 0123456789; exit 3"}, LogFile: file, LogLimit: 8})
		if err != nil {
			t.Fatal(err)
		}
		err = p.WaitReady(context.Background(), 10*time.Second, func() bool { return false })
		if err == nil || !strings.Contains(err.Error(), "talker exited at start") || !strings.Contains(err.Error(), "456789") {
			t.Errorf("log file %q: WaitReady: %v", file, err)
		}
		if got := p.Log(); got != "3456789\n" {
			t.Errorf("log file %q: Log() = %q, want the last 8 bytes", file, got)
		}
		if p.Err() == nil {
			t.Errorf("log file %q: exit status 3 not reported", file)
		}
	}
}

// The developer's FLOWGATE_* settings do not reach a child; an isolated
// child gets only what it is given.
func TestEnvironment(t *testing.T) {
	t.Setenv("FLOWGATE_FROM_SHELL", "leak")
	t.Setenv("OTHER_FROM_SHELL", "kept")
	for _, tc := range []struct {
		isolated bool
		want     string
	}{{false, "kept||given"}, {true, "||given"}} {
		p, err := Start(Options{Bin: "/bin/sh", Args: []string{"-c", `printf '%s|%s|%s' "$OTHER_FROM_SHELL" "$FLOWGATE_FROM_SHELL" "$FLOWGATE_GIVEN"`},
			Env: []string{"FLOWGATE_GIVEN=given"}, Isolated: tc.isolated})
		if err != nil {
			t.Fatal(err)
		}
		<-p.Exited()
		if got := p.Log(); got != tc.want {
			t.Errorf("isolated %v: the child saw %q, want %q", tc.isolated, got, tc.want)
		}
	}
}

// What a child printed before it was seen to be ready is in Log at once: a
// server's banner (make dev's CA bundle) is there when its /healthz answers.
// With the output in a pipe that a goroutine copies, it was missing 49 times
// in 50 here (GOMAXPROCS 1 keeps the copier from running while the test
// looks), and once in CI with the soak's make dev.
func TestLogHoldsWhatWasPrintedBeforeReady(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	for i := range 50 {
		p, err := Start(Options{Bin: "/bin/sh", Args: []string{"-c", "echo banner; exec sleep 30"}})
		if err != nil {
			t.Fatal(err)
		}
		// Ready once the shell has become sleep, which it does after the echo.
		for deadline := time.Now().Add(10 * time.Second); ; {
			if exe, _ := os.Readlink("/proc/" + strconv.Itoa(p.Pid()) + "/exe"); strings.HasSuffix(exe, "/sleep") {
				break
			}
			if time.Now().After(deadline) {
				p.Kill()
				t.Fatal("the child never ran sleep")
			}
		}
		got := p.Log()
		p.Kill()
		if got != "banner\n" {
			t.Fatalf("attempt %d: Log() = %q right after the child was ready, want %q", i, got, "banner\n")
		}
	}
}

// No file is left behind by a child's output, whether it ran or not.
func TestNoOutputFileLeftBehind(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	p, err := Start(Options{Bin: "/bin/sh", Args: []string{"-c", "echo hello; sleep 30"}})
	if err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(os.TempDir()); len(entries) != 0 {
		t.Errorf("while the child runs, %s holds %d files, want none", os.TempDir(), len(entries))
	}
	if err := p.WaitReady(context.Background(), 10*time.Second, func() bool { return p.Log() != "" }); err != nil {
		t.Fatal(err)
	}
	p.Stop(5 * time.Second)
	if _, err := Start(Options{Bin: "/no/such/program"}); err == nil {
		t.Error("starting a program that does not exist succeeded")
	}
	if entries, _ := os.ReadDir(os.TempDir()); len(entries) != 0 {
		t.Errorf("%s holds %d files after the children, want none", os.TempDir(), len(entries))
	}
	if got := p.Log(); got != "hello\n" {
		t.Errorf("Log() after Stop = %q, want %q", got, "hello\n")
	}
}
