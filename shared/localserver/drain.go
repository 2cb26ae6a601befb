package localserver

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/flowgate/flowgate/shared/httpapi"
	"github.com/flowgate/flowgate/shared/metrics"
	"github.com/flowgate/flowgate/shared/upload"
)

// gate counts requests in flight and, once draining, turns new ones away
// with 503: flow.js retries a 503 instead of failing the file, and a
// connection refused would look the same to it but give no reason. It also
// refuses requests whose headers are over the limit, with 431.
type gate struct {
	next http.Handler
	// bodyIdle is how long a request body may stall before the request is
	// dropped (slow-loris): each read pushes the deadline further.
	bodyIdle time.Duration
	// maxHeaderBytes bounds the request line and headers; 0 means no bound
	// here. The http.Server has the same bound (plus 4 KiB of slack of its
	// own) and answers a plain-text 431 past it; below that the gate
	// answers with JSON.
	maxHeaderBytes int
	metrics        *metrics.Metrics

	mu       sync.Mutex
	draining bool
	inflight sync.WaitGroup
}

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	if g.draining {
		g.mu.Unlock()
		w.Header().Set("Connection", "close")
		w.Header().Set("Retry-After", "5")
		g.refuse(w, http.StatusServiceUnavailable, httpapi.ReasonDraining, "server is restarting; try again")
		return
	}
	g.inflight.Add(1)
	g.mu.Unlock()
	defer g.inflight.Done()

	if g.maxHeaderBytes > 0 && headerBytes(r) > g.maxHeaderBytes {
		w.Header().Set("Connection", "close")
		g.refuse(w, http.StatusRequestHeaderFieldsTooLarge, httpapi.ReasonHeaderTooLarge,
			"request headers are over the limit of "+strconv.Itoa(g.maxHeaderBytes)+" bytes")
		return
	}

	if g.bodyIdle > 0 && r.Body != nil && r.Body != http.NoBody {
		r.Body = &idleReader{ReadCloser: r.Body, rc: http.NewResponseController(w), idle: g.bodyIdle}
	}
	g.next.ServeHTTP(w, r)
}

func (g *gate) refuse(w http.ResponseWriter, status int, reason, msg string) {
	g.metrics.Rejected(reason, status)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]string{"error": msg})
	w.Write(append(b, '\n'))
}

// headerBytes is about what the request line and headers took on the wire.
func headerBytes(r *http.Request) int {
	n := len(r.Method) + 1 + len(r.RequestURI) + 1 + len(r.Proto) + 2
	n += len("Host: ") + len(r.Host) + 2
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + 2 + len(v) + 2
		}
	}
	return n + 2
}

// drain stops taking requests and waits for those in flight, until ctx ends.
func (g *gate) drain(ctx context.Context) error {
	g.mu.Lock()
	g.draining = true
	g.mu.Unlock()
	done := make(chan struct{})
	go func() { g.inflight.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// idleReader moves the connection's read deadline forward before each read
// of the body, so a body that keeps arriving may take as long as it needs
// and one that stalls is cut off.
type idleReader struct {
	io.ReadCloser
	rc   *http.ResponseController
	idle time.Duration
}

func (r *idleReader) Read(p []byte) (int, error) {
	// An error here means the connection cannot take deadlines (an
	// HTTP/2 stream, a test recorder); reading without one is still right.
	r.rc.SetReadDeadline(time.Now().Add(r.idle))
	n, err := r.ReadCloser.Read(p)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = &upload.InputError{Kind: upload.Interrupted, Msg: "request body stalled for more than " + r.idle.String()}
	}
	return n, err
}
