package localserver

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/flowgate/flowgate/shared/upload"
)

// gate counts requests in flight and, once draining, turns new ones away
// with 503: flow.js retries a 503 instead of failing the file, and a
// connection refused would look the same to it but give no reason.
type gate struct {
	next http.Handler
	// bodyIdle is how long a request body may stall before the request is
	// dropped (slow-loris): each read pushes the deadline further.
	bodyIdle time.Duration

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
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"error":"server is restarting; try again"}` + "\n"))
		return
	}
	g.inflight.Add(1)
	g.mu.Unlock()
	defer g.inflight.Done()

	if g.bodyIdle > 0 && r.Body != nil && r.Body != http.NoBody {
		r.Body = &idleReader{ReadCloser: r.Body, rc: http.NewResponseController(w), idle: g.bodyIdle}
	}
	g.next.ServeHTTP(w, r)
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
		err = &upload.InputError{Status: http.StatusRequestTimeout, Msg: "request body stalled for more than " + r.idle.String()}
	}
	return n, err
}
