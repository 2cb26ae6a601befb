package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// child is a server process the benchmark started: in its own process group
// (so stopping it stops whatever it spawned), killed by the kernel if the
// benchmark dies first, its output in a log file quoted when it fails.
type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	Addr    string // host:port it serves on, if it is an HTTP server
}

var (
	childrenMu sync.Mutex
	children   = map[*child]bool{}
)

// startChild runs bin with args and env (added to this process's
// environment) in dir, its output going to logPath.
func startChild(name, bin string, args, env []string, dir, logPath string) (*child, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	childrenMu.Lock()
	children[c] = true
	childrenMu.Unlock()
	go func() {
		cmd.Wait()
		logf.Close()
		close(c.exited)
	}()
	return c, nil
}

// startServer starts an HTTP server child listening on a free loopback port
// (given to it in FLOWGATE_ADDR) and waits until GET /healthz answers 200.
func startServer(ctx context.Context, name, bin string, args, env []string, dir, logPath string) (*child, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	c, err := startChild(name, bin, args, append(env, "FLOWGATE_ADDR="+addr), dir, logPath)
	if err != nil {
		return nil, err
	}
	c.Addr = addr
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := hc.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return c, nil
			}
		}
		select {
		case <-c.exited:
			return nil, fmt.Errorf("%s exited at start: %v\n%s", name, c.cmd.ProcessState, c.tail())
		case <-ctx.Done():
			c.stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.stop()
			return nil, fmt.Errorf("%s did not answer on %s within a minute\n%s", name, addr, c.tail())
		}
	}
}

// URL is the child's base URL.
func (c *child) URL() string { return "http://" + c.Addr }

// Pid is the child's process id.
func (c *child) Pid() int { return c.cmd.Process.Pid }

// PeakRSS is the process's peak resident set size so far (VmHWM).
func (c *child) PeakRSS() (int64, error) { return peakRSS(c.cmd.Process.Pid) }

// Alive reports whether the process is still running.
func (c *child) Alive() bool {
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM to the process group and SIGKILL if it lingers.
func (c *child) stop() {
	defer func() {
		childrenMu.Lock()
		delete(children, c)
		childrenMu.Unlock()
	}()
	select {
	case <-c.exited:
		return
	default:
	}
	pgid := c.cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(15 * time.Second):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-c.exited
	}
}

// tail is the end of the child's output, for error messages.
func (c *child) tail() string {
	b, _ := os.ReadFile(c.logPath)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return "(" + c.name + " printed nothing)"
	}
	return c.name + " output:\n" + string(b)
}

// killAllChildren kills every child still running, at once: the second
// Ctrl-C.
func killAllChildren() {
	childrenMu.Lock()
	defer childrenMu.Unlock()
	for c := range children {
		syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	}
}

// stopAllChildren stops every child still running: deferred by Run.
func stopAllChildren() {
	childrenMu.Lock()
	list := make([]*child, 0, len(children))
	for c := range children {
		list = append(list, c)
	}
	childrenMu.Unlock()
	var wg sync.WaitGroup
	for _, c := range list {
		wg.Go(c.stop)
	}
	wg.Wait()
}

// CPUTime is the CPU time (user and system) the process has used so far.
func (c *child) CPUTime() (time.Duration, error) { return cpuTime(c.cmd.Process.Pid) }

// cpuTime reads utime + stime from /proc/<pid>/stat, in clock ticks of
// 1/100 s (USER_HZ, 100 on every Linux this runs on).
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields after it are plain.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// peakRSS reads VmHWM (the peak resident set size) of a process.
func peakRSS(pid int) (int64, error) {
	return procStatusKB(pid, "VmHWM:")
}

func procStatusKB(pid int, field string) (int64, error) {
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/%d/status: %s %q", pid, field, rest)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

// freeAddr finds a free port on 127.0.0.1.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("no free port on 127.0.0.1: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// goBuild builds pkg (relative to the module root) into out.
func goBuild(ctx context.Context, root, out, pkg string, env []string, flags ...string) error {
	args := append([]string{"build", "-o", out}, flags...)
	args = append(args, pkg)
	cmd := exec.CommandContext(ctx, goBin(), args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, buf.String())
	}
	return nil
}

// goBin is the go command on PATH (make runs the benchmark with it).
func goBin() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go"
}

// errStopped is returned when the run was cancelled (Ctrl-C).
var errStopped = errors.New("stopped")
