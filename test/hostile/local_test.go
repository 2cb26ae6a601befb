package hostile

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/proc"
)

// localTarget is the embedded server, a real process, with its data
// directory inside a watched parent directory.
type localTarget struct {
	parent, data string
	proc         *proc.Proc
}

func (l *localTarget) base() string { return l.proc.URL }
func (l *localTarget) aws() bool    { return false }
func (l *localTarget) json() bool   { return false }

// snapshot covers the whole parent directory: the data directory and
// everything beside it, where a path that climbed out would land.
func (l *localTarget) snapshot(t *testing.T) map[string]string {
	return treeSnapshot(t, l.parent, "")
}

func (l *localTarget) staging(name string) bool {
	return strings.HasPrefix(name, "data/staging/") || name == "data/ledger.db"
}

func (l *localTarget) finished(t *testing.T, location string) []byte {
	t.Helper()
	if !cleanUnder(location, "files") {
		t.Fatalf("location %q is not a clean path under files/", location)
	}
	b, err := os.ReadFile(filepath.Join(l.data, filepath.FromSlash(location)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (l *localTarget) pump(context.Context) {}

func (l *localTarget) staged(t *testing.T) []string {
	ents, err := os.ReadDir(filepath.Join(l.data, "staging"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// TestHostileLocal runs the battery against cmd/flowgate.
func TestHostileLocal(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	l := &localTarget{parent: parent, data: filepath.Join(parent, "data")}
	// The page the server serves, and a secret beside it that no request
	// may read through the static file server.
	web := filepath.Join(parent, "web")
	if err := os.MkdirAll(web, 0o755); err != nil {
		t.Fatal(err)
	}
	const secret = "the secret beside the web directory"
	os.WriteFile(filepath.Join(web, "page.html"), []byte("<h1>flowgate</h1>"), 0o644)
	os.WriteFile(filepath.Join(parent, "secret.txt"), []byte(secret), 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := proc.StartServer(ctx, proc.Options{
		Bin: binary,
		Env: []string{
			"FLOWGATE_DATA_DIR=" + l.data,
			"FLOWGATE_WEB_DIR=" + web,
			"FLOWGATE_MAX_FILE_SIZE=64MiB",
			"FLOWGATE_MAX_CHUNK_SIZE=4MiB",
			"FLOWGATE_MAX_CHUNKS=1000",
			"FLOWGATE_LOG_LEVEL=error",
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	l.proc = p
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("server log:\n%s", p.Log())
		}
	})
	runBattery(t, l, env{abs: filepath.Join(parent, "pwned")})
	if !p.Alive() {
		t.Fatal("the server exited during the battery")
	}
	checkStaticFiles(t, p.Addr, secret)
}

// checkStaticFiles sends raw request lines that try to climb out of the web
// directory: none may return the secret beside it, nor any file of the
// system.
func checkStaticFiles(t *testing.T, addr, secret string) {
	t.Helper()
	get := func(target string) string {
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", target, addr)
		resp, err := io.ReadAll(conn)
		if err != nil && len(resp) == 0 {
			t.Errorf("GET %s: %v", target, err)
		}
		return string(resp)
	}
	// The control: the page itself is served this way.
	if resp := get("/page.html"); !strings.HasPrefix(resp, "HTTP/1.1 200") || !strings.Contains(resp, "<h1>flowgate</h1>") {
		t.Fatalf("GET /page.html did not serve the page:\n%.300s", resp)
	}
	for _, target := range []string{
		"/../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt", "/%2e%2e%2fsecret.txt",
		"/..\\secret.txt", "/page.html/../../secret.txt", "//secret.txt", "/./../secret.txt",
		"/../../../../../../etc/passwd", "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/..%5c..%5csecret.txt",
		"/%c0%ae%c0%ae/secret.txt", "/secret.txt%00.html", "../secret.txt",
	} {
		resp := get(target)
		if strings.Contains(resp, secret) || strings.Contains(resp, "root:x:") {
			t.Errorf("GET %s served a file outside the web directory:\n%.300s", target, resp)
		}
	}
}
