package main

import (
	"context"
	"errors"
	"sync"
	"syscall"
	"time"

	"github.com/flowgate/flowgate/internal/proc"
)

// child is a server process the benchmark started (see package proc),
// remembered until it stops so that Ctrl-C can stop them all.
type child struct{ *proc.Proc }

var (
	childrenMu sync.Mutex
	children   = map[*proc.Proc]bool{}
)

// startServer starts an HTTP server child listening on a free loopback port
// (given to it in FLOWGATE_ADDR) and waits until GET /healthz answers 200.
// Its output goes to logPath.
func startServer(ctx context.Context, name, bin string, args, env []string, dir, logPath string) (*child, error) {
	p, err := proc.StartServer(ctx, proc.Options{
		Name: name, Bin: bin, Args: args, Env: env, Dir: dir,
		LogFile: logPath, StartTimeout: time.Minute,
	})
	if err != nil {
		return nil, err
	}
	childrenMu.Lock()
	children[p] = true
	childrenMu.Unlock()
	return &child{p}, nil
}

// PeakRSS is the process's peak resident set size so far (VmHWM).
func (c *child) PeakRSS() (int64, error) { return proc.PeakRSS(c.Pid()) }

// CPUTime is the CPU time (user and system) the process has used so far.
func (c *child) CPUTime() (time.Duration, error) { return proc.CPUTime(c.Pid()) }

// stop sends SIGTERM to the process group and SIGKILL if it lingers.
func (c *child) stop() {
	c.Stop(15 * time.Second)
	childrenMu.Lock()
	delete(children, c.Proc)
	childrenMu.Unlock()
}

// tail is the end of the child's output, for error messages.
func (c *child) tail() string { return c.Tail(3000) }

// killAllChildren kills every child still running, at once: the second
// Ctrl-C.
func killAllChildren() {
	childrenMu.Lock()
	defer childrenMu.Unlock()
	for p := range children {
		p.Signal(syscall.SIGKILL)
	}
}

// stopAllChildren stops every child still running: deferred by Run.
func stopAllChildren() {
	childrenMu.Lock()
	list := make([]*child, 0, len(children))
	for p := range children {
		list = append(list, &child{p})
	}
	childrenMu.Unlock()
	var wg sync.WaitGroup
	for _, c := range list {
		wg.Go(c.stop)
	}
	wg.Wait()
}

// goBuild builds pkg (relative to the module root) into out.
func goBuild(ctx context.Context, root, out, pkg string, env []string, flags ...string) error {
	return proc.Build(ctx, root, pkg, out, env, flags...)
}

// errStopped is returned when the run was cancelled (Ctrl-C).
var errStopped = errors.New("stopped")
