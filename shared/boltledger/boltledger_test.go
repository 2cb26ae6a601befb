package boltledger

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/testkit/ledgertest"
	"github.com/flowgate/flowgate/shared/upload"
	bolt "go.etcd.io/bbolt"
)

// testClock is a settable clock, safe to read from bbolt's batch goroutines.
type testClock struct{ ns atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.set(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	return c
}

func (c *testClock) now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *testClock) set(t time.Time)         { c.ns.Store(t.UnixNano()) }
func (c *testClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// openLedger opens a ledger file in a fresh directory and closes it at the end.
func openLedger(t *testing.T) (*Ledger, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, err := Open(path, 0)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l, path
}

// testInfo makes an upload of size bytes in chunks of chunkSize (the chunk
// count flow.js uses with forceChunkSize: true).
func testInfo(ns, id string, size, chunkSize int64) upload.Info {
	chunks := int(max((size+chunkSize-1)/chunkSize, 1))
	return upload.Info{
		Key:          upload.UploadKey(ns, id, size, chunkSize, chunks),
		Namespace:    ns,
		Identifier:   id,
		FileName:     id + ".bin",
		RelativePath: id + ".bin",
		TotalSize:    size,
		ChunkSize:    chunkSize,
		TotalChunks:  chunks,
	}
}

// countAll counts every chunk of info and fails unless the last one made it ready.
func countAll(t *testing.T, l *Ledger, info upload.Info) {
	t.Helper()
	ctx := context.Background()
	for n := 1; n <= info.TotalChunks; n++ {
		ready, err := ledgertest.Count(ctx, l, info, n)
		if err != nil {
			t.Fatalf("Count(%d): %v", n, err)
		}
		if want := n == info.TotalChunks; ready != want {
			t.Fatalf("Count(%d) ready = %v, want %v", n, ready, want)
		}
	}
}

func mustGet(t *testing.T, l *Ledger, key string) upload.Record {
	t.Helper()
	rec, err := l.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	return rec
}

func mustLookup(t *testing.T, l *Ledger, info upload.Info, n int) (upload.State, bool) {
	t.Helper()
	slot, err := l.Lookup(context.Background(), info, n)
	if err != nil {
		t.Fatalf("Lookup(%d): %v", n, err)
	}
	return slot.State, slot.Counted
}

func TestCountEachChunkOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _ := openLedger(t)
	info := testInfo("public", "count-once", 10, 4) // 3 chunks

	if st, counted := mustLookup(t, l, info, 1); st != upload.StateUnknown || counted {
		t.Fatalf("before any count: state %q counted %v, want unknown/false", st, counted)
	}
	if _, err := l.Get(ctx, info.Key); !errors.Is(err, upload.ErrNotFound) {
		t.Fatalf("Get before any count: err %v, want ErrNotFound", err)
	}

	for i := 0; i < 3; i++ {
		ready, err := ledgertest.Count(ctx, l, info, 2)
		if err != nil || ready {
			t.Fatalf("Count(2) #%d = %v, %v; want false, nil", i, ready, err)
		}
	}
	rec := mustGet(t, l, info.Key)
	if rec.State != upload.StateReceiving || rec.Received != 1 {
		t.Fatalf("after counting chunk 2 three times: state %q received %d, want receiving/1", rec.State, rec.Received)
	}
	if rec.Generation == "" || rec.CreatedAt.IsZero() || rec.Info != info {
		t.Fatalf("record not created from info: %+v", rec)
	}
	if _, counted := mustLookup(t, l, info, 2); !counted {
		t.Fatal("chunk 2 not counted")
	}
	if _, counted := mustLookup(t, l, info, 1); counted {
		t.Fatal("chunk 1 counted without a Count")
	}

	if ready, err := ledgertest.Count(ctx, l, info, 1); err != nil || ready {
		t.Fatalf("Count(1) = %v, %v", ready, err)
	}
	if ready, err := ledgertest.Count(ctx, l, info, 3); err != nil || !ready {
		t.Fatalf("Count(3), the last missing chunk = %v, %v; want ready", ready, err)
	}
	gen := mustGet(t, l, info.Key).Generation

	// Past receiving: counting again changes nothing and never reports ready again.
	for n := 1; n <= 3; n++ {
		if ready, err := ledgertest.Count(ctx, l, info, n); err != nil || ready {
			t.Fatalf("Count(%d) on a ready upload = %v, %v; want false, nil", n, ready, err)
		}
	}
	rec = mustGet(t, l, info.Key)
	if rec.State != upload.StateReady || rec.Received != 3 || rec.Generation != gen {
		t.Fatalf("after recounting a ready upload: %+v", rec)
	}
	for n := 1; n <= 3; n++ {
		if st, counted := mustLookup(t, l, info, n); st != upload.StateReady || !counted {
			t.Fatalf("Lookup(%d) = %q, %v; want ready, true", n, st, counted)
		}
	}

	// Further along too: a complete upload takes no more counts.
	if _, err := l.Claim(ctx, info.Key, "a", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := l.Complete(ctx, info.Key, "a", upload.Result{Location: "x", Size: 10}); err != nil {
		t.Fatal(err)
	}
	if ready, err := ledgertest.Count(ctx, l, info, 3); err != nil || ready {
		t.Fatalf("Count on a complete upload = %v, %v", ready, err)
	}
	if rec := mustGet(t, l, info.Key); rec.State != upload.StateComplete || rec.Received != 3 {
		t.Fatalf("complete upload changed by a count: %+v", rec)
	}
}

// countConcurrently counts each chunk in chunks dups times across workers
// goroutines, duplicates spread out so that copies of one chunk race in
// different batches, and reports how many calls answered ready.
func countConcurrently(t *testing.T, l *Ledger, info upload.Info, chunks []int, dups, workers int) int {
	t.Helper()
	jobs := make(chan int)
	go func() {
		for d := 0; d < dups; d++ {
			for i := range chunks {
				jobs <- chunks[(i*7+d*13)%len(chunks)]
			}
		}
		close(jobs)
	}()
	var readies atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range jobs {
				ready, err := ledgertest.Count(context.Background(), l, info, n)
				if err != nil {
					errs <- err
					for range jobs {
					}
					return
				}
				if ready {
					readies.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Count: %v", err)
	}
	return int(readies.Load())
}

func TestCountConcurrentReadyOnce(t *testing.T) {
	t.Parallel()
	l, _ := openLedger(t)
	const chunks, dups, workers = 200, 4, 16
	info := testInfo("public", "concurrent", chunks*8, 8)
	if info.TotalChunks != chunks {
		t.Fatalf("bad test geometry: %d chunks", info.TotalChunks)
	}
	all := make([]int, chunks)
	for i := range all {
		all[i] = i + 1
	}

	// Every chunk but the last, many times over: duplicates must not make
	// up for the missing one.
	if n := countConcurrently(t, l, info, all[:chunks-1], dups, workers); n != 0 {
		t.Fatalf("ready reported %d times with chunk %d missing", n, chunks)
	}
	rec := mustGet(t, l, info.Key)
	if rec.Received != chunks-1 || rec.State != upload.StateReceiving {
		t.Fatalf("with one chunk missing: received %d state %q, want %d receiving", rec.Received, rec.State, chunks-1)
	}

	// Now all of them, each several times, concurrently.
	if n := countConcurrently(t, l, info, all, dups, workers); n != 1 {
		t.Fatalf("ready reported %d times, want exactly 1", n)
	}
	rec = mustGet(t, l, info.Key)
	if rec.Received != chunks || rec.State != upload.StateReady {
		t.Fatalf("record: received %d state %q, want %d ready", rec.Received, rec.State, chunks)
	}

	// And a fresh upload counted concurrently from nothing.
	fresh := testInfo("public", "concurrent-fresh", chunks*8, 8)
	if n := countConcurrently(t, l, fresh, all, dups, workers); n != 1 {
		t.Fatalf("fresh upload: ready reported %d times, want exactly 1", n)
	}
	if rec := mustGet(t, l, fresh.Key); rec.Received != chunks || rec.State != upload.StateReady {
		t.Fatalf("fresh record: received %d state %q", rec.Received, rec.State)
	}
}

func TestConflictingGeometry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _ := openLedger(t)
	first := testInfo("public", "same-id", 10, 4)  // 3 chunks
	second := testInfo("public", "same-id", 12, 4) // another size
	third := testInfo("public", "same-id", 10, 5)  // another chunk size
	other := testInfo("alice", "same-id", 12, 4)   // another namespace
	if first.Key == second.Key || first.Key == third.Key || second.Key == other.Key {
		t.Fatal("keys should differ")
	}

	if _, err := ledgertest.Count(ctx, l, first, 1); err != nil {
		t.Fatal(err)
	}
	for _, in := range []upload.Info{second, third} {
		if _, err := l.Lookup(ctx, in, 1); !errors.Is(err, upload.ErrConflict) {
			t.Fatalf("Lookup with another geometry while the first receives: err %v, want ErrConflict", err)
		}
		if ready, err := ledgertest.Count(ctx, l, in, 1); !errors.Is(err, upload.ErrConflict) || ready {
			t.Fatalf("Count with another geometry while the first receives: %v, %v; want ErrConflict", ready, err)
		}
		if _, err := l.Get(ctx, in.Key); !errors.Is(err, upload.ErrNotFound) {
			t.Fatalf("a refused Count left a record: %v", err)
		}
	}
	// Another namespace is another client: no conflict.
	if _, err := ledgertest.Count(ctx, l, other, 1); err != nil {
		t.Fatalf("Count in another namespace: %v", err)
	}
	// The first upload itself goes on.
	if st, counted := mustLookup(t, l, first, 1); st != upload.StateReceiving || !counted {
		t.Fatalf("first upload: %q %v", st, counted)
	}

	// Once the first is past receiving, the identifier is free for a new geometry.
	if _, err := ledgertest.Count(ctx, l, first, 2); err != nil {
		t.Fatal(err)
	}
	if ready, err := ledgertest.Count(ctx, l, first, 3); err != nil || !ready {
		t.Fatalf("completing the first: %v, %v", ready, err)
	}
	if st, counted := mustLookup(t, l, second, 1); st != upload.StateUnknown || counted {
		t.Fatalf("Lookup of the new geometry after the first is ready: %q %v", st, counted)
	}
	if _, err := ledgertest.Count(ctx, l, second, 1); err != nil {
		t.Fatalf("Count of the new geometry after the first is ready: %v", err)
	}
	// ... and now the new one holds the identifier against a third geometry.
	if _, err := ledgertest.Count(ctx, l, third, 1); !errors.Is(err, upload.ErrConflict) {
		t.Fatalf("third geometry while the second receives: %v, want ErrConflict", err)
	}
	// The first, being ready, is still readable by its own geometry.
	if rec := mustGet(t, l, first.Key); rec.State != upload.StateReady {
		t.Fatalf("first: %q", rec.State)
	}
}

// readyUpload makes a ready upload of 2 chunks.
func readyUpload(t *testing.T, l *Ledger, id string) upload.Info {
	t.Helper()
	info := testInfo("public", id, 8, 4)
	countAll(t, l, info)
	return info
}

func TestClaimAndLease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _ := openLedger(t)
	clock := newTestClock()
	l.SetClock(clock.now)

	receiving := testInfo("public", "still-receiving", 8, 4)
	if _, err := ledgertest.Count(ctx, l, receiving, 1); err != nil {
		t.Fatal(err)
	}
	if rec, err := l.Claim(ctx, receiving.Key, "a", time.Minute); !errors.Is(err, upload.ErrNotClaimable) || rec.State != upload.StateReceiving {
		t.Fatalf("Claim of a receiving upload: %q, %v; want ErrNotClaimable with the record", rec.State, err)
	}
	if _, err := l.Claim(ctx, "00112233445566778899aabbccddeeff", "a", time.Minute); !errors.Is(err, upload.ErrNotFound) {
		t.Fatalf("Claim of an unknown upload: %v, want ErrNotFound", err)
	}

	info := readyUpload(t, l, "claim")
	rec, err := l.Claim(ctx, info.Key, "a", time.Minute)
	if err != nil {
		t.Fatalf("Claim of a ready upload: %v", err)
	}
	if rec.State != upload.StateAssembling || rec.Owner != "a" || !rec.LeaseUntil.Equal(clock.now().Add(time.Minute)) {
		t.Fatalf("claimed record: %+v", rec)
	}
	if got := mustGet(t, l, info.Key); got.State != upload.StateAssembling || got.Owner != "a" {
		t.Fatalf("claim not stored: %+v", got)
	}

	// Another owner waits while the lease lives.
	clock.advance(59 * time.Second)
	rec, err = l.Claim(ctx, info.Key, "b", time.Minute)
	if !errors.Is(err, upload.ErrNotClaimable) {
		t.Fatalf("Claim by b under a's live lease: %v, want ErrNotClaimable", err)
	}
	if rec.Owner != "a" || rec.State != upload.StateAssembling {
		t.Fatalf("ErrNotClaimable should come with the current record: %+v", rec)
	}
	// The same owner can claim again, which renews its lease.
	if rec, err = l.Claim(ctx, info.Key, "a", time.Minute); err != nil || rec.Owner != "a" {
		t.Fatalf("re-claim by a: %+v, %v", rec, err)
	}
	clock.advance(59 * time.Second)
	if _, err := l.Claim(ctx, info.Key, "b", time.Minute); !errors.Is(err, upload.ErrNotClaimable) {
		t.Fatalf("Claim by b under a's renewed lease: %v", err)
	}

	// After the lease runs out, b takes over.
	clock.advance(2 * time.Second)
	rec, err = l.Claim(ctx, info.Key, "b", time.Minute)
	if err != nil || rec.Owner != "b" || rec.State != upload.StateAssembling {
		t.Fatalf("Claim by b after a's lease expired: %+v, %v", rec, err)
	}

	// a is stale now: it can neither complete nor fail the upload.
	if err := l.Complete(ctx, info.Key, "a", upload.Result{Location: "from-a"}); !errors.Is(err, upload.ErrLeaseLost) {
		t.Fatalf("Complete by stale owner a: %v, want ErrLeaseLost", err)
	}
	if err := l.Fail(ctx, info.Key, "a", "a gives up"); !errors.Is(err, upload.ErrLeaseLost) {
		t.Fatalf("Fail by stale owner a: %v, want ErrLeaseLost", err)
	}
	if got := mustGet(t, l, info.Key); got.State != upload.StateAssembling || got.Owner != "b" || got.Result != nil {
		t.Fatalf("stale owner changed the record: %+v", got)
	}

	clock.advance(time.Second)
	res := upload.Result{Location: "files/b", Size: 8, ETag: "e"}
	if err := l.Complete(ctx, info.Key, "b", res); err != nil {
		t.Fatalf("Complete by b: %v", err)
	}
	got := mustGet(t, l, info.Key)
	if got.State != upload.StateComplete || got.Result == nil || *got.Result != res || got.Owner != "b" ||
		!got.UpdatedAt.Equal(clock.now()) || got.Published {
		t.Fatalf("completed record: %+v", got)
	}
	// Complete twice by the same owner (a retry) is a no-op: the first result stays.
	if err := l.Complete(ctx, info.Key, "b", upload.Result{Location: "other", Size: 1}); err != nil {
		t.Fatalf("second Complete: %v", err)
	}
	// The stale owner's late Complete is told it lost, so it does not publish,
	// and changes nothing.
	if err := l.Complete(ctx, info.Key, "a", upload.Result{Location: "other", Size: 1}); !errors.Is(err, upload.ErrLeaseLost) {
		t.Fatalf("Complete by stale owner a after b completed: %v, want ErrLeaseLost", err)
	}
	if again := mustGet(t, l, info.Key); *again.Result != res || again.State != upload.StateComplete {
		t.Fatalf("a second Complete changed the record: %+v", again)
	}
	// A complete upload is not claimable, and the error carries the record.
	rec, err = l.Claim(ctx, info.Key, "c", time.Minute)
	if !errors.Is(err, upload.ErrNotClaimable) || rec.State != upload.StateComplete || rec.Result == nil {
		t.Fatalf("Claim of a complete upload: %+v, %v", rec, err)
	}
	if err := l.Fail(ctx, info.Key, "b", "late"); !errors.Is(err, upload.ErrLeaseLost) {
		t.Fatalf("Fail after Complete: %v, want ErrLeaseLost", err)
	}

	if err := l.MarkPublished(ctx, info.Key); err != nil {
		t.Fatal(err)
	}
	if err := l.MarkPublished(ctx, info.Key); err != nil {
		t.Fatalf("second MarkPublished: %v", err)
	}
	if !mustGet(t, l, info.Key).Published {
		t.Fatal("MarkPublished did not stick")
	}
	if err := l.MarkPublished(ctx, "00112233445566778899aabbccddeeff"); !errors.Is(err, upload.ErrNotFound) {
		t.Fatalf("MarkPublished of an unknown upload: %v", err)
	}
}

func TestFail(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _ := openLedger(t)
	info := readyUpload(t, l, "fail")
	if err := l.Fail(ctx, info.Key, "a", "not claimed"); !errors.Is(err, upload.ErrLeaseLost) {
		t.Fatalf("Fail of an unclaimed upload: %v, want ErrLeaseLost", err)
	}
	if _, err := l.Claim(ctx, info.Key, "a", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := l.Fail(ctx, info.Key, "b", "not mine"); !errors.Is(err, upload.ErrLeaseLost) {
		t.Fatalf("Fail by a non-owner: %v, want ErrLeaseLost", err)
	}
	if err := l.Fail(ctx, info.Key, "a", "size mismatch"); err != nil {
		t.Fatalf("Fail by owner: %v", err)
	}
	rec := mustGet(t, l, info.Key)
	if rec.State != upload.StateFailed || rec.Error != "size mismatch" || rec.Owner != "" {
		t.Fatalf("failed record: %+v", rec)
	}
	if _, err := l.Claim(ctx, info.Key, "a", time.Minute); !errors.Is(err, upload.ErrNotClaimable) {
		t.Fatalf("Claim of a failed upload: %v", err)
	}
	if err := l.Complete(ctx, info.Key, "a", upload.Result{}); !errors.Is(err, upload.ErrLeaseLost) {
		t.Fatalf("Complete of a failed upload: %v, want ErrLeaseLost", err)
	}
	// A failed upload is not live: sending it again starts a new generation.
	if slot, err := l.Lookup(ctx, info, 1); err != nil || !slot.New || slot.Counted || slot.Replaces != rec.Generation {
		t.Fatalf("Lookup of a failed upload: %+v, %v; want a new slot replacing its generation", slot, err)
	}
}

func TestPending(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _ := openLedger(t)

	receiving := testInfo("public", "p-receiving", 8, 4)
	if _, err := ledgertest.Count(ctx, l, receiving, 1); err != nil {
		t.Fatal(err)
	}
	ready := readyUpload(t, l, "p-ready")
	assembling := readyUpload(t, l, "p-assembling")
	unpublished := readyUpload(t, l, "p-unpublished")
	published := readyUpload(t, l, "p-published")
	failed := readyUpload(t, l, "p-failed")
	for _, in := range []upload.Info{assembling, unpublished, published, failed} {
		if _, err := l.Claim(ctx, in.Key, "o", time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	for _, in := range []upload.Info{unpublished, published} {
		if err := l.Complete(ctx, in.Key, "o", upload.Result{Location: "x", Size: 8}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.MarkPublished(ctx, published.Key); err != nil {
		t.Fatal(err)
	}
	if err := l.Fail(ctx, failed.Key, "o", "bad"); err != nil {
		t.Fatal(err)
	}

	recs, err := l.Pending(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]upload.State{}
	for _, r := range recs {
		got[r.Key] = r.State
	}
	want := map[string]upload.State{
		ready.Key:       upload.StateReady,
		assembling.Key:  upload.StateAssembling,
		unpublished.Key: upload.StateComplete,
	}
	if len(got) != len(want) || len(recs) != len(want) {
		t.Fatalf("Pending = %v, want %v", got, want)
	}
	for k, st := range want {
		if got[k] != st {
			t.Fatalf("Pending = %v, want %v", got, want)
		}
	}
}

func TestRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, err := Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	partial := testInfo("public", "r-partial", 16, 4) // 4 chunks
	for _, n := range []int{1, 3} {
		if _, err := ledgertest.Count(ctx, l, partial, n); err != nil {
			t.Fatal(err)
		}
	}
	ready := readyUpload(t, l, "r-ready")
	assembling := readyUpload(t, l, "r-assembling")
	complete := readyUpload(t, l, "r-complete")
	for _, in := range []upload.Info{assembling, complete} {
		if _, err := l.Claim(ctx, in.Key, "old-process", time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	res := upload.Result{Location: "files/done", Size: 8}
	if err := l.Complete(ctx, complete.Key, "old-process", res); err != nil {
		t.Fatal(err)
	}
	before := map[string]upload.Record{}
	for _, in := range []upload.Info{partial, ready, assembling, complete} {
		before[in.Key] = mustGet(t, l, in.Key)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l, err = Open(path, 0)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer l.Close()

	// Counts survive.
	rec := mustGet(t, l, partial.Key)
	if rec.State != upload.StateReceiving || rec.Received != 2 || rec.Generation != before[partial.Key].Generation {
		t.Fatalf("partial after restart: %+v", rec)
	}
	for n, want := range map[int]bool{1: true, 2: false, 3: true, 4: false} {
		if _, counted := mustLookup(t, l, partial, n); counted != want {
			t.Fatalf("chunk %d counted = %v after restart, want %v", n, counted, want)
		}
	}
	if ready, err := ledgertest.Count(ctx, l, partial, 3); err != nil || ready {
		t.Fatalf("recount after restart: %v %v", ready, err)
	}
	if _, err := ledgertest.Count(ctx, l, partial, 2); err != nil {
		t.Fatal(err)
	}
	if r, err := ledgertest.Count(ctx, l, partial, 4); err != nil || !r {
		t.Fatalf("finishing the partial upload after restart: %v %v", r, err)
	}

	if rec := mustGet(t, l, ready.Key); rec.State != upload.StateReady || rec.Received != 2 {
		t.Fatalf("ready after restart: %+v", rec)
	}
	// An assembly abandoned by the last process is released at once, without
	// waiting for its lease.
	rec = mustGet(t, l, assembling.Key)
	if rec.State != upload.StateReady || rec.Owner != "" || !rec.LeaseUntil.IsZero() {
		t.Fatalf("assembling after restart: %+v, want ready with no owner", rec)
	}
	if _, err := l.Claim(ctx, assembling.Key, "new-process", time.Minute); err != nil {
		t.Fatalf("claim after restart: %v", err)
	}
	rec = mustGet(t, l, complete.Key)
	if rec.State != upload.StateComplete || rec.Result == nil || *rec.Result != res {
		t.Fatalf("complete after restart: %+v", rec)
	}
}

func TestIdleAndForget(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _ := openLedger(t)
	clock := newTestClock()
	l.SetClock(clock.now)
	t0 := clock.now()

	old := testInfo("public", "f-old", 8, 4)
	if _, err := ledgertest.Count(ctx, l, old, 1); err != nil {
		t.Fatal(err)
	}
	oldReady := readyUpload(t, l, "f-ready")
	oldAssembling := readyUpload(t, l, "f-assembling")
	if _, err := l.Claim(ctx, oldAssembling.Key, "o", time.Minute); err != nil {
		t.Fatal(err)
	}
	oldComplete := readyUpload(t, l, "f-complete")
	if _, err := l.Claim(ctx, oldComplete.Key, "o", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := l.Complete(ctx, oldComplete.Key, "o", upload.Result{Location: "x", Size: 8}); err != nil {
		t.Fatal(err)
	}
	if err := l.MarkPublished(ctx, oldComplete.Key); err != nil {
		t.Fatal(err)
	}
	oldFailed := readyUpload(t, l, "f-failed")
	if _, err := l.Claim(ctx, oldFailed.Key, "o", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := l.Fail(ctx, oldFailed.Key, "o", "bad"); err != nil {
		t.Fatal(err)
	}

	clock.advance(time.Hour)
	cut := clock.now()
	clock.advance(time.Hour)
	fresh := testInfo("public", "f-fresh", 8, 4)
	if _, err := ledgertest.Count(ctx, l, fresh, 1); err != nil {
		t.Fatal(err)
	}
	// An old upload that got a chunk after the cut is not idle either.
	revived := testInfo("public", "f-revived", 12, 4)
	clock.set(t0)
	if _, err := ledgertest.Count(ctx, l, revived, 1); err != nil {
		t.Fatal(err)
	}
	clock.set(cut.Add(time.Minute))
	if _, err := ledgertest.Count(ctx, l, revived, 2); err != nil {
		t.Fatal(err)
	}

	idle, err := l.Idle(ctx, cut)
	if err != nil {
		t.Fatal(err)
	}
	idleKeys := map[string]bool{}
	for _, r := range idle {
		idleKeys[r.Key] = true
	}
	wantIdle := []upload.Info{old, oldReady, oldAssembling, oldComplete, oldFailed}
	if len(idle) != len(wantIdle) {
		t.Fatalf("Idle(cut) lists %d records, want %d", len(idle), len(wantIdle))
	}
	for _, in := range wantIdle {
		if !idleKeys[in.Key] {
			t.Fatalf("Idle(cut) misses %s", in.Identifier)
		}
	}

	// Not idle since before: kept.
	for _, in := range []upload.Info{fresh, revived} {
		gone, err := l.Forget(ctx, in.Key, cut)
		if err != nil || gone {
			t.Fatalf("Forget(%s) of a busy upload = %v, %v", in.Identifier, gone, err)
		}
		mustGet(t, l, in.Key)
	}
	// Forget with an earlier cut than the record's last update: kept.
	if gone, err := l.Forget(ctx, old.Key, t0); err != nil || gone {
		t.Fatalf("Forget(old) with before == its last update = %v, %v", gone, err)
	}
	// Ready and assembling uploads are never forgotten, however old.
	for _, in := range []upload.Info{oldReady, oldAssembling} {
		gone, err := l.Forget(ctx, in.Key, clock.now().Add(24*time.Hour))
		if err != nil || gone {
			t.Fatalf("Forget(%s) = %v, %v; want kept", in.Identifier, gone, err)
		}
		mustGet(t, l, in.Key)
	}
	// Idle receiving, complete and failed uploads go.
	for _, in := range []upload.Info{old, oldComplete, oldFailed} {
		gone, err := l.Forget(ctx, in.Key, cut)
		if err != nil || !gone {
			t.Fatalf("Forget(%s) = %v, %v; want forgotten", in.Identifier, gone, err)
		}
		if _, err := l.Get(ctx, in.Key); !errors.Is(err, upload.ErrNotFound) {
			t.Fatalf("Get(%s) after Forget: %v", in.Identifier, err)
		}
		if st, counted := mustLookup(t, l, in, 1); st != upload.StateUnknown || counted {
			t.Fatalf("Lookup(%s) after Forget: %q %v", in.Identifier, st, counted)
		}
	}
	// Forgetting what is gone is fine.
	if gone, err := l.Forget(ctx, old.Key, cut); err != nil || gone {
		t.Fatalf("second Forget = %v, %v", gone, err)
	}

	// The identity entry went with the receiving record: a new geometry under
	// the same identifier is accepted...
	newGeom := testInfo("public", "f-old", 9, 4)
	if _, err := ledgertest.Count(ctx, l, newGeom, 1); err != nil {
		t.Fatalf("Count of a new geometry after Forget: %v", err)
	}
	// ... while the fresh upload still holds its identifier.
	if _, err := ledgertest.Count(ctx, l, testInfo("public", "f-fresh", 9, 4), 1); !errors.Is(err, upload.ErrConflict) {
		t.Fatalf("new geometry of a kept upload: %v, want ErrConflict", err)
	}
	// The same geometry as the forgotten one starts over, with a new generation.
	if _, err := ledgertest.Count(ctx, l, oldComplete, 1); err != nil {
		t.Fatal(err)
	}
	if rec := mustGet(t, l, oldComplete.Key); rec.State != upload.StateReceiving || rec.Received != 1 {
		t.Fatalf("re-sent upload after Forget: %+v", rec)
	}
}

// Forget deletes the identity entry only if it still points to the forgotten
// upload: a newer upload that took the identifier over keeps it.
func TestForgetKeepsNewerIdentity(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _ := openLedger(t)
	clock := newTestClock()
	l.SetClock(clock.now)

	first := readyUpload(t, l, "ident") // 8 bytes
	if _, err := l.Claim(ctx, first.Key, "o", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := l.Complete(ctx, first.Key, "o", upload.Result{Location: "x", Size: 8}); err != nil {
		t.Fatal(err)
	}
	if err := l.MarkPublished(ctx, first.Key); err != nil {
		t.Fatal(err)
	}
	clock.advance(time.Hour)
	second := testInfo("public", "ident", 12, 4)
	if _, err := ledgertest.Count(ctx, l, second, 1); err != nil {
		t.Fatal(err)
	}
	if gone, err := l.Forget(ctx, first.Key, clock.now().Add(-time.Minute)); err != nil || !gone {
		t.Fatalf("Forget(first) = %v, %v", gone, err)
	}
	third := testInfo("public", "ident", 16, 4)
	if _, err := ledgertest.Count(ctx, l, third, 1); !errors.Is(err, upload.ErrConflict) {
		t.Fatalf("after forgetting an older upload, a third geometry: %v, want ErrConflict (second still receiving)", err)
	}
}

// A complete upload whose event has not gone out yet is work the pipeline
// still has (Pending lists it); forgetting it loses the event for good, since
// the pipeline then finds no record to publish from.
func TestForgetKeepsUnpublishedResult(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _ := openLedger(t)
	clock := newTestClock()
	l.SetClock(clock.now)

	info := readyUpload(t, l, "unpublished")
	if _, err := l.Claim(ctx, info.Key, "o", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := l.Complete(ctx, info.Key, "o", upload.Result{Location: "x", Size: 8}); err != nil {
		t.Fatal(err)
	}
	clock.advance(48 * time.Hour) // the event bus has been down ever since
	pending, err := l.Pending(ctx)
	if err != nil || len(pending) != 1 {
		t.Fatalf("Pending = %v, %v", pending, err)
	}
	gone, err := l.Forget(ctx, info.Key, clock.now().Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if gone {
		t.Fatal("Forget dropped a complete upload whose completion event was never published: the event is lost")
	}
	if rec := mustGet(t, l, info.Key); rec.State != upload.StateComplete || rec.Published {
		t.Fatalf("record: %+v", rec)
	}
	// Once published, it may go.
	if err := l.MarkPublished(ctx, info.Key); err != nil {
		t.Fatal(err)
	}
	if gone, err := l.Forget(ctx, info.Key, clock.now().Add(-24*time.Hour)); err != nil || !gone {
		t.Fatalf("Forget of a published, idle upload = %v, %v", gone, err)
	}
}

// Counts that share one group commit run in one transaction: a chunk counted
// by the first must read as counted to the second. (bbolt reads a key put
// with a nil value in the same transaction as absent, which once counted
// such a chunk twice and made an upload ready with a chunk missing.)
func TestCountSameChunkTwiceInOneCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _ := openLedger(t)
	info := testInfo("public", "one-commit", 3*8, 8)
	slot, err := l.Lookup(ctx, info, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Count(ctx, info, 2, slot); err != nil {
		t.Fatal(err)
	}
	// Hold the committer so that the next counts queue up and share a commit.
	release := make(chan struct{})
	held := make(chan struct{})
	go l.writes.do(func(*bolt.Tx) error { close(held); <-release; return nil })
	<-held
	slot, err = l.Lookup(ctx, info, 1)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := l.Count(ctx, info, 1, slot); err != nil {
				t.Error(err)
			}
		}()
	}
	for queued := 0; queued < 2; {
		time.Sleep(time.Millisecond)
		l.writes.mu.Lock()
		queued = len(l.writes.queue)
		l.writes.mu.Unlock()
	}
	close(release)
	wg.Wait()
	if rec := mustGet(t, l, info.Key); rec.Received != 2 || rec.State != upload.StateReceiving {
		t.Fatalf("after counting chunk 1 twice in one commit: received %d, state %s; want 2, receiving", rec.Received, rec.State)
	}
}

// openExpiring opens a ledger whose receiving uploads expire after idleTTL,
// on a test clock.
func openExpiring(t *testing.T, idleTTL time.Duration) (*Ledger, *testClock) {
	t.Helper()
	l, err := Open(filepath.Join(t.TempDir(), "ledger.db"), idleTTL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	clock := newTestClock()
	l.SetClock(clock.now)
	return l, clock
}

// A receiving record idle past its expiry is not live, even before the
// sweeper removes it: no chunk of it reads as counted, and the next count
// starts a new generation in its place (or, for a chunk stored under its
// own generation meanwhile, revives it).
func TestExpiredRecordIsNotLive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, clock := openExpiring(t, time.Hour)
	info := testInfo("public", "expiring", 3*8, 8)
	if _, err := ledgertest.Count(ctx, l, info, 1); err != nil {
		t.Fatal(err)
	}
	old := mustGet(t, l, info.Key)
	clock.advance(time.Hour + time.Second)
	slot, err := l.Lookup(ctx, info, 1)
	if err != nil || !slot.New || slot.Counted || slot.Replaces != old.Generation || slot.Generation == old.Generation {
		t.Fatalf("Lookup of an expired upload's counted chunk = %+v, %v; want a new generation replacing %s", slot, err, old.Generation)
	}
	// A request that looked chunk 2 up before the expiry still counts it in
	// the old generation, which it revives.
	if _, err := l.Count(ctx, info, 2, upload.Slot{State: upload.StateReceiving, Generation: old.Generation}); err != nil {
		t.Fatal(err)
	}
	if rec := mustGet(t, l, info.Key); rec.Generation != old.Generation || rec.Received != 2 {
		t.Fatalf("after a count in the expired generation: %+v", rec)
	}
	// The new slot, taken while the record was dead, is stale now.
	var stale *upload.StaleSlotError
	if _, err := l.Count(ctx, info, 1, slot); !errors.As(err, &stale) || stale.Current.Generation != old.Generation || !stale.Current.Counted {
		t.Fatalf("Count in a new generation of a revived record: %v; want it told chunk 1 is counted in %s", err, old.Generation)
	}
	// Dead again: a new generation replaces it, with none of its chunks.
	clock.advance(time.Hour + time.Second)
	if _, err := ledgertest.Count(ctx, l, info, 3); err != nil {
		t.Fatal(err)
	}
	rec := mustGet(t, l, info.Key)
	if rec.Generation == old.Generation || rec.Received != 1 || rec.State != upload.StateReceiving {
		t.Fatalf("after the old generation died again: %+v; want a new one with chunk 3 only", rec)
	}
	if st, counted := mustLookup(t, l, info, 1); st != upload.StateReceiving || counted {
		t.Fatalf("chunk 1 of the new generation: %s %v; want not counted", st, counted)
	}
}

// A counted chunk is reported only with the record refreshed, so that it
// stays live for most of its idle expiry after the answer.
func TestLookupRefreshesWhatItReportsCounted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, clock := openExpiring(t, 8*time.Hour)
	info := testInfo("public", "refreshed", 2*8, 8)
	if _, err := ledgertest.Count(ctx, l, info, 1); err != nil {
		t.Fatal(err)
	}
	clock.advance(7 * time.Hour)
	if _, counted := mustLookup(t, l, info, 1); !counted {
		t.Fatal("chunk 1 not counted")
	}
	if rec := mustGet(t, l, info.Key); !rec.UpdatedAt.Equal(clock.now()) {
		t.Fatalf("the record was not refreshed by the answer: updated %v, now %v", rec.UpdatedAt, clock.now())
	}
	clock.advance(7 * time.Hour) // 14 hours after the chunk, 7 after the answer
	if _, counted := mustLookup(t, l, info, 1); !counted {
		t.Fatal("the record expired after the client was told chunk 1 is there")
	}
}

// A failed upload is not live either: sending it again starts a new
// generation at once, which the status shows without the old error.
func TestFailedUploadStartsAgain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _ := openLedger(t)
	info := readyUpload(t, l, "fails")
	if _, err := l.Claim(ctx, info.Key, "a", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := l.Fail(ctx, info.Key, "a", "chunk 2 is missing"); err != nil {
		t.Fatal(err)
	}
	old := mustGet(t, l, info.Key)
	if ready, err := ledgertest.Count(ctx, l, info, 1); err != nil || ready {
		t.Fatalf("first chunk sent again: %v, %v", ready, err)
	}
	rec := mustGet(t, l, info.Key)
	if rec.State != upload.StateReceiving || rec.Generation == old.Generation || rec.Error != "" || rec.Received != 1 {
		t.Fatalf("record after sending a failed upload's first chunk again: %+v", rec)
	}
}

// Claims count attempts; Postpone notes why an attempt failed and lets
// another assembler claim the upload once its time is up.
func TestAttemptsAndPostpone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, clock := openExpiring(t, 0)
	info := readyUpload(t, l, "postponed")
	rec, err := l.Claim(ctx, info.Key, "a", time.Hour)
	if err != nil || rec.Attempts != 1 {
		t.Fatalf("first claim: %+v, %v; want attempt 1", rec, err)
	}
	if err := l.Postpone(ctx, info.Key, "b", "not mine", clock.now()); !errors.Is(err, upload.ErrLeaseLost) {
		t.Fatalf("Postpone by a non-owner: %v", err)
	}
	if err := l.Postpone(ctx, info.Key, "a", "S3 timed out", clock.now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Claim(ctx, info.Key, "b", time.Hour); !errors.Is(err, upload.ErrNotClaimable) {
		t.Fatalf("claim by another before the postponed time: %v", err)
	}
	clock.advance(time.Minute + time.Second)
	rec, err = l.Claim(ctx, info.Key, "b", time.Hour)
	if err != nil || rec.Attempts != 2 || rec.LastError != "S3 timed out" || rec.Owner != "b" {
		t.Fatalf("claim after the postponed time: %+v, %v", rec, err)
	}
}
