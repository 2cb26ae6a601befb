// Package proc runs flowgate's servers as real processes for the tests
// and the soak under test/: it builds a command, starts it on a free
// 127.0.0.1 port in a process group of its own (killed by the kernel if the
// test binary dies first), waits for /healthz, kills or stops it by its
// process id, and reads its resident memory, threads and open files from
// /proc.
package proc

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

// Module is the module path the repository root's go.mod declares.
const Module = "github.com/flowgate/flowgate"

// Root finds the repository root: the nearest parent of the working
// directory whose go.mod declares Module.
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(bytes.TrimSpace(b), []byte("module "+Module+"\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("proc: no go.mod of " + Module + " above the working directory")
		}
		dir = parent
	}
}

// Build compiles the package pkg (relative to root, e.g. "./cmd/flowgate")
// into out.
func Build(ctx context.Context, root, pkg, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = root
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("proc: go build %s: %w\n%s", pkg, err, buf.String())
	}
	return nil
}

// FreeAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// Options describe one server process.
type Options struct {
	Bin  string
	Args []string
	// Env is added to this process's environment, from which every
	// FLOWGATE_* variable is removed first: the developer's shell must not
	// change what is tested. FLOWGATE_ADDR is set by Start.
	Env []string
	Dir string
	// Addr to listen on; empty picks a free port of 127.0.0.1.
	Addr string
	// StartTimeout bounds the wait for /healthz; 0 means 30 s.
	StartTimeout time.Duration
	// LogLimit is how many bytes of output to keep (the tail); 0 means 1 MiB.
	LogLimit int
}

// Proc is a running server.
type Proc struct {
	Addr string
	URL  string // http://Addr
	cmd  *exec.Cmd
	log  *Tail

	exited  chan struct{}
	waitErr error
}

// Start runs the server and waits until GET /healthz answers 200. On an
// error the process is gone. The caller must Kill or Stop it.
func Start(ctx context.Context, o Options) (*Proc, error) {
	addr := o.Addr
	if addr == "" {
		var err error
		if addr, err = FreeAddr(); err != nil {
			return nil, err
		}
	}
	limit := o.LogLimit
	if limit == 0 {
		limit = 1 << 20
	}
	p := &Proc{Addr: addr, URL: "http://" + addr, log: &Tail{Max: limit}, exited: make(chan struct{})}
	p.cmd = exec.Command(o.Bin, o.Args...)
	p.cmd.Dir = o.Dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FLOWGATE_") {
			p.cmd.Env = append(p.cmd.Env, kv)
		}
	}
	p.cmd.Env = append(p.cmd.Env, o.Env...)
	p.cmd.Env = append(p.cmd.Env, "FLOWGATE_ADDR="+addr)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()

	timeout := o.StartTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	deadline := time.Now().Add(timeout)
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	defer hc.CloseIdleConnections()
	for {
		resp, err := hc.Get(p.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		select {
		case <-p.exited:
			return nil, fmt.Errorf("proc: %s exited before answering /healthz: %v\n%s", o.Bin, p.waitErr, p.log.Last(4000))
		case <-ctx.Done():
			p.Kill()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.Kill()
			return nil, fmt.Errorf("proc: %s did not answer /healthz on %s within %v\n%s", o.Bin, addr, timeout, p.log.Last(4000))
		}
	}
}

// Pid is the server's process id (and its process group's).
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Exited is closed once the process has exited.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// Alive reports whether the process still runs.
func (p *Proc) Alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
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
		return fmt.Errorf("proc: process %d still running 10 s after SIGKILL", p.Pid())
	}
}

// Stop sends SIGTERM to the process group, waits up to grace for the exit,
// then kills it. It returns how the process ended.
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
		return fmt.Errorf("proc: process %d ignored SIGTERM for %v and was killed", p.Pid(), grace)
	}
}

// Log is everything the process printed (the last LogLimit bytes).
func (p *Proc) Log() string { return p.log.String() }

// Stats is what /proc tells about a process.
type Stats struct {
	RSS     int64 // VmRSS, bytes
	PeakRSS int64 // VmHWM, bytes
	Threads int
	FDs     int // open file descriptors (files, sockets, pipes)
}

func (s Stats) String() string {
	return fmt.Sprintf("rss %.1f MiB (peak %.1f MiB), %d threads, %d open fds",
		float64(s.RSS)/(1<<20), float64(s.PeakRSS)/(1<<20), s.Threads, s.FDs)
}

// ReadStats reads the Stats of process pid.
func ReadStats(pid int) (Stats, error) {
	var st Stats
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return st, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB"))
		switch k {
		case "VmRSS":
			n, _ := strconv.ParseInt(v, 10, 64)
			st.RSS = n << 10
		case "VmHWM":
			n, _ := strconv.ParseInt(v, 10, 64)
			st.PeakRSS = n << 10
		case "Threads":
			st.Threads, _ = strconv.Atoi(v)
		}
	}
	fds, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd"))
	if err != nil {
		return st, err
	}
	st.FDs = len(fds)
	return st, nil
}

// Children lists the process ids whose parent is pid (from /proc/<pid>/task/*/children).
func Children(pid int) []int {
	var out []int
	tasks, _ := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "task"))
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "task", t.Name(), "children"))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// Comm is the command name of process pid.
func Comm(pid int) string {
	b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
	return strings.TrimSpace(string(b))
}

// Tail keeps the last Max bytes written to it.
type Tail struct {
	Max int
	mu  sync.Mutex
	buf []byte
}

func (w *Tail) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if over := len(w.buf) - w.Max; over > 0 {
		w.buf = append(w.buf[:0], w.buf[over:]...)
	}
	return len(p), nil
}

func (w *Tail) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.buf)
}

// Last is the last n bytes.
func (w *Tail) Last(n int) string {
	s := w.String()
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return s
}

// FDs is a process's open file descriptors by kind.
type FDs struct {
	Files    int // regular files and directories
	Listen   int // listening TCP sockets
	Inbound  int // TCP connections accepted on the port given to ReadFDs
	Outbound int // other TCP connections (to storage servers, webhooks)
	Other    int // pipes, event fds, epoll, other sockets
}

func (f FDs) String() string {
	return fmt.Sprintf("%d files, %d listening, %d inbound and %d outbound connections, %d other",
		f.Files, f.Listen, f.Inbound, f.Outbound, f.Other)
}

// ReadFDs sorts the open file descriptors of process pid; port is the
// port it serves on, which tells inbound connections from outbound ones.
func ReadFDs(pid, port int) (FDs, error) {
	var out FDs
	dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return out, err
	}
	socks := tcpSockets(pid)
	for _, e := range ents {
		link, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		inode, isSock := strings.CutPrefix(link, "socket:[")
		switch {
		case isSock:
			s, ok := socks[strings.TrimSuffix(inode, "]")]
			switch {
			case !ok:
				out.Other++
			case s.state == "0A":
				out.Listen++
			case s.localPort == port:
				out.Inbound++
			default:
				out.Outbound++
			}
		case strings.HasPrefix(link, "/"):
			out.Files++
		default:
			out.Other++
		}
	}
	return out, nil
}

type tcpSocket struct {
	localPort int
	state     string
}

// tcpSockets reads the TCP sockets of pid's network namespace, by inode.
func tcpSockets(pid int) map[string]tcpSocket {
	out := map[string]tcpSocket{}
	for _, name := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "net", name))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 {
				continue
			}
			_, portHex, _ := strings.Cut(f[1], ":")
			port, err := strconv.ParseInt(portHex, 16, 32)
			if err != nil {
				continue
			}
			out[f[9]] = tcpSocket{localPort: int(port), state: f[3]}
		}
	}
	return out
}

// Port is the port of a host:port address, or 0.
func Port(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}

// BuildServer builds cmd/flowgate once for a test package's TestMain, into a
// temporary directory that cleanup removes; root is the repository.
func BuildServer(name string) (binary, root string, cleanup func(), err error) {
	if root, err = Root(); err != nil {
		return "", "", nil, err
	}
	dir, err := os.MkdirTemp("", "flowgate-"+name+"-")
	if err != nil {
		return "", "", nil, err
	}
	cleanup = func() { os.RemoveAll(dir) }
	binary = filepath.Join(dir, "flowgate")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := Build(ctx, root, "./cmd/flowgate", binary); err != nil {
		cleanup()
		return "", "", nil, err
	}
	return binary, root, cleanup, nil
}
