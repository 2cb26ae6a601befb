package proc

import (
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
	"time"
)

// StartServer runs a flowgate server (cmd/flowgate, the dev stack, a
// benchmark role), telling it where to listen in FLOWGATE_ADDR, and waits
// until GET /healthz answers 200. Without o.Addr it picks a free port of
// 127.0.0.1, and another if a server exits at once (someone took the port
// between finding and binding it). On an error the process is gone; else
// the caller must Stop or Kill it.
func StartServer(ctx context.Context, o Options) (*Proc, error) {
	timeout := o.StartTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	var last error
	for attempt := 0; attempt < 3; attempt++ {
		addr := o.Addr
		if addr == "" {
			var err error
			if addr, err = FreeAddr(); err != nil {
				return nil, err
			}
		}
		so := o
		so.Env = append(append([]string{}, o.Env...), "FLOWGATE_ADDR="+addr)
		p, err := Start(so)
		if err != nil {
			return nil, err
		}
		p.Addr, p.URL = addr, "http://"+addr
		hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
		last = p.WaitReady(ctx, timeout, func() bool {
			resp, err := hc.Get(p.URL + "/healthz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
		hc.CloseIdleConnections()
		if last == nil {
			return p, nil
		}
		exitedAtOnce := !p.Alive()
		p.Kill()
		if !exitedAtOnce || o.Addr != "" || ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("proc: %w", last)
}

// FreeAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("proc: no free port on 127.0.0.1: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
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

// Module is the module path the repository root's go.mod declares.
const Module = "github.com/flowgate/flowgate"

// Root finds the repository root: the nearest parent of the working
// directory (a test's is its package's) whose go.mod declares Module.
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
// into out, with env added to the environment and flags before the
// package.
func Build(ctx context.Context, root, pkg, out string, env []string, flags ...string) error {
	args := append(append([]string{"build", "-o", out}, flags...), pkg)
	cmd := exec.CommandContext(ctx, goBin(), args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("proc: go build %s: %w\n%s", pkg, err, buf.String())
	}
	return nil
}

// goBin is the go command on PATH (make runs everything with it).
func goBin() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go"
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
	if err := Build(ctx, root, "./cmd/flowgate", binary, nil); err != nil {
		cleanup()
		return "", "", nil, err
	}
	return binary, root, cleanup, nil
}

// Serve serves srv on ln until ctx ends, then shuts it down gracefully
// (requests in flight get 10 s to finish): the life of a server that is
// itself a child process (make dev, a benchmark role) stopped by SIGTERM.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		shut, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = srv.Shutdown(shut)
		cancel()
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
