package localserver

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeRunner counts runs per key and how many run at once.
type fakeRunner struct {
	mu      sync.Mutex
	runs    map[string]int
	now     map[string]int
	maxSame int // the most runs of one key at the same time
	hold    chan struct{}
	fail    atomic.Int32 // fail this many runs first
}

func (f *fakeRunner) Run(ctx context.Context, key string) error {
	f.mu.Lock()
	f.runs[key]++
	f.now[key]++
	f.maxSame = max(f.maxSame, f.now[key])
	f.mu.Unlock()
	defer func() { f.mu.Lock(); f.now[key]--; f.mu.Unlock() }()
	select {
	case <-f.hold:
	case <-ctx.Done():
	}
	if f.fail.Add(-1) >= 0 {
		return errors.New("not yet")
	}
	return nil
}

func (f *fakeRunner) count(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.runs[key]
}

// An upload enqueued while a worker runs it (the sweeper re-queues pending
// uploads, the stream may repeat) waits for that run to end and runs again
// then, never on a second worker at the same time.
func TestWorkersNeverRunAnUploadTwiceAtOnce(t *testing.T) {
	f := &fakeRunner{runs: map[string]int{}, now: map[string]int{}, hold: make(chan struct{})}
	w := NewWorkers(f, 8, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()

	w.Enqueue("k")
	waitUntil(t, func() bool { return f.count("k") == 1 })
	for range 20 { // while the first run holds
		w.Enqueue("k")
	}
	w.Enqueue("other")
	waitUntil(t, func() bool { return f.count("other") == 1 })
	time.Sleep(20 * time.Millisecond) // room for a wrong second run to start
	if n := f.count("k"); n != 1 {
		t.Fatalf("k started %d times while its first run was going", n)
	}
	close(f.hold) // let every run finish at once from now on
	waitUntil(t, func() bool { return f.count("k") == 2 })
	time.Sleep(20 * time.Millisecond)
	if n := f.count("k"); n != 2 {
		t.Fatalf("k ran %d times: 20 enqueues during one run should make one more run", n)
	}
	f.mu.Lock()
	maxSame := f.maxSame
	f.mu.Unlock()
	if maxSame != 1 {
		t.Fatalf("up to %d runs of one upload at the same time", maxSame)
	}
	cancel()
	<-done
}

// A failing run is retried with backoff until it succeeds.
func TestWorkersRetryFailures(t *testing.T) {
	f := &fakeRunner{runs: map[string]int{}, now: map[string]int{}, hold: make(chan struct{})}
	close(f.hold)
	f.fail.Store(2)
	w := NewWorkers(f, 2, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	w.Enqueue("k")
	waitUntil(t, func() bool { return f.count("k") == 3 }) // 100 ms, then 200 ms of backoff
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}
