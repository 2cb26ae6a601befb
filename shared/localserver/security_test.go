package localserver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/flowgate/flowgate/shared/config"
	"github.com/flowgate/flowgate/shared/upload"
)

// lockedBuffer collects the server's JSON log lines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b.buf.Bytes()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", sc.Text())
		}
		out = append(out, m)
	}
	return out
}

// secServer is a Server built the way cmd/flowgate builds it (LoadLocal,
// LoadVerifier, New), logging JSON into logs, on a 127.0.0.1 port.
type secServer struct {
	url  string
	logs *lockedBuffer
}

func startSec(t *testing.T, env map[string]string) *secServer {
	t.Helper()
	env["FLOWGATE_DATA_DIR"] = t.TempDir()
	env["FLOWGATE_WEB_DIR"] = ""
	getenv := func(k string) string { return env[k] }
	cfg, err := config.LoadLocal(getenv)
	if err != nil {
		t.Fatal(err)
	}
	v, err := LoadVerifier(cfg, getenv)
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	srv, err := New(cfg, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), WithVerifier(v))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("server did not stop")
		}
	})
	return &secServer{url: "http://" + ln.Addr().String(), logs: logs}
}

type answer struct {
	status int
	header http.Header
	body   string
}

// do sends a request; hdr are header name/value pairs.
func (s *secServer) do(t *testing.T, method, path string, q url.Values, body []byte, hdr ...string) answer {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, s.url+path+"?"+q.Encode(), r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return answer{res.StatusCode, res.Header, string(b)}
}

func (a answer) want(t *testing.T, status int, errPart string) {
	t.Helper()
	if a.status != status {
		t.Fatalf("status %d, want %d (%s)", a.status, status, a.body)
	}
	if status >= 400 {
		var e struct{ Error string }
		if err := json.Unmarshal([]byte(a.body), &e); err != nil || !strings.Contains(e.Error, errPart) {
			t.Fatalf("body %q is not a JSON error mentioning %q", a.body, errPart)
		}
	}
}

func statusQuery(f srvFile) url.Values { return f.query(0) }

// waitComplete polls the status until the upload is complete.
func (s *secServer) waitComplete(t *testing.T, f srvFile, hdr ...string) upload.Status {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		a := s.do(t, http.MethodGet, "/upload/status", statusQuery(f), nil, hdr...)
		var st upload.Status
		json.Unmarshal([]byte(a.body), &st)
		if st.State == upload.StateComplete {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("upload %s: %d %s, want complete", f.id, a.status, a.body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestJWTMode: FLOWGATE_AUTH=jwt with an RS256 key in a JWKS file (as
// shared/auth reads FLOWGATE_JWT_PUBLIC_KEYS). Without a valid token the
// upload API answers 401 with a Bearer challenge, a trusted-proxy header
// changes nothing, and two subjects sending the same file get two uploads.
// Health and metrics need no token.
func TestJWTMode(t *testing.T) {
	t.Parallel()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	b64 := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	jwks := fmt.Sprintf(`{"keys":[{"kty":"RSA","kid":"k1","use":"sig","alg":"RS256","n":%q,"e":%q}]}`,
		b64(key.N.Bytes()), b64(big.NewInt(int64(key.E)).Bytes()))
	jwksFile := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(jwksFile, []byte(jwks), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startSec(t, map[string]string{"FLOWGATE_AUTH": "jwt", "FLOWGATE_JWT_PUBLIC_KEYS": jwksFile})
	token := func(sub string, k *rsa.PrivateKey) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"sub": sub, "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()})
		tok.Header["kid"] = "k1"
		signed, err := tok.SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + signed
	}
	f := srvFile{id: "3000-same.bin", name: "same.bin", data: srvTestData(3000, 1), chunkSize: 1000}
	g := srvFile{id: f.id, name: f.name, data: srvTestData(3000, 2), chunkSize: 1000}

	a := s.do(t, http.MethodGet, "/upload", f.query(1), nil, "X-Forwarded-User", "alice")
	a.want(t, 401, "Bearer")
	if a.header.Get("WWW-Authenticate") != `Bearer realm="flowgate"` {
		t.Fatalf("WWW-Authenticate %q", a.header.Get("WWW-Authenticate"))
	}
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	a = s.do(t, http.MethodPost, "/upload", f.query(1), f.chunk(1), "Authorization", token("alice", other))
	a.want(t, 401, "token")
	if !strings.Contains(a.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("WWW-Authenticate %q", a.header.Get("WWW-Authenticate"))
	}

	alice, bob := token("alice", key), token("bob", key)
	for n := 1; n <= 3; n++ {
		s.do(t, http.MethodPost, "/upload", f.query(n), f.chunk(n), "Authorization", alice).want(t, 200, "")
	}
	s.do(t, http.MethodGet, "/upload", g.query(1), nil, "Authorization", bob).want(t, 204, "")
	var st upload.Status
	json.Unmarshal([]byte(s.do(t, http.MethodGet, "/upload/status", statusQuery(g), nil, "Authorization", bob).body), &st)
	if st.State != upload.StateUnknown {
		t.Fatalf("bob sees alice's upload: %+v", st)
	}
	if st := s.waitComplete(t, f, "Authorization", alice); st.Size == nil || *st.Size != 3000 {
		t.Fatalf("alice's upload: %+v", st)
	}
	s.do(t, http.MethodGet, "/healthz", nil, nil).want(t, 200, "")
	s.do(t, http.MethodGet, "/metrics", nil, nil).want(t, 200, "")
}

// TestAuthConfiguration: a server that would not check what someone
// configured it to check refuses to start.
func TestAuthConfiguration(t *testing.T) {
	t.Parallel()
	secret := strings.Repeat("s", 32)
	load := func(kv ...string) (config.Local, error) {
		env := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			env[kv[i]] = kv[i+1]
		}
		return config.LoadLocal(func(k string) string { return env[k] })
	}
	for name, kv := range map[string][]string{
		"jwt and a namespace header": {"FLOWGATE_AUTH", "jwt", "FLOWGATE_JWT_SECRET", secret, "FLOWGATE_NAMESPACE_HEADER", "X-User"},
		"a secret without jwt mode":  {"FLOWGATE_JWT_SECRET", secret},
		"keys without jwt mode":      {"FLOWGATE_AUTH", "none", "FLOWGATE_JWT_PUBLIC_KEYS", "/keys.pem"},
		"cognito locally":            {"FLOWGATE_AUTH", "cognito"},
		"unknown mode":               {"FLOWGATE_AUTH", "yes"},
	} {
		if _, err := load(kv...); err == nil {
			t.Errorf("%s: LoadLocal accepted %v", name, kv)
		}
	}
	// jwt mode without a key: LoadVerifier (shared/auth) refuses.
	cfg, err := load("FLOWGATE_AUTH", "jwt")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadVerifier(cfg, func(string) string { return "" }); err == nil {
		t.Error("LoadVerifier accepted jwt mode without a key")
	}
	// New refuses jwt mode without a verifier rather than run anonymous.
	cfg.DataDir = t.TempDir()
	if _, err := New(cfg, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("New built a jwt-mode server without a verifier")
	}
	// Anonymous is the default and needs no verifier.
	cfg, err = load()
	if err != nil || cfg.Auth != config.AuthNone {
		t.Fatalf("default auth %q, %v", cfg.Auth, err)
	}
	if v, err := LoadVerifier(cfg, func(string) string { return "" }); v != nil || err != nil {
		t.Fatalf("LoadVerifier in anonymous mode: %v, %v", v, err)
	}
}

// TestUploadsPerNamespaceLimit: FLOWGATE_MAX_UPLOADS_PER_NAMESPACE=1 turns a
// second new upload away with 429 and Retry-After while the first goes on;
// once the first is finished, the second passes.
func TestUploadsPerNamespaceLimit(t *testing.T) {
	t.Parallel()
	s := startSec(t, map[string]string{"FLOWGATE_MAX_UPLOADS_PER_NAMESPACE": "1"})
	f := srvFile{id: "f", name: "f.bin", data: srvTestData(2000, 1), chunkSize: 1000}
	g := srvFile{id: "g", name: "g.bin", data: srvTestData(2000, 2), chunkSize: 1000}
	s.do(t, http.MethodPost, "/upload", f.query(1), f.chunk(1)).want(t, 200, "")
	a := s.do(t, http.MethodPost, "/upload", g.query(1), g.chunk(1))
	a.want(t, 429, "in progress")
	if ra, err := strconv.Atoi(a.header.Get("Retry-After")); err != nil || ra < 1 {
		t.Fatalf("Retry-After %q", a.header.Get("Retry-After"))
	}
	s.do(t, http.MethodPost, "/upload", f.query(2), f.chunk(2)).want(t, 200, "")
	s.do(t, http.MethodPost, "/upload", g.query(1), g.chunk(1)).want(t, 200, "")
}

// TestHeaderLimit: FLOWGATE_MAX_HEADER_BYTES bounds the request's headers:
// over it is 431 (JSON from the server up to 4 KiB past the limit, Go's own
// plain answer beyond), under it is served.
func TestHeaderLimit(t *testing.T) {
	t.Parallel()
	s := startSec(t, map[string]string{"FLOWGATE_MAX_HEADER_BYTES": "2KiB"})
	f := srvFile{id: "h", name: "h.bin", data: srvTestData(10, 1), chunkSize: 1000}
	s.do(t, http.MethodGet, "/upload", f.query(1), nil, "X-Pad", strings.Repeat("p", 1500)).want(t, 204, "")
	s.do(t, http.MethodGet, "/upload", f.query(1), nil, "X-Pad", strings.Repeat("p", 2100)).want(t, 431, "headers are over the limit")
	if a := s.do(t, http.MethodGet, "/upload", f.query(1), nil, "X-Pad", strings.Repeat("p", 8000)); a.status != 431 {
		t.Fatalf("far over the limit: %d, want 431", a.status)
	}
	text := s.do(t, http.MethodGet, "/metrics", nil, nil).body
	if !strings.Contains(text, `flowgate_rejections_total{reason="header_too_large",status="431"} 1`) {
		t.Fatalf("the gate's refusal is not counted:\n%s", text)
	}
}

// TestMetricsEndpoint: /metrics tells, in the Prometheus text format, the
// chunks and bytes taken, refusals by reason and status, the assembly and
// its duration; FLOWGATE_METRICS=off removes it.
func TestMetricsEndpoint(t *testing.T) {
	t.Parallel()
	s := startSec(t, map[string]string{"FLOWGATE_MAX_CHUNKS": "10"})
	f := srvFile{id: "m", name: "m.bin", data: srvTestData(2500, 1), chunkSize: 1000} // 3 chunks
	for n := 1; n <= 3; n++ {
		s.do(t, http.MethodPost, "/upload", f.query(n), f.chunk(n)).want(t, 200, "")
	}
	s.waitComplete(t, f)
	many := f.query(1)
	many.Set("flowChunkSize", "1")
	many.Set("flowCurrentChunkSize", "1")
	many.Set("flowTotalChunks", "2500")
	s.do(t, http.MethodGet, "/upload", many, nil).want(t, 413, "chunks")
	a := s.do(t, http.MethodGet, "/metrics", nil, nil)
	if a.status != 200 || a.header.Get("Content-Type") != "text/plain; version=0.0.4; charset=utf-8" {
		t.Fatalf("/metrics: %d %s", a.status, a.header.Get("Content-Type"))
	}
	for _, want := range []string{
		"flowgate_chunks_received_total 3\n",
		"flowgate_received_bytes_total 2500\n",
		"flowgate_assemblies_total 1\n",
		"flowgate_assembled_bytes_total 2500\n",
		"flowgate_assembly_duration_seconds_count 1\n",
		`flowgate_rejections_total{reason="limit_exceeded",status="413"} 1` + "\n",
		"flowgate_uploads_in_progress 0\n",
	} {
		if !strings.Contains(a.body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, a.body)
		}
	}

	off := startSec(t, map[string]string{"FLOWGATE_METRICS": "off"})
	if a := off.do(t, http.MethodGet, "/metrics", nil, nil); a.status != 404 {
		t.Errorf("/metrics with FLOWGATE_METRICS=off: %d", a.status)
	}
}

// TestLogLines: the server logs JSON; each line of an upload request carries
// its request id and upload key, the assembly's lines (in a worker) and the
// completion event's carry the upload key.
func TestLogLines(t *testing.T) {
	t.Parallel()
	s := startSec(t, map[string]string{})
	f := srvFile{id: "l", name: "l.bin", data: srvTestData(2000, 1), chunkSize: 1000}
	key := f.info().Key
	var ids []string
	for n := 1; n <= 2; n++ {
		a := s.do(t, http.MethodPost, "/upload", f.query(n), f.chunk(n))
		a.want(t, 200, "")
		ids = append(ids, a.header.Get("X-Request-Id"))
	}
	s.waitComplete(t, f)
	deadline := time.Now().Add(5 * time.Second)
	for {
		seen := map[string]bool{}
		for _, l := range s.logs.lines(t) {
			msg, _ := l["msg"].(string)
			if id, ok := l["requestId"].(string); ok && (id == ids[0] || id == ids[1]) && l["upload"] != key {
				t.Fatalf("line %q of an upload request without its key: %v", msg, l)
			}
			if l["upload"] == key {
				seen[msg] = true
			}
		}
		if seen["request"] && seen["upload ready"] && seen["assembled"] && seen["upload completed"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lines with the upload key: %v; want request, upload ready, assembled, upload completed", seen)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
