package localserver

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/flowgate/flowgate/shared/config"
)

// startServer runs a Server on a 127.0.0.1 port until the returned stop is
// called; stop waits for Serve to return and gives its error.
// wrap, if given, wraps the server's handler (inside the gate), so a test
// can see a request arrive.
func startServer(t *testing.T, env map[string]string, wrap ...func(http.Handler) http.Handler) (base string, stop func() error) {
	t.Helper()
	env["FLOWGATE_DATA_DIR"] = t.TempDir()
	env["FLOWGATE_WEB_DIR"] = ""
	cfg, err := config.LoadLocal(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range wrap {
		srv.gate.next = w(srv.gate.next)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ctx, ln) }()
	var once bool
	stop = func() error {
		if once {
			return nil
		}
		once = true
		cancel()
		select {
		case err := <-errc:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("server did not stop")
			return nil
		}
	}
	t.Cleanup(func() { stop() })
	return "http://" + ln.Addr().String(), stop
}

func chunkQuery(size int) url.Values {
	s := strconv.Itoa(size)
	return url.Values{"flowChunkNumber": {"1"}, "flowChunkSize": {s}, "flowCurrentChunkSize": {s},
		"flowTotalSize": {s}, "flowIdentifier": {"slow-" + s}, "flowFilename": {"slow.bin"}, "flowTotalChunks": {"1"}}
}

// stallingBody sends its first bytes, then waits for release before the rest.
type stallingBody struct {
	first, rest []byte
	release     chan struct{}
	sentFirst   chan struct{}
}

func (b *stallingBody) Read(p []byte) (int, error) {
	if b.first != nil {
		n := copy(p, b.first)
		b.first = b.first[n:]
		if len(b.first) == 0 {
			b.first = nil
			close(b.sentFirst)
		}
		return n, nil
	}
	<-b.release
	if len(b.rest) == 0 {
		return 0, io.EOF
	}
	n := copy(p, b.rest)
	b.rest = b.rest[n:]
	return n, nil
}

// TestBodyStallIsCutOff: a body that stops arriving gets 408 after the idle
// timeout, and its chunk is not counted.
func TestBodyStallIsCutOff(t *testing.T) {
	base, _ := startServer(t, map[string]string{"FLOWGATE_BODY_TIMEOUT": "300ms"})
	q := chunkQuery(1000)
	body := &stallingBody{first: make([]byte, 400), rest: make([]byte, 600), release: make(chan struct{}), sentFirst: make(chan struct{})}
	defer close(body.release)
	req, _ := http.NewRequest(http.MethodPost, base+"/upload?"+q.Encode(), body)
	req.ContentLength = 1000
	start := time.Now()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("status %d, want 408", res.StatusCode)
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Fatalf("cut off after %v", waited)
	}
	res, err = http.Get(base + "/upload?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNoContent {
		t.Fatalf("test GET after a stalled body: %d, want 204", res.StatusCode)
	}
}

// TestShutdownDrains: on shutdown, a chunk in flight is finished and
// counted, new requests get 503, and Serve returns once it is done.
func TestShutdownDrains(t *testing.T) {
	entered := make(chan struct{}, 8)
	base, stop := startServer(t, map[string]string{"FLOWGATE_SHUTDOWN_TIMEOUT": "10s"}, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost {
				entered <- struct{}{}
			}
			h.ServeHTTP(w, r)
		})
	})
	q := chunkQuery(1000)
	body := &stallingBody{first: make([]byte, 400), rest: bytes.Repeat([]byte{1}, 600), release: make(chan struct{}), sentFirst: make(chan struct{})}
	req, _ := http.NewRequest(http.MethodPost, base+"/upload?"+q.Encode(), body)
	req.ContentLength = 1000
	slow := make(chan int, 1)
	go func() {
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			slow <- -1
			return
		}
		res.Body.Close()
		slow <- res.StatusCode
	}()
	<-entered // the chunk is in the server's hands
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()

	// New requests are turned away with 503 while the slow one is in flight.
	deadline := time.Now().Add(5 * time.Second)
	for {
		tr := &http.Transport{DisableKeepAlives: true}
		res, err := (&http.Client{Transport: tr}).Get(base + "/upload?" + q.Encode())
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusServiceUnavailable {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no 503 while draining (last: %v)", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case err := <-stopped:
		t.Fatalf("server stopped (%v) with a chunk in flight", err)
	default:
	}
	close(body.release)
	if code := <-slow; code != http.StatusOK {
		t.Fatalf("in-flight chunk answered %d, want 200", code)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}
