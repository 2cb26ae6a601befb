package proc

import (
	"context"
	"os"
	"path/filepath"
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

// The output is kept, the last LogLimit bytes of it, in memory or in the
// log file; a child that exits during WaitReady fails it with its output.
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
