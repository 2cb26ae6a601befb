package upload_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/testkit/ledgertest"
	"github.com/flowgate/flowgate/shared/boltledger"
	"github.com/flowgate/flowgate/shared/upload"
)

// pipeFakeAssembler records its calls and answers with fn (or a fixed result).
type pipeFakeAssembler struct {
	mu    sync.Mutex
	calls []upload.Record
	fn    func(call int, rec upload.Record) (upload.Result, error)
}

func (f *pipeFakeAssembler) Assemble(ctx context.Context, rec upload.Record) (upload.Result, error) {
	f.mu.Lock()
	f.calls = append(f.calls, rec)
	call := len(f.calls)
	fn := f.fn
	f.mu.Unlock()
	if fn != nil {
		return fn(call, rec)
	}
	return svcResultFor(rec), nil
}

func (f *pipeFakeAssembler) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

func svcResultFor(rec upload.Record) upload.Result {
	return upload.Result{Location: "files/" + rec.Key + "/" + rec.FileName, Size: rec.TotalSize, ETag: "etag-" + rec.Generation}
}

// pipeFakePublisher records events; the first failures calls fail.
type pipeFakePublisher struct {
	mu       sync.Mutex
	failures int
	calls    int
	events   []upload.Event
}

func (f *pipeFakePublisher) Publish(ctx context.Context, ev upload.Event) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.failures > 0 {
		f.failures--
		return errors.New("event bus unavailable")
	}
	f.events = append(f.events, ev)
	return nil
}

func (f *pipeFakePublisher) stats() (calls, published int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls, len(f.events)
}

var svcQuietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

type pipeEnv struct {
	ledger *boltledger.Ledger
	asm    *pipeFakeAssembler
	pub    *pipeFakePublisher
	p      *upload.Pipeline
	info   upload.Info
}

// newPipeEnv makes a ledger holding one ready upload and a pipeline for it.
func newPipeEnv(t *testing.T) *pipeEnv {
	t.Helper()
	l, err := boltledger.Open(filepath.Join(t.TempDir(), "ledger.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	in := svcInfo("pipe", 30, 10)
	svcReadyUp(t, l, in)
	e := &pipeEnv{ledger: l, asm: &pipeFakeAssembler{}, pub: &pipeFakePublisher{}, info: in}
	e.p = e.pipeline("worker-1")
	return e
}

func (e *pipeEnv) pipeline(owner string) *upload.Pipeline {
	return &upload.Pipeline{Ledger: e.ledger, Assembler: e.asm, Publisher: e.pub, Owner: owner, Lease: time.Minute, Log: svcQuietLog}
}

func svcReadyUp(t *testing.T, l *boltledger.Ledger, in upload.Info) {
	t.Helper()
	for n := 1; n <= in.TotalChunks; n++ {
		if _, err := ledgertest.Count(context.Background(), l, in, n); err != nil {
			t.Fatal(err)
		}
	}
}

func (e *pipeEnv) rec(t *testing.T) upload.Record {
	t.Helper()
	rec, err := e.ledger.Get(context.Background(), e.info.Key)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func TestPipelineCompletesAndPublishesOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newPipeEnv(t)
	if err := e.p.Run(ctx, e.info.Key); err != nil {
		t.Fatalf("Run: %v", err)
	}
	rec := e.rec(t)
	want := svcResultFor(rec)
	if rec.State != upload.StateComplete || rec.Result == nil || *rec.Result != want || !rec.Published {
		t.Fatalf("record after Run: %+v", rec)
	}
	if e.asm.count() != 1 || e.asm.calls[0].State != upload.StateAssembling || e.asm.calls[0].Owner != "worker-1" {
		t.Fatalf("assembler calls: %+v", e.asm.calls)
	}
	calls, published := e.pub.stats()
	if calls != 1 || published != 1 {
		t.Fatalf("publisher: %d calls, %d events", calls, published)
	}
	ev := e.pub.events[0]
	if ev.UploadKey != e.info.Key || ev.Identifier != "pipe" || ev.FileName != "pipe.bin" || ev.Location != want.Location ||
		ev.Size != 30 || ev.Chunks != 3 || ev.ETag != want.ETag || ev.Namespace != "public" || ev.StartedAt.IsZero() || ev.CompletedAt.IsZero() {
		t.Fatalf("event: %+v", ev)
	}

	// Duplicate triggers, from this worker or another: nothing more happens.
	for _, p := range []*upload.Pipeline{e.p, e.pipeline("worker-2"), e.p} {
		if err := p.Run(ctx, e.info.Key); err != nil {
			t.Fatalf("duplicate Run: %v", err)
		}
	}
	if e.asm.count() != 1 {
		t.Fatalf("assembled %d times", e.asm.count())
	}
	if calls, published := e.pub.stats(); calls != 1 || published != 1 {
		t.Fatalf("after duplicate runs, publisher: %d calls, %d events", calls, published)
	}
}

func TestPipelinePermanentErrorFails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newPipeEnv(t)
	e.asm.fn = func(int, upload.Record) (upload.Result, error) {
		return upload.Result{}, &upload.PermanentError{Reason: "assembled size 29 differs"}
	}
	if err := e.p.Run(ctx, e.info.Key); err != nil {
		t.Fatalf("Run with a permanent error: %v, want nil (nothing to retry)", err)
	}
	rec := e.rec(t)
	if rec.State != upload.StateFailed || rec.Error != "assembled size 29 differs" || rec.Result != nil {
		t.Fatalf("record: %+v", rec)
	}
	if calls, _ := e.pub.stats(); calls != 0 {
		t.Fatalf("a failed upload was published %d times", calls)
	}
	if err := e.p.Run(ctx, e.info.Key); err != nil || e.asm.count() != 1 {
		t.Fatalf("Run after failure: %v, %d assemblies", err, e.asm.count())
	}
}

func TestPipelineTransientErrorRetries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newPipeEnv(t)
	e.asm.fn = func(call int, rec upload.Record) (upload.Result, error) {
		if call == 1 {
			return upload.Result{}, errors.New("disk busy")
		}
		return svcResultFor(rec), nil
	}
	if err := e.p.Run(ctx, e.info.Key); err == nil {
		t.Fatal("Run with a transient error returned nil; the caller would not retry")
	}
	if rec := e.rec(t); rec.State != upload.StateAssembling || rec.Owner != "worker-1" {
		t.Fatalf("record after a transient error: %+v", rec)
	}
	if calls, _ := e.pub.stats(); calls != 0 {
		t.Fatal("published after a failed assembly")
	}
	// Another worker waits out the lease.
	if err := e.pipeline("worker-2").Run(ctx, e.info.Key); err != nil {
		t.Fatalf("Run by another worker under a live lease: %v", err)
	}
	if e.asm.count() != 1 {
		t.Fatalf("another worker assembled under a live lease")
	}
	if err := e.p.Run(ctx, e.info.Key); err != nil {
		t.Fatalf("second Run: %v", err)
	}
	rec := e.rec(t)
	if rec.State != upload.StateComplete || !rec.Published || e.asm.count() != 2 {
		t.Fatalf("after the retry: %+v, %d assemblies", rec, e.asm.count())
	}
	if calls, published := e.pub.stats(); calls != 1 || published != 1 {
		t.Fatalf("publisher: %d calls, %d events", calls, published)
	}
}

func TestPipelinePublishRetried(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newPipeEnv(t)
	e.pub.failures = 1
	if err := e.p.Run(ctx, e.info.Key); err == nil {
		t.Fatal("Run whose publish failed returned nil; the event would be lost")
	}
	rec := e.rec(t)
	if rec.State != upload.StateComplete || rec.Published || rec.Result == nil {
		t.Fatalf("record after a failed publish: %+v", rec)
	}
	pending, err := e.ledger.Pending(ctx)
	if err != nil || len(pending) != 1 || pending[0].Key != e.info.Key {
		t.Fatalf("Pending after a failed publish = %+v, %v", pending, err)
	}
	if err := e.p.Run(ctx, e.info.Key); err != nil {
		t.Fatalf("second Run: %v", err)
	}
	if calls, published := e.pub.stats(); calls != 2 || published != 1 {
		t.Fatalf("publisher: %d calls, %d events; want 2 calls, 1 event", calls, published)
	}
	if ev := e.pub.events[0]; ev.Location != rec.Result.Location || ev.Size != 30 {
		t.Fatalf("re-published event: %+v", ev)
	}
	if !e.rec(t).Published {
		t.Fatal("not marked published after the retry")
	}
	if e.asm.count() != 1 {
		t.Fatalf("publishing again assembled again: %d", e.asm.count())
	}
	// Done: further runs publish nothing.
	for i := 0; i < 2; i++ {
		if err := e.p.Run(ctx, e.info.Key); err != nil {
			t.Fatal(err)
		}
	}
	if calls, published := e.pub.stats(); calls != 2 || published != 1 {
		t.Fatalf("after more runs, publisher: %d calls, %d events", calls, published)
	}
}

// A worker whose lease ran out while it assembled gives way to the one that
// took over: the result is recorded and published once.
func TestPipelineLeaseLost(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newPipeEnv(t)
	var clock atomic.Int64
	clock.Store(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	e.ledger.SetClock(now)
	slow, fast := e.pipeline("slow"), e.pipeline("fast")
	var fastErr error
	e.asm.fn = func(call int, rec upload.Record) (upload.Result, error) {
		if rec.Owner == "slow" {
			clock.Add(int64(2 * time.Minute)) // slow overran its lease ...
			fastErr = fast.Run(ctx, rec.Key)  // ... and fast took over
			res := svcResultFor(rec)
			res.ETag = "from-slow"
			return res, nil
		}
		return svcResultFor(rec), nil
	}
	if err := slow.Run(ctx, e.info.Key); err != nil {
		t.Fatalf("slow Run: %v, want nil (someone else finished)", err)
	}
	if fastErr != nil {
		t.Fatalf("fast Run: %v", fastErr)
	}
	rec := e.rec(t)
	if rec.State != upload.StateComplete || rec.Result.ETag == "from-slow" || !rec.Published {
		t.Fatalf("record: %+v; want fast's result", rec)
	}
	// Every event announces the result the ledger recorded, never the
	// stale worker's own.
	for i, ev := range e.pub.events {
		if ev.ETag != rec.Result.ETag {
			t.Errorf("event %d carries ETag %q, but the recorded result has %q: the worker that lost its lease published its own result", i, ev.ETag, rec.Result.ETag)
		}
	}
	if calls, published := e.pub.stats(); calls != 1 || published != 1 {
		t.Fatalf("publisher: %d calls, %d events; want 1 (the stale worker's Complete should report ErrLeaseLost, not succeed)", calls, published)
	}
}

func TestPipelineConcurrentRunsAssembleOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newPipeEnv(t)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		p := e.pipeline("w" + string(rune('a'+i)))
		go func() {
			defer wg.Done()
			if err := p.Run(ctx, e.info.Key); err != nil {
				t.Errorf("Run: %v", err)
			}
		}()
	}
	wg.Wait()
	if e.asm.count() != 1 {
		t.Fatalf("assembled %d times", e.asm.count())
	}
	// The event is at least once; a worker that sees the result before it is
	// marked published may send it again, but someone sent it.
	if _, published := e.pub.stats(); published < 1 {
		t.Fatal("never published")
	}
	if rec := e.rec(t); rec.State != upload.StateComplete || !rec.Published {
		t.Fatalf("record: %+v", rec)
	}
}

func TestPipelineUnknownUpload(t *testing.T) {
	t.Parallel()
	e := newPipeEnv(t)
	if err := e.p.Run(context.Background(), "00112233445566778899aabbccddeeff"); err != nil {
		t.Fatalf("Run of an unknown upload: %v", err)
	}
	// A receiving upload is not assembled.
	in := svcInfo("pipe-receiving", 20, 10)
	if _, err := ledgertest.Count(context.Background(), e.ledger, in, 1); err != nil {
		t.Fatal(err)
	}
	if err := e.p.Run(context.Background(), in.Key); err != nil {
		t.Fatalf("Run of a receiving upload: %v", err)
	}
	if e.asm.count() != 0 {
		t.Fatal("assembled an upload that is not ready")
	}
}

// An assembly that fails for now is postponed with its reason, which the
// status shows; one that keeps failing is recorded failed, with the last
// error, after MaxAttempts: no upload stays owed for ever.
func TestPipelineGivesUpAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newPipeEnv(t)
	e.asm.fn = func(int, upload.Record) (upload.Result, error) {
		return upload.Result{}, errors.New("S3: slow down")
	}
	e.p.MaxAttempts = 3
	svc := &upload.Service{Ledger: e.ledger}
	for attempt := 1; attempt < 3; attempt++ {
		if err := e.p.Run(ctx, e.info.Key); err == nil {
			t.Fatalf("attempt %d: Run = nil, want the error (to be tried again)", attempt)
		}
		st, _ := svc.Status(ctx, e.info.Key)
		if st.State != upload.StateAssembling || st.Error != "S3: slow down" {
			t.Fatalf("status after attempt %d: %+v; want assembling with the reason", attempt, st)
		}
	}
	if err := e.p.Run(ctx, e.info.Key); err != nil {
		t.Fatalf("the last attempt: %v, want nil (failed for good)", err)
	}
	st, _ := svc.Status(ctx, e.info.Key)
	if st.State != upload.StateFailed || st.Error != "assembly failed 3 times; the last error: S3: slow down" {
		t.Fatalf("status after the last attempt: %+v", st)
	}
	if n := e.asm.count(); n != 3 {
		t.Fatalf("assembled %d times, want 3", n)
	}
}
