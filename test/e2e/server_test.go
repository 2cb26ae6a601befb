// Package e2e tests the embedded server end to end, as `make run` runs it: the
// flowgate binary as a real process on a 127.0.0.1 port, uploaded to by a
// client that behaves like flow.js, killed and restarted mid-upload, in both
// auth modes, with namespaces that must never mix.
package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/proc"
	"github.com/flowgate/flowgate/internal/testkit/flowclient"
)

// binary is the server built once for the whole suite; repoRoot holds web/.
var binary, repoRoot string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	bin, root, cleanup, err := proc.BuildServer("e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer cleanup()
	binary, repoRoot = bin, root
	return m.Run()
}

// server is one flowgate process.
type server struct {
	*proc.Proc
	t       *testing.T
	dataDir string
}

// startServer runs the binary on a free port of 127.0.0.1 with dataDir and
// waits until /healthz answers 200. The process is killed when the test ends,
// whatever happens.
func startServer(t *testing.T, dataDir string, extraEnv ...string) *server {
	t.Helper()
	p, err := proc.StartServer(context.Background(), proc.Options{
		Bin:      binary,
		LogLimit: 256 << 10,
		Env: append([]string{
			"FLOWGATE_DATA_DIR=" + dataDir,
			"FLOWGATE_WEB_DIR=" + filepath.Join(repoRoot, "web"),
		}, extraEnv...),
		StartTimeout: 20 * time.Second,
	})
	if err != nil {
		t.Fatalf("server did not start: %v", err)
	}
	s := &server{Proc: p, t: t, dataDir: dataDir}
	t.Cleanup(func() {
		if err := s.Kill(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("log of server %s:\n%s", s.URL, s.Log())
		}
	})
	return s
}

// signal sends sig without waiting.
func (s *server) signal(sig syscall.Signal) {
	if err := s.Signal(sig); err != nil {
		s.t.Errorf("signal %v: %v", sig, err)
	}
}

// wait waits (bounded) for the process to exit after a signal and returns
// how it ended.
func (s *server) wait(within time.Duration) error {
	s.t.Helper()
	select {
	case <-s.Exited():
		return s.Err()
	case <-time.After(within):
		s.t.Fatalf("server %s still running %v after the signal", s.URL, within)
		return nil
	}
}

func (s *server) client(header ...string) *flowclient.Client {
	c := &flowclient.Client{BaseURL: s.URL}
	if len(header) == 2 {
		c.Header = http.Header{header[0]: {header[1]}}
	}
	return c
}

// randomFile returns size bytes from a seeded generator: reproducible, and
// different for different seeds.
func randomFile(seed uint64, size int) []byte {
	r := rand.New(rand.NewPCG(seed, 0xf10a))
	b := make([]byte, size)
	for i := 0; i+8 <= len(b); i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := len(b) &^ 7; i < len(b); i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// checkFinished asserts that a complete status points, inside the data
// directory's files/, at a file with exactly the content want.
func checkFinished(t *testing.T, dataDir string, st flowclient.Status, want []byte) {
	t.Helper()
	if st.State != "complete" {
		t.Errorf("state %q, want complete", st.State)
		return
	}
	if st.Size != int64(len(want)) {
		t.Errorf("status size %d, want %d", st.Size, len(want))
	}
	loc := st.Location
	if loc == "" || filepath.IsAbs(loc) || filepath.Clean(loc) != loc || !strings.HasPrefix(loc, "files/") {
		t.Errorf("location %q is not a clean path under files/", loc)
		return
	}
	got, err := os.ReadFile(filepath.Join(dataDir, loc))
	if err != nil {
		t.Errorf("finished file: %v", err)
		return
	}
	if sum(got) != sum(want) {
		t.Errorf("finished file %s: %d bytes, sha256 %s; want %d bytes, sha256 %s", loc, len(got), sum(got)[:12], len(want), sum(want)[:12])
	}
}

// checkStagingEmpty asserts that no chunk is left under staging/. Handlers of
// requests cut off mid-body may still be unwinding when the uploads complete,
// so it polls for a short, bounded time before failing.
func checkStagingEmpty(t *testing.T, dataDir string) {
	t.Helper()
	dir := filepath.Join(dataDir, "staging")
	deadline := time.Now().Add(5 * time.Second)
	for {
		entries, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("reading staging: %v", err)
			return
		}
		if len(entries) == 0 {
			return
		}
		if time.Now().After(deadline) {
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Errorf("staging/ still holds %v after every upload completed", names)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// finishedFiles lists the regular files under files/, relative to the data dir.
func finishedFiles(t *testing.T, dataDir string) []string {
	t.Helper()
	var out []string
	root := filepath.Join(dataDir, "files")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(dataDir, path)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Errorf("walking files/: %v", err)
	}
	return out
}

// allChunks is 1..n.
func allChunks(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i + 1
	}
	return out
}

// upload is one file of a test: its content, name and options.
type upload struct {
	name string
	data []byte
	opts flowclient.Options
}

func (u upload) size() int64 { return int64(len(u.data)) }

func (u upload) geometry(t *testing.T) flowclient.Geometry {
	t.Helper()
	g, err := flowclient.NewGeometry(u.opts, u.size(), u.name)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func (u upload) send(ctx context.Context, c *flowclient.Client) (flowclient.Stats, error) {
	return c.Upload(ctx, u.opts, bytes.NewReader(u.data), u.size(), u.name)
}

func (u upload) wait(ctx context.Context, c *flowclient.Client) (flowclient.Status, error) {
	return c.WaitComplete(ctx, u.opts, u.size(), u.name, 20*time.Millisecond)
}
