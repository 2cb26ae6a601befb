package dynamoledger_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowgate/flowgate/shared/dynamoledger"
	"github.com/flowgate/flowgate/shared/localaws"
	"github.com/flowgate/flowgate/shared/localaws/awstest"
	"github.com/flowgate/flowgate/shared/localaws/faults"
	"github.com/flowgate/flowgate/shared/upload"
)

// These tests run against a real dynalite started by localaws; nothing is
// skipped if it cannot start.
func TestMain(m *testing.M) { os.Exit(localaws.RunTests(m)) }

// newLedger returns a ledger on a fresh table, its clock, and the fault
// injector wrapped around its client (passing everything until told).
func newLedger(t *testing.T) (*dynamoledger.Ledger, *awstest.Clock, *faults.Injector) {
	t.Helper()
	db := awstest.DynamoDB(t)
	clock := &awstest.Clock{}
	in := &faults.Injector{}
	return &dynamoledger.Ledger{
		Client: faults.DynamoDB{API: db, In: in},
		Table:  awstest.Table(t, db),
		Now:    clock.Now,
	}, clock, in
}

func info(ns, ident string, size, chunk int64) upload.Info {
	chunks := int(max(size/chunk, 1))
	return upload.Info{
		Key:       upload.UploadKey(ns, ident, size, chunk, chunks),
		Namespace: ns, Identifier: ident, FileName: ident + ".bin",
		TotalSize: size, ChunkSize: chunk, TotalChunks: chunks,
	}
}

func mustCount(t *testing.T, l upload.Ledger, in upload.Info, n int) bool {
	t.Helper()
	ready, err := l.Count(context.Background(), in, n)
	if err != nil {
		t.Fatalf("count chunk %d: %v", n, err)
	}
	return ready
}

func TestCountSequentialWithDuplicates(t *testing.T) {
	l, _, in := newLedger(t)
	ctx := context.Background()
	u := info("", "seq", 5000, 1000) // 5 chunks

	if st, counted, err := l.Lookup(ctx, u, 1); err != nil || st != upload.StateUnknown || counted {
		t.Fatalf("lookup before anything = %v %v %v, want unknown", st, counted, err)
	}
	readies := 0
	for _, n := range []int{1, 2, 2, 3, 1, 4, 4} {
		if mustCount(t, l, u, n) {
			readies++
		}
	}
	if readies != 0 {
		t.Fatalf("ready before the last chunk")
	}
	rec, err := l.Get(ctx, u.Key)
	if err != nil || rec.State != upload.StateReceiving || rec.Received != 4 {
		t.Fatalf("record after 4 distinct chunks = %+v, %v; want receiving, 4 received", rec, err)
	}
	for n := 1; n <= 5; n++ {
		_, counted, err := l.Lookup(ctx, u, n)
		if err != nil || counted != (n <= 4) {
			t.Fatalf("lookup chunk %d: counted=%v err=%v", n, counted, err)
		}
	}
	if !mustCount(t, l, u, 5) {
		t.Fatal("the last chunk did not make the upload ready")
	}
	for _, n := range []int{5, 1, 3} { // duplicates after ready change nothing
		if mustCount(t, l, u, n) {
			t.Fatalf("duplicate of chunk %d reported ready again", n)
		}
	}
	rec, _ = l.Get(ctx, u.Key)
	if rec.State != upload.StateReady || rec.Received != 5 || rec.Generation == "" || rec.FileName != "seq.bin" {
		t.Fatalf("record = %+v", rec)
	}
	if st, counted, _ := l.Lookup(ctx, u, 3); st != upload.StateReady || !counted {
		t.Fatalf("lookup after ready = %v %v", st, counted)
	}
	// Per-chunk work: what a duplicate-free chunk costs, for the report.
	t.Logf("DynamoDB calls for 5 chunks + 5 duplicates + lookups: %v", in.AllCalls())
}

func TestCountConcurrent(t *testing.T) {
	l, _, _ := newLedger(t)
	ctx := context.Background()
	const uploads, chunks, dup = 4, 25, 4
	var wg sync.WaitGroup
	readies := make([]atomic.Int32, uploads)
	errs := make(chan error, uploads*chunks*dup)
	infos := make([]upload.Info, uploads)
	for i := range uploads {
		infos[i] = info("ns", fmt.Sprintf("conc-%d", i), chunks*100, 100)
		for n := 1; n <= chunks; n++ {
			for range dup { // every chunk counted by several racing requests
				wg.Go(func() {
					ready, err := l.Count(ctx, infos[i], n)
					if err != nil {
						errs <- fmt.Errorf("upload %d chunk %d: %w", i, n, err)
					}
					if ready {
						readies[i].Add(1)
					}
				})
			}
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range uploads {
		if got := readies[i].Load(); got != 1 {
			t.Errorf("upload %d: ready reported %d times, want exactly 1", i, got)
		}
		rec, err := l.Get(ctx, infos[i].Key)
		if err != nil || rec.State != upload.StateReady {
			t.Errorf("upload %d: %+v %v, want ready", i, rec.State, err)
		}
	}
}

func TestConflict(t *testing.T) {
	l, clock, _ := newLedger(t)
	ctx := context.Background()
	a := info("alice", "same-id", 3000, 1000)
	b := info("alice", "same-id", 4000, 1000)   // same identifier, other geometry
	other := info("bob", "same-id", 4000, 1000) // other namespace

	mustCount(t, l, a, 1)
	if _, _, err := l.Lookup(ctx, b, 1); !errors.Is(err, upload.ErrConflict) {
		t.Fatalf("lookup of b while a receives: %v, want ErrConflict", err)
	}
	if _, err := l.Count(ctx, b, 1); !errors.Is(err, upload.ErrConflict) {
		t.Fatalf("count of b while a receives: %v, want ErrConflict", err)
	}
	if _, err := l.Get(ctx, b.Key); !errors.Is(err, upload.ErrNotFound) {
		t.Fatalf("refused upload got a record: %v", err)
	}
	mustCount(t, l, other, 1) // another namespace never conflicts

	// Once a is no longer receiving, b may start.
	mustCount(t, l, a, 2)
	if !mustCount(t, l, a, 3) {
		t.Fatal("a not ready")
	}
	mustCount(t, l, b, 1)
	if st, _, err := l.Lookup(ctx, a, 1); err != nil || st != upload.StateReady {
		t.Fatalf("a after b started: %v %v", st, err)
	}
	// b holds the identifier now; a new geometry c conflicts with b until
	// b's record expires (idle past its TTL, even before DynamoDB deletes it).
	c := info("alice", "same-id", 5000, 1000)
	if _, err := l.Count(ctx, c, 1); !errors.Is(err, upload.ErrConflict) {
		t.Fatalf("count of c while b receives: %v, want ErrConflict", err)
	}
	clock.Advance(dynamoledger.DefaultIdleTTL + time.Minute)
	mustCount(t, l, c, 1)
}

func TestClaimLeaseComplete(t *testing.T) {
	l, clock, _ := newLedger(t)
	ctx := context.Background()
	u := info("", "claim", 2000, 1000)

	if _, err := l.Claim(ctx, u.Key, "a", time.Minute); !errors.Is(err, upload.ErrNotFound) {
		t.Fatalf("claim of unknown upload: %v, want ErrNotFound", err)
	}
	mustCount(t, l, u, 1)
	if rec, err := l.Claim(ctx, u.Key, "a", time.Minute); !errors.Is(err, upload.ErrNotClaimable) || rec.State != upload.StateReceiving {
		t.Fatalf("claim while receiving: %v %v, want ErrNotClaimable", rec.State, err)
	}
	mustCount(t, l, u, 2)

	rec, err := l.Claim(ctx, u.Key, "a", time.Minute)
	if err != nil || rec.State != upload.StateAssembling || rec.Owner != "a" || rec.TotalChunks != 2 || rec.Generation == "" {
		t.Fatalf("claim by a = %+v, %v", rec, err)
	}
	if _, err := l.Claim(ctx, u.Key, "b", time.Minute); !errors.Is(err, upload.ErrNotClaimable) {
		t.Fatalf("claim by b during a's lease: %v", err)
	}
	if _, err := l.Claim(ctx, u.Key, "a", time.Minute); err != nil {
		t.Fatalf("re-claim by the same owner: %v", err)
	}
	if st, counted, _ := l.Lookup(ctx, u, 1); st != upload.StateAssembling || !counted {
		t.Fatalf("lookup while assembling = %v %v", st, counted)
	}

	clock.Advance(2 * time.Minute) // a's lease runs out
	if rec, err = l.Claim(ctx, u.Key, "b", time.Minute); err != nil || rec.Owner != "b" {
		t.Fatalf("claim by b after the lease: %+v %v", rec, err)
	}
	res := upload.Result{Location: "s3://b/k", Bucket: "b", Object: "k", Size: 2000, ETag: "e-1"}
	if err := l.Complete(ctx, u.Key, "a", res); !errors.Is(err, upload.ErrLeaseLost) {
		t.Fatalf("complete by a after losing the lease: %v, want ErrLeaseLost", err)
	}
	if err := l.Complete(ctx, u.Key, "b", res); err != nil {
		t.Fatalf("complete by b: %v", err)
	}
	if err := l.Complete(ctx, u.Key, "b", res); err != nil {
		t.Fatalf("repeated complete: %v", err)
	}
	// a, finishing late, must learn it lost, or it would publish its own result.
	if err := l.Complete(ctx, u.Key, "a", upload.Result{Location: "s3://b/late"}); !errors.Is(err, upload.ErrLeaseLost) {
		t.Fatalf("late complete by a after b finished: %v, want ErrLeaseLost", err)
	}
	rec, err = l.Claim(ctx, u.Key, "c", time.Minute)
	if !errors.Is(err, upload.ErrNotClaimable) || rec.State != upload.StateComplete || rec.Published {
		t.Fatalf("claim after complete: %+v %v", rec, err)
	}
	if rec.Result == nil || *rec.Result != res {
		t.Fatalf("result = %+v, want %+v", rec.Result, res)
	}
	pending, err := l.Pending(ctx)
	if err != nil || len(pending) != 1 || pending[0].Key != u.Key {
		t.Fatalf("pending before publishing = %+v %v", pending, err)
	}
	if err := l.MarkPublished(ctx, u.Key); err != nil {
		t.Fatal(err)
	}
	if pending, _ = l.Pending(ctx); len(pending) != 0 {
		t.Fatalf("pending after publishing = %+v", pending)
	}
	if err := l.MarkPublished(ctx, "nope"); !errors.Is(err, upload.ErrNotFound) {
		t.Fatalf("mark published of unknown: %v", err)
	}
}

func TestFail(t *testing.T) {
	l, _, _ := newLedger(t)
	ctx := context.Background()
	u := info("", "fail", 1000, 1000)
	mustCount(t, l, u, 1)
	if _, err := l.Claim(ctx, u.Key, "a", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := l.Fail(ctx, u.Key, "b", "nope"); !errors.Is(err, upload.ErrLeaseLost) {
		t.Fatalf("fail by non-owner: %v", err)
	}
	if err := l.Fail(ctx, u.Key, "a", "chunk 1 is gone"); err != nil {
		t.Fatal(err)
	}
	rec, _ := l.Get(ctx, u.Key)
	if rec.State != upload.StateFailed || rec.Error != "chunk 1 is gone" {
		t.Fatalf("record = %+v", rec)
	}
	if _, err := l.Claim(ctx, u.Key, "a", time.Minute); !errors.Is(err, upload.ErrNotClaimable) {
		t.Fatalf("claim after failure: %v", err)
	}
}

// A request cut off after its decrement is retried: remaining goes too low.
// The ledger must still wait for every chunk, and then become ready once.
func TestOverDecrementIsRepaired(t *testing.T) {
	l, _, in := newLedger(t)
	u := info("", "over", 6000, 1000) // 6 chunks
	in.Rule = func(step string, nth int) faults.Mode {
		if step == "ddb.UpdateItem:decrement" && nth <= 3 {
			return faults.Crash // chunk 1's first three tries die after decrementing
		}
		return faults.Pass
	}
	for try := 0; ; try++ {
		_, err := l.Count(faults.Request(context.Background()), u, 1)
		if err == nil {
			break
		}
		if !errors.Is(err, faults.ErrCrashed) || try > 5 {
			t.Fatal(err)
		}
	}
	// remaining is now 6-4 = 2 with only one chunk present.
	for n := 2; n <= 5; n++ {
		if mustCount(t, l, u, n) {
			t.Fatalf("ready after chunk %d of 6", n)
		}
	}
	if in.Succeeded("ddb.UpdateItem:repair") == 0 {
		t.Fatal("no repair happened; the test does not test what it should")
	}
	if !mustCount(t, l, u, 6) {
		t.Fatal("not ready after the last chunk")
	}
}

// A record that expired and was removed (the sweeper's Forget, or TTL)
// leaves chunk items behind; a new record for the same key must not take
// them as counted.
func TestNewGenerationIgnoresOldChunks(t *testing.T) {
	l, clock, _ := newLedger(t)
	ctx := context.Background()
	u := info("", "regen", 3000, 1000)
	mustCount(t, l, u, 1)
	mustCount(t, l, u, 2)
	old, _ := l.Get(ctx, u.Key)
	clock.Advance(time.Hour)
	if gone, err := l.Forget(ctx, u.Key, clock.Now()); err != nil || !gone {
		t.Fatalf("forget: %v %v", gone, err)
	}
	if _, counted, _ := l.Lookup(ctx, u, 1); counted {
		t.Fatal("chunk of a forgotten record reads as counted")
	}
	if mustCount(t, l, u, 3) {
		t.Fatal("ready with chunks 1 and 2 of the old generation")
	}
	rec, _ := l.Get(ctx, u.Key)
	if rec.Generation == old.Generation {
		t.Fatal("new record kept the old generation")
	}
	mustCount(t, l, u, 1)
	if !mustCount(t, l, u, 2) {
		t.Fatal("not ready once the new generation has every chunk")
	}
}

// Another process's ledger (a stale generation cache) must not be fooled
// when the record is re-created under it.
func TestStaleGenerationCache(t *testing.T) {
	l, clock, _ := newLedger(t)
	ctx := context.Background()
	u := info("", "stale", 2000, 1000)
	mustCount(t, l, u, 1) // l caches the generation
	other := &dynamoledger.Ledger{Client: l.Client, Table: l.Table, Now: clock.Now}
	clock.Advance(time.Hour)
	if gone, _ := other.Forget(ctx, u.Key, clock.Now()); !gone {
		t.Fatal("forget failed")
	}
	mustCount(t, l, u, 1) // stale cache: must notice and count in the new generation
	rec, _ := other.Get(ctx, u.Key)
	if rec.State != upload.StateReceiving || rec.Received != 1 {
		t.Fatalf("record after recount = %+v", rec)
	}
	if !mustCount(t, l, u, 2) {
		t.Fatal("not ready")
	}
}

func TestIdleForget(t *testing.T) {
	l, clock, _ := newLedger(t)
	ctx := context.Background()
	u := info("", "idle", 2000, 1000)
	mustCount(t, l, u, 1)
	cut := clock.Now().Add(time.Second)
	idle, err := l.Idle(ctx, cut)
	if err != nil || len(idle) != 1 || idle[0].Key != u.Key {
		t.Fatalf("idle = %+v %v", idle, err)
	}
	if gone, _ := l.Forget(ctx, u.Key, clock.Now().Add(-time.Hour)); gone {
		t.Fatal("forgot a record updated after the cut")
	}
	if gone, _ := l.Forget(ctx, u.Key, cut); !gone {
		t.Fatal("did not forget an idle record")
	}
	if _, err := l.Get(ctx, u.Key); !errors.Is(err, upload.ErrNotFound) {
		t.Fatalf("get after forget: %v", err)
	}
}
