// Package proc supervises the child processes of the dev stack, the tests
// and the benchmark: servers (MinIO, dynalite, flowgate itself), the
// Lambda Runtime Interface Emulator, a function's bootstrap. A child runs in
// a process group of its own, so that stopping it stops whatever it
// started, and the kernel kills it if the process that started it dies
// first (on Linux), so that a crashed test run leaves nothing behind; its
// output is kept (the last part of it) to quote when it fails.
//
//	p, err := proc.Start(proc.Options{Name: "minio", Bin: bin, Args: args})
//	err = p.WaitReady(ctx, time.Minute, func() bool { return healthy(url) })
//	defer p.Stop(5 * time.Second) // SIGTERM to the group, SIGKILL if it lingers
//
// StartServer starts a flowgate server on a free 127.0.0.1 port and waits
// for its /healthz; stats.go reads what /proc tells of a process.
package proc

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options describe one child process.
type Options struct {
	// Name is how messages call the process; empty means Bin's base name.
	Name string
	Bin  string
	Args []string
	// Env is added to this process's environment, from which every
	// FLOWGATE_* variable is removed first: the developer's shell must not
	// change what is tested or measured. With Isolated, Env is the child's
	// whole environment.
	Env      []string
	Isolated bool
	Dir      string
	// LogFile, if set, receives the child's output (appended), where
	// whatever the child starts can write too; otherwise the output goes
	// to a temporary file, unlinked at once, that lives as long as the
	// Proc reads it. Either way the child writes into the file itself,
	// not into a pipe a goroutine of ours copies: what it printed before
	// it answered is in Log when the answer arrives. Log returns the last
	// LogLimit bytes of it; 0 means 1 MiB.
	LogFile  string
	LogLimit int

	// Addr and StartTimeout are StartServer's: where the server listens
	// (empty: a free port of 127.0.0.1) and how long it may take to answer
	// /healthz (0: 30 s).
	Addr         string
	StartTimeout time.Duration
}

// Proc is a running child process.
type Proc struct {
	// Addr and URL are set by StartServer: where the server listens.
	Addr string
	URL  string // http://Addr

	name  string
	cmd   *exec.Cmd
	limit int

	logMu sync.Mutex
	log   *os.File // the output, opened for reading; nil once the process exited
	final string   // then, the end of the output

	exited  chan struct{}
	waitErr error // set before exited is closed
}

// Start starts the child and returns at once. The caller must Stop or
// Kill it.
func Start(o Options) (*Proc, error) {
	p := &Proc{name: o.Name, limit: o.LogLimit, exited: make(chan struct{})}
	if p.name == "" {
		p.name = filepath.Base(o.Bin)
	}
	if p.limit <= 0 {
		p.limit = 1 << 20
	}
	p.cmd = exec.Command(o.Bin, o.Args...)
	p.cmd.Dir = o.Dir
	if o.Isolated {
		p.cmd.Env = append([]string{}, o.Env...)
	} else {
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "FLOWGATE_") {
				p.cmd.Env = append(p.cmd.Env, kv)
			}
		}
		p.cmd.Env = append(p.cmd.Env, o.Env...)
	}
	// The child gets a file, never a pipe: see Options.LogFile.
	var out *os.File
	var err error
	if o.LogFile != "" {
		if out, err = os.OpenFile(o.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
			p.log, err = os.Open(o.LogFile)
		}
	} else if out, err = os.CreateTemp("", "flowgate-proc-*.log"); err == nil {
		// Unlinked at once: a crashed run leaves no file behind; the
		// child's descriptor and ours keep it while they are open.
		p.log, err = os.Open(out.Name())
		os.Remove(out.Name())
	}
	if err != nil {
		if out != nil {
			out.Close()
		}
		return nil, fmt.Errorf("proc: output of %s: %w", p.name, err)
	}
	p.cmd.Stdout, p.cmd.Stderr = out, out
	p.cmd.SysProcAttr = sysProcAttr()
	err = p.cmd.Start()
	out.Close() // the child has its own copy
	if err != nil {
		p.log.Close()
		return nil, fmt.Errorf("proc: start %s: %w", p.name, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		p.logMu.Lock()
		p.final = readTail(p.log, int64(p.limit))
		p.log.Close()
		p.log = nil
		p.logMu.Unlock()
		close(p.exited)
	}()
	return p, nil
}

// WaitReady polls ready (every 20 ms) until it says yes, and fails if the
// process exits first, ctx ends or timeout passes; the process is left as
// it is either way.
func (p *Proc) WaitReady(ctx context.Context, timeout time.Duration, ready func() bool) error {
	deadline := time.Now().Add(timeout)
	for {
		if ready() {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited at start: %v\n%s", p.name, p.waitErr, p.Tail(4000))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s was not ready within %v\n%s", p.name, timeout, p.Tail(4000))
		}
	}
}

// Pid is the process's id (and its process group's).
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Exited is closed once the process has exited.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// Err is how the process ended (exec.Cmd.Wait's error), once it has.
func (p *Proc) Err() error {
	select {
	case <-p.exited:
		return p.waitErr
	default:
		return nil
	}
}

// Alive reports whether the process still runs.
func (p *Proc) Alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Signal sends sig to the process group, without waiting.
func (p *Proc) Signal(sig syscall.Signal) error {
	if !p.Alive() {
		return nil
	}
	return syscall.Kill(-p.Pid(), sig)
}

// Kill sends SIGKILL to the process group and waits (bounded) for the exit.
func (p *Proc) Kill() error {
	if !p.Alive() {
		return nil
	}
	_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
	select {
	case <-p.exited:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("proc: %s (%d) still running 10 s after SIGKILL", p.name, p.Pid())
	}
}

// Stop sends SIGTERM to the process group, waits up to grace for the exit,
// then kills it. It returns how the process ended, and is safe to call
// again.
func (p *Proc) Stop(grace time.Duration) error {
	if !p.Alive() {
		return p.waitErr
	}
	_ = syscall.Kill(-p.Pid(), syscall.SIGTERM)
	select {
	case <-p.exited:
		return p.waitErr
	case <-time.After(grace):
		p.Kill()
		return fmt.Errorf("proc: %s (%d) ignored SIGTERM for %v and was killed", p.name, p.Pid(), grace)
	}
}

// Log is what the process printed (the last LogLimit bytes); once it has
// exited, what it had printed by then.
func (p *Proc) Log() string {
	p.logMu.Lock()
	defer p.logMu.Unlock()
	if p.log == nil {
		return p.final
	}
	return readTail(p.log, int64(p.limit))
}

// Tail is the end of the log (at most n bytes), introduced for an error
// message.
func (p *Proc) Tail(n int) string {
	b := strings.TrimSpace(p.Log())
	if len(b) > n {
		b = "..." + b[len(b)-n:]
	}
	if b == "" {
		return "(" + p.name + " printed nothing)"
	}
	return p.name + " output:\n" + b
}

// readTail reads the last max bytes of a file.
func readTail(f *os.File, limit int64) string {
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(fi.Size()-limit, 0)
	b := make([]byte, fi.Size()-off)
	n, _ := f.ReadAt(b, off)
	return string(b[:n])
}
