package faults

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/testkit/flowclient"
)

// TestWebhookRetried: the embedded server's webhook receiver fails its
// first calls (a 500, a dropped connection, a 503); the event must still
// arrive, signed, through the workers' retries.
func TestWebhookRetried(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const secret = "s3cret"
	var signed *signatureCheck
	hook, hookSrv := newHookSink(t, 3, func(h http.Handler) http.Handler {
		signed = &signatureCheck{secret: secret, next: h}
		return signed
	})
	srv := server(t, ctx, t.TempDir(), "", "FLOWGATE_WEBHOOK_URL="+hookSrv.URL, "FLOWGATE_WEBHOOK_SECRET="+secret, "FLOWGATE_LOG_LEVEL=error")

	f := killFile{name: "hooked.bin", data: randomBytes(42, 200<<10), opts: flowclient.Options{ChunkSize: 64 << 10, Identifier: "hooked"}}
	c := &flowclient.Client{BaseURL: srv.URL}
	if _, err := c.Upload(ctx, f.opts, bytes.NewReader(f.data), int64(len(f.data)), f.name); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitComplete(ctx, f.opts, int64(len(f.data)), f.name, 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if n := hook.waitEvent(t, f.key(), 10*time.Second); n < 1 {
		t.Fatalf("no event delivered after %d calls", hook.calls.Load())
	}
	if calls := hook.calls.Load(); calls < 4 {
		t.Errorf("%d webhook calls, want the 3 that failed and one that succeeded", calls)
	}
	if bad := signed.bad(); bad > 0 {
		t.Errorf("%d webhook calls without a valid signature", bad)
	}
}

// TestWebhookAfterRestart: the receiver is down (every call fails) when an
// upload completes, and the server is killed before any retry succeeds.
// Started again, the server must deliver the event: "published" is only
// recorded once a delivery succeeded, and a start picks up what is not.
func TestWebhookAfterRestart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hook, hookSrv := newHookSink(t, 1<<30, nil)
	dataDir := t.TempDir()
	env := []string{"FLOWGATE_WEBHOOK_URL=" + hookSrv.URL, "FLOWGATE_LOG_LEVEL=error"}
	srv := server(t, ctx, dataDir, "", env...)

	f := killFile{name: "later.bin", data: randomBytes(43, 100<<10), opts: flowclient.Options{ChunkSize: 64 << 10, Identifier: "later"}}
	c := &flowclient.Client{BaseURL: srv.URL}
	if _, err := c.Upload(ctx, f.opts, bytes.NewReader(f.data), int64(len(f.data)), f.name); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitComplete(ctx, f.opts, int64(len(f.data)), f.name, 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	// Let the workers try (and fail) a few times, then kill the server.
	for deadline := time.Now().Add(5 * time.Second); hook.calls.Load() < 2 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	failed := hook.calls.Load()
	if failed < 2 || hook.count(f.key()) != 0 {
		t.Fatalf("before the kill: %d calls, %d delivered; want failed calls only", failed, hook.count(f.key()))
	}

	hook.failFirst.Store(0) // the receiver is back
	server(t, ctx, dataDir, "", env...)
	if n := hook.waitEvent(t, f.key(), 10*time.Second); n < 1 {
		t.Fatalf("the event was not delivered after the restart (%d calls in all)", hook.calls.Load())
	}
	t.Logf("%d failed calls before the kill; delivered after the restart", failed)
}

// signatureCheck counts calls whose X-Flowgate-Signature is not the
// HMAC-SHA256 of the body under secret, and passes every call on.
type signatureCheck struct {
	secret string
	next   http.Handler

	mu      sync.Mutex
	invalid int
}

func (s *signatureCheck) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body bytes.Buffer
	body.ReadFrom(r.Body)
	m := hmac.New(sha256.New, []byte(s.secret))
	m.Write(body.Bytes())
	want := "sha256=" + hex.EncodeToString(m.Sum(nil))
	if !hmac.Equal([]byte(r.Header.Get("X-Flowgate-Signature")), []byte(want)) {
		s.mu.Lock()
		s.invalid++
		s.mu.Unlock()
	}
	r.Body = nopCloser{bytes.NewReader(body.Bytes())}
	s.next.ServeHTTP(w, r)
}

func (s *signatureCheck) bad() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.invalid
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }
