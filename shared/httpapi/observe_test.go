package httpapi_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/flowgate/flowgate/shared/httpapi"
	"github.com/flowgate/flowgate/shared/metrics"
)

// syncBuffer is a log sink shared by the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", l)
		}
		out = append(out, m)
	}
	return out
}

// TestRequestLogLines: every line logged while serving a request, by the
// handler and the upload service, carries the request's id (the one in
// X-Request-Id) and the upload key. (The pipeline runs apart from the
// request; its lines carry the upload key: see the localserver tests.)
func TestRequestLogLines(t *testing.T) {
	var logs syncBuffer
	e := newEnv(t, func(h *httpapi.Handler) {
		h.Log = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	f := newFile(70, 2000, 1000, true)
	key := f.key(httpapi.PublicNamespace)
	wantStatus(t, e.octet(f.params(1), f.chunk(1)), 200, "")
	last := e.octet(f.params(2), f.chunk(2)) // makes the upload ready
	wantStatus(t, last, 200, "")
	bad := e.octet(f.params(2), f.chunk(2)[:5]) // refused after the key is known
	reqID := last.header.Get("X-Request-Id")
	if reqID == "" {
		t.Fatal("no X-Request-Id")
	}

	msgs := map[string]bool{}
	for _, l := range logs.lines(t) {
		if l["requestId"] != reqID {
			continue
		}
		msgs[l["msg"].(string)] = true
		if l["upload"] != key {
			t.Errorf("line %q of request %s has upload %v, want %s", l["msg"], reqID, l["upload"], key)
		}
		if n := strings.Count(mustJSON(l), `"upload"`); n != 1 {
			t.Errorf("line %q has upload %d times", l["msg"], n)
		}
	}
	// The handler's line and the service's.
	for _, m := range []string{"request", "upload ready", "chunk counted"} {
		if !msgs[m] {
			t.Errorf("no %q line for request %s (got %v)", m, reqID, msgs)
		}
	}
	// The refused request's line has its own id and the key too.
	found := false
	for _, l := range logs.lines(t) {
		if l["requestId"] == bad.header.Get("X-Request-Id") && l["msg"] == "request" {
			found = l["upload"] == key && l["status"] == float64(400)
		}
	}
	if !found {
		t.Error("the refused request's line lacks its upload key or status")
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestHandlerMetrics: accepted chunks and their bytes, and refusals by
// reason and status, reach the metrics.
func TestHandlerMetrics(t *testing.T) {
	m := metrics.New()
	uploads := &httpapi.Uploads{Max: 1}
	e := newEnv(t, func(h *httpapi.Handler) {
		h.Metrics, h.Service.Admission = m, uploads
		h.Namespace = httpapi.HeaderNamespace("X-User")
	})
	u := []string{"X-User", "u"}
	f := newFile(71, 2500, 1000, false) // chunks of 1000 and 1500
	wantStatus(t, e.octet(f.params(1), f.chunk(1), u...), 200, "")
	wantStatus(t, e.octet(f.params(2), f.chunk(2), u...), 200, "")
	wantStatus(t, e.octet(f.params(1), f.chunk(1)), 401, "")                // no X-User
	wantStatus(t, e.octet(f.params(1), f.chunk(1)[:3], u...), 400, "bytes") // a body shorter than declared
	huge := f.params(1)
	huge.Set("flowTotalSize", "999999999999")
	wantStatus(t, e.get("/upload", huge, u...), 413, "") // over the file limit
	g := newFile(72, 3000, 1000, true)
	wantStatus(t, e.octet(g.params(1), g.chunk(1), u...), 200, "")
	wantStatus(t, e.octet(newFile(73, 3000, 1000, true).params(1), newFile(73, 3000, 1000, true).chunk(1), u...), 429, "")

	var buf bytes.Buffer
	m.WritePrometheus(&buf)
	text := buf.String()
	for _, want := range []string{
		"flowgate_chunks_received_total 3\n",
		"flowgate_received_bytes_total 3500\n",
		`flowgate_rejections_total{reason="unauthorized",status="401"} 1` + "\n",
		`flowgate_rejections_total{reason="invalid",status="400"} 1` + "\n",
		`flowgate_rejections_total{reason="limit_exceeded",status="413"} 1` + "\n",
		`flowgate_rejections_total{reason="too_many_uploads",status="429"} 1` + "\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q:\n%s", want, text)
		}
	}
}
