package dynamoledger_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/devstack/localaws"
	"github.com/flowgate/flowgate/internal/testkit/awstest"
	"github.com/flowgate/flowgate/internal/testkit/faults"
	"github.com/flowgate/flowgate/internal/testkit/ledgertest"
	"github.com/flowgate/flowgate/shared/dynamoledger"
	"github.com/flowgate/flowgate/shared/upload"
)

// These tests run against a real dynalite started by localaws; nothing is
// skipped if it cannot start.
func TestMain(m *testing.M) { os.Exit(localaws.RunTests(m)) }

// testShards is the shard size of the tests about the counting protocol:
// with 4 chunks a shard, uploads of a few chunks have two or three shards, so
// filling, registering and replacing shards, and the crash windows between
// the steps, take a handful of requests instead of hundreds. The default
// (128), which production uses, is what TestShardBoundaries and
// TestRequestsPerChunkAreConstant run on.
const testShards = 4

// newLedger returns a ledger with shards of shardSize chunks (0: the
// default) on a fresh table, its clock, and the fault injector wrapped
// around its client (passing everything until told).
func newLedger(t *testing.T, shardSize int) (*dynamoledger.Ledger, *awstest.Clock, *faults.Injector) {
	t.Helper()
	db := awstest.DynamoDB(t)
	clock := &awstest.Clock{}
	in := &faults.Injector{}
	l := &dynamoledger.Ledger{
		Client: faults.DynamoDB{API: db, In: in},
		Table:  awstest.Table(t, db),
		Now:    clock.Now,
	}
	dynamoledger.SetShardSize(l, shardSize)
	return l, clock, in
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
	ready, err := ledgertest.Count(context.Background(), l, in, n)
	if err != nil {
		t.Fatalf("count chunk %d: %v", n, err)
	}
	return ready
}

func TestCountSequentialWithDuplicates(t *testing.T) {
	l, _, in := newLedger(t, testShards)
	ctx := context.Background()
	u := info("", "seq", 5000, 1000) // 5 chunks: shards of 4 and 1

	if st, counted, err := ledgertest.Lookup(ctx, l, u, 1); err != nil || st != upload.StateUnknown || counted {
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
		_, counted, err := ledgertest.Lookup(ctx, l, u, n)
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
	if st, counted, _ := ledgertest.Lookup(ctx, l, u, 3); st != upload.StateReady || !counted {
		t.Fatalf("lookup after ready = %v %v", st, counted)
	}
	// Per-chunk work: what a duplicate-free chunk costs, for the report.
	t.Logf("DynamoDB calls for 5 chunks + 5 duplicates + lookups: %v", in.AllCalls())
}

func TestCountConcurrent(t *testing.T) {
	l, _, _ := newLedger(t, testShards)
	ctx := context.Background()
	const uploads, chunks, dup = 4, 10, 4 // shards of 4, 4 and 2 chunks
	var wg sync.WaitGroup
	readies := make([]atomic.Int32, uploads)
	errs := make(chan error, uploads*chunks*dup)
	infos := make([]upload.Info, uploads)
	for i := range uploads {
		infos[i] = info("ns", fmt.Sprintf("conc-%d", i), chunks*100, 100)
		for n := 1; n <= chunks; n++ {
			for range dup { // every chunk counted by several racing requests
				wg.Go(func() {
					ready, err := ledgertest.Count(ctx, l, infos[i], n)
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
	l, clock, _ := newLedger(t, testShards)
	ctx := context.Background()
	a := info("alice", "same-id", 3000, 1000)
	b := info("alice", "same-id", 4000, 1000)   // same identifier, other geometry
	other := info("bob", "same-id", 4000, 1000) // other namespace

	mustCount(t, l, a, 1)
	if _, _, err := ledgertest.Lookup(ctx, l, b, 1); !errors.Is(err, upload.ErrConflict) {
		t.Fatalf("lookup of b while a receives: %v, want ErrConflict", err)
	}
	if _, err := ledgertest.Count(ctx, l, b, 1); !errors.Is(err, upload.ErrConflict) {
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
	if st, _, err := ledgertest.Lookup(ctx, l, a, 1); err != nil || st != upload.StateReady {
		t.Fatalf("a after b started: %v %v", st, err)
	}
	// b holds the identifier now; a new geometry c conflicts with b until
	// b's record expires (idle past its TTL, even before DynamoDB deletes it).
	c := info("alice", "same-id", 5000, 1000)
	if _, err := ledgertest.Count(ctx, l, c, 1); !errors.Is(err, upload.ErrConflict) {
		t.Fatalf("count of c while b receives: %v, want ErrConflict", err)
	}
	clock.Advance(dynamoledger.DefaultIdleTTL + time.Minute)
	mustCount(t, l, c, 1)
}

func TestClaimLeaseComplete(t *testing.T) {
	l, clock, _ := newLedger(t, testShards)
	ctx := context.Background()
	u := info("", "claim", 2000, 1000)
	u.ContentType = "image/png"

	if _, err := l.Claim(ctx, u.Key, "a", time.Minute); !errors.Is(err, upload.ErrNotFound) {
		t.Fatalf("claim of unknown upload: %v, want ErrNotFound", err)
	}
	mustCount(t, l, u, 1)
	if rec, err := l.Claim(ctx, u.Key, "a", time.Minute); !errors.Is(err, upload.ErrNotClaimable) || rec.State != upload.StateReceiving {
		t.Fatalf("claim while receiving: %v %v, want ErrNotClaimable", rec.State, err)
	}
	mustCount(t, l, u, 2)

	rec, err := l.Claim(ctx, u.Key, "a", time.Minute)
	if err != nil || rec.State != upload.StateAssembling || rec.Owner != "a" || rec.TotalChunks != 2 || rec.Generation == "" || rec.ContentType != "image/png" {
		t.Fatalf("claim by a = %+v, %v", rec, err)
	}
	if _, err := l.Claim(ctx, u.Key, "b", time.Minute); !errors.Is(err, upload.ErrNotClaimable) {
		t.Fatalf("claim by b during a's lease: %v", err)
	}
	if _, err := l.Claim(ctx, u.Key, "a", time.Minute); err != nil {
		t.Fatalf("re-claim by the same owner: %v", err)
	}
	if st, counted, _ := ledgertest.Lookup(ctx, l, u, 1); st != upload.StateAssembling || !counted {
		t.Fatalf("lookup while assembling = %v %v", st, counted)
	}

	clock.Advance(2 * time.Minute) // a's lease runs out
	if rec, err = l.Claim(ctx, u.Key, "b", time.Minute); err != nil || rec.Owner != "b" {
		t.Fatalf("claim by b after the lease: %+v %v", rec, err)
	}
	res := upload.Result{Location: "s3://b/k", Bucket: "b", Object: "k", Size: 2000, ETag: "e-1",
		CRC64NVME: "D3gOhIHSoh8=", ContentType: "image/png", ContentDisposition: `inline; filename="a.png"`}
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
	// Owed its announcement: due (for the re-drive) until published.
	owed, err := l.Overdue(ctx, clock.Now().Add(time.Hour), 10)
	if err != nil || !slices.Contains(owed, u.Key) {
		t.Fatalf("owed before publishing = %v %v", owed, err)
	}
	if err := l.MarkPublished(ctx, u.Key); err != nil {
		t.Fatal(err)
	}
	if owed, _ = l.Overdue(ctx, clock.Now().Add(time.Hour), 10); slices.Contains(owed, u.Key) {
		t.Fatalf("owed after publishing = %v", owed)
	}
	if err := l.MarkPublished(ctx, "nope"); !errors.Is(err, upload.ErrNotFound) {
		t.Fatalf("mark published of unknown: %v", err)
	}
}

func TestFail(t *testing.T) {
	l, _, _ := newLedger(t, testShards)
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

// A request that dies after filling a shard and before registering it, or
// after registering the last shard and before setting ready, leaves work no
// other chunk would do. Lookup must then report the chunk uncounted, so that
// the client sends it again, and the resend must finish the upload, once.
func TestCrashWindowsAreResent(t *testing.T) {
	l, _, in := newLedger(t, testShards)
	ctx := context.Background()
	u := info("", "windows", 6, 1) // shards of 4 and 2 chunks
	crashAfter := ""
	in.Rule = func(step string, nth int) faults.Mode {
		if step == crashAfter {
			crashAfter = ""
			return faults.Crash
		}
		return faults.Pass
	}
	crash := func(step string, n int) {
		t.Helper()
		crashAfter = step
		if _, err := ledgertest.Count(faults.Request(ctx), l, u, n); !errors.Is(err, faults.ErrCrashed) {
			t.Fatalf("count of chunk %d crashing after %s: %v", n, step, err)
		}
	}
	counted := func(n int) bool {
		t.Helper()
		st, counted, err := ledgertest.Lookup(ctx, l, u, n)
		if err != nil || st != upload.StateReceiving {
			t.Fatalf("lookup of chunk %d: %v %v", n, st, err)
		}
		return counted
	}
	received := func() int {
		t.Helper()
		rec, err := l.Get(ctx, u.Key)
		if err != nil {
			t.Fatal(err)
		}
		return rec.Received
	}

	for n := 1; n <= 3; n++ {
		mustCount(t, l, u, n)
	}
	// Chunk 4 fills shard 0; its request dies before registering it.
	crash("ddb.UpdateItem:shard", 4)
	if counted(4) || counted(2) || received() != 0 {
		t.Fatalf("a full shard that is not registered reads as counted (received %d)", received())
	}
	if mustCount(t, l, u, 4) { // the resend
		t.Fatal("ready with shard 1 empty")
	}
	if !counted(4) || !counted(2) || received() != 4 {
		t.Fatalf("shard 0 not counted after the resend (received %d)", received())
	}

	// Chunk 6 completes shard 1 and registers it, the last one; its
	// request dies before setting ready.
	mustCount(t, l, u, 5)
	crash("ddb.UpdateItem:full", 6)
	if counted(6) || counted(1) || received() != 0 {
		t.Fatalf("with every shard registered but not ready, a chunk reads as counted (received %d)", received())
	}
	if !mustCount(t, l, u, 6) { // the resend
		t.Fatal("the resend did not make the upload ready")
	}
	for _, n := range []int{6, 1, 4} {
		if mustCount(t, l, u, n) {
			t.Fatalf("chunk %d made the upload ready again", n)
		}
	}
	if n := in.Succeeded("ddb.UpdateItem:ready"); n != 1 {
		t.Fatalf("ready set %d times", n)
	}
	if rec, _ := l.Get(ctx, u.Key); rec.State != upload.StateReady || rec.Received != 6 {
		t.Fatalf("record = %+v", rec)
	}
}

// Uploads of one chunk, of exactly one shard, of one more, of two shards and
// of a partial third become ready exactly once, with the last chunk counted,
// whatever the order and duplicates; before that, every chunk counted reads
// as counted and the last one does not.
func TestShardBoundaries(t *testing.T) {
	// On the size production uses: these totals are its boundaries.
	l, _, in := newLedger(t, 0)
	if dynamoledger.DefaultShardSize != 128 {
		t.Fatalf("the default shard size is %d; the totals below are 128's boundaries", dynamoledger.DefaultShardSize)
	}
	ctx := context.Background()
	for _, total := range []int{1, 128, 129, 256, 300} {
		u := info("", fmt.Sprintf("bounds-%d", total), int64(total), 1)
		order := rand.Perm(total)
		last := order[total-1] + 1
		readies := 0
		for i, c := range order {
			n := c + 1
			if mustCount(t, l, u, n) {
				readies++
			}
			if i%10 == 3 { // a duplicate, now and again
				mustCount(t, l, u, order[i/2]+1)
			}
			if i == total-2 {
				rec, err := l.Get(ctx, u.Key)
				if err != nil || rec.State != upload.StateReceiving || rec.Received != total-1 {
					t.Fatalf("%d chunks: record with one missing = %+v %v", total, rec, err)
				}
				for _, m := range []int{1, total / 2, total - 1, total} {
					if _, counted, err := ledgertest.Lookup(ctx, l, u, m); err != nil || counted != (m != last) {
						t.Fatalf("%d chunks, %d missing: lookup of chunk %d = %v %v", total, last, m, counted, err)
					}
				}
			}
			if readies != 0 && i != total-1 {
				t.Fatalf("%d chunks: ready after %d of them", total, i+1)
			}
		}
		if readies != 1 {
			t.Fatalf("%d chunks: ready %d times", total, readies)
		}
		if st, counted, err := ledgertest.Lookup(ctx, l, u, last); err != nil || st != upload.StateReady || !counted {
			t.Fatalf("%d chunks: lookup after ready = %v %v %v", total, st, counted, err)
		}
	}
	// The upload of one chunk is born ready (its record's put); the four
	// others are made ready once each.
	if n := in.Succeeded("ddb.UpdateItem:ready"); n != 4 {
		t.Fatalf("ready set %d times for the 4 uploads of several chunks", n)
	}
}

// A record that expired and was removed (by TTL, or RemoveExpired here)
// leaves shard items behind; a new record for the same key must not take
// their chunks as counted, and replaces each when it first writes to it.
func TestNewGenerationIgnoresOldChunks(t *testing.T) {
	l, clock, in := newLedger(t, testShards)
	ctx := context.Background()
	u := info("", "regen", 10, 1) // shards of 4, 4 and 2 chunks
	// The old generation has chunks in every shard, and shard 2 full and
	// registered.
	for _, n := range []int{1, 2, 5, 9, 10} {
		mustCount(t, l, u, n)
	}
	old, _ := l.Get(ctx, u.Key)
	clock.Advance(dynamoledger.DefaultIdleTTL + time.Minute)
	if gone, err := dynamoledger.RemoveExpired(ctx, l, u.Key, clock.Now()); err != nil || !gone {
		t.Fatalf("forget: %v %v", gone, err)
	}
	for _, n := range []int{1, 9} {
		if _, counted, _ := ledgertest.Lookup(ctx, l, u, n); counted {
			t.Fatalf("chunk %d of a forgotten record reads as counted", n)
		}
	}
	if mustCount(t, l, u, 3) {
		t.Fatal("ready with the old generation's chunks")
	}
	if n := in.Succeeded("ddb.PutItem:shard-replace"); n != 1 {
		t.Fatalf("old shard replaced %d times, want once", n)
	}
	rec, _ := l.Get(ctx, u.Key)
	if rec.Generation == old.Generation || rec.Received != 1 {
		t.Fatalf("new record = %+v; want a new generation with 1 chunk", rec)
	}
	for _, n := range []int{9, 1} {
		if _, counted, _ := ledgertest.Lookup(ctx, l, u, n); counted {
			t.Fatalf("chunk %d of the old generation reads as counted in the new one", n)
		}
	}
	for _, n := range []int{1, 2, 4, 5, 6, 7, 8, 9} {
		if mustCount(t, l, u, n) {
			t.Fatalf("ready at chunk %d, with chunk 10 counted only in the old generation", n)
		}
	}
	if n := in.Succeeded("ddb.PutItem:shard-replace"); n != 3 {
		t.Fatalf("old shards replaced %d times, want once each of 3", n)
	}
	if !mustCount(t, l, u, 10) {
		t.Fatal("not ready once the new generation has every chunk")
	}
}

// Another process's ledger (a stale generation cache) must not be fooled
// when the record is re-created under it. The record cannot go while the
// entry is young, so it is old by then, and Count confirms it first.
func TestStaleGenerationCache(t *testing.T) {
	l, clock, in := newLedger(t, testShards)
	ctx := context.Background()
	u := info("", "stale", 6, 1) // shards of 4 and 2 chunks
	// l caches the generation; shard 1 fills and is registered.
	for _, n := range []int{1, 5, 6} {
		mustCount(t, l, u, n)
	}
	// A request of l looks chunk 2 up and stores it under the generation;
	// it counts it only after the record expired and went.
	slot, err := l.Lookup(ctx, u, 2)
	if err != nil || slot.New || slot.Counted {
		t.Fatalf("Lookup = %+v, %v", slot, err)
	}
	other := &dynamoledger.Ledger{Client: l.Client, Table: l.Table, Now: clock.Now}
	dynamoledger.SetShardSize(other, testShards)
	if gone, _ := dynamoledger.RemoveExpired(ctx, other, u.Key, clock.Now().Add(time.Second)); gone {
		t.Fatal("forgot a record updated just now")
	}
	clock.Advance(dynamoledger.DefaultIdleTTL + time.Minute)
	if gone, _ := dynamoledger.RemoveExpired(ctx, other, u.Key, clock.Now()); !gone {
		t.Fatal("forget failed")
	}
	// Stale cache: must notice, and count in a new generation.
	if _, err := l.Count(ctx, u, 2, slot); !errors.As(err, new(*upload.StaleSlotError)) {
		t.Fatalf("Count in a generation that is gone: %v, want a StaleSlotError", err)
	}
	if in.Calls("ddb.UpdateItem:touch") == 0 {
		t.Fatal("the old cache entry was not confirmed")
	}
	if _, err := other.Get(ctx, u.Key); !errors.Is(err, upload.ErrNotFound) {
		t.Fatalf("a count in the old generation made a record: %v", err)
	}
	mustCount(t, l, u, 1)
	rec, _ := other.Get(ctx, u.Key)
	if rec.State != upload.StateReceiving || rec.Received != 1 {
		t.Fatalf("record after recount = %+v", rec)
	}
	for n := 2; n <= 5; n++ {
		if mustCount(t, l, u, n) {
			t.Fatalf("ready at chunk %d, with chunk 6 counted only in the old generation", n)
		}
	}
	if !mustCount(t, l, u, 6) {
		t.Fatal("not ready")
	}
}

// While chunks arrive, the record is kept alive: a process touches it once
// its cached view of the record is an eighth of IdleTTL old, and not before.
func TestTouchKeepsUploadAlive(t *testing.T) {
	l, clock, in := newLedger(t, testShards)
	ctx := context.Background()
	u := info("", "touch", 5000, 1000)
	mustCount(t, l, u, 1)
	clock.Advance(dynamoledger.DefaultIdleTTL/8 - time.Minute)
	mustCount(t, l, u, 2)
	if n := in.Calls("ddb.UpdateItem:touch"); n != 0 {
		t.Fatalf("%d touches of a young record", n)
	}
	clock.Advance(2 * time.Minute)
	mustCount(t, l, u, 3)
	mustCount(t, l, u, 4)
	if n := in.Succeeded("ddb.UpdateItem:touch"); n != 1 {
		t.Fatalf("%d touches, want 1", n)
	}
	if rec, _ := l.Get(ctx, u.Key); clock.Now().Sub(rec.UpdatedAt) > time.Minute {
		t.Fatalf("updated %v, want about now (%v)", rec.UpdatedAt, clock.Now())
	}
	clock.Advance(dynamoledger.DefaultIdleTTL - time.Hour)
	if gone, _ := dynamoledger.RemoveExpired(ctx, l, u.Key, clock.Now()); gone {
		t.Fatal("forgot an upload whose last chunk came less than IdleTTL ago")
	}
	if !mustCount(t, l, u, 5) {
		t.Fatal("not ready")
	}
}

// Lookup's finding that an upload has no record lets Count create it without
// reading again; when another process created the record, or took the
// identifier, in between, the conditional writes find out and Count does the
// right thing: it counts into that record, or refuses the conflict.
func TestCreateAfterAStaleLookup(t *testing.T) {
	l, clock, _ := newLedger(t, testShards)
	other := &dynamoledger.Ledger{Client: l.Client, Table: l.Table, Now: clock.Now}
	dynamoledger.SetShardSize(other, testShards)
	ctx := context.Background()

	u := info("", "raced", 3000, 1000)
	if st, _, err := ledgertest.Lookup(ctx, l, u, 2); err != nil || st != upload.StateUnknown {
		t.Fatalf("lookup before anything = %v, %v", st, err)
	}
	mustCount(t, other, u, 1) // the other process creates the record meanwhile
	mustCount(t, l, u, 2)
	if rec, err := l.Get(ctx, u.Key); err != nil || rec.Received != 2 {
		t.Fatalf("after both counted: %+v, %v; want one record with 2 chunks", rec, err)
	}

	a := info("", "contested", 3000, 1000)
	b := info("", "contested", 4000, 1000) // same identifier, other geometry
	if st, _, err := ledgertest.Lookup(ctx, l, b, 1); err != nil || st != upload.StateUnknown {
		t.Fatalf("lookup of b = %v, %v", st, err)
	}
	mustCount(t, other, a, 1) // a takes the identifier after b's lookup
	if _, err := ledgertest.Count(ctx, l, b, 1); !errors.Is(err, upload.ErrConflict) {
		t.Fatalf("count of b after a took the identifier: %v, want ErrConflict", err)
	}
	if _, err := l.Get(ctx, b.Key); !errors.Is(err, upload.ErrNotFound) {
		t.Fatalf("refused upload got a record: %v", err)
	}
}

// A file of one chunk is counted with one write: its record, born ready
// (no identity claim, no shard item), due for the re-drive like any ready
// upload. A duplicate of its chunk changes nothing, and another upload
// receiving under the same identifier still makes it a conflict.
func TestOneChunkFileIsBornReady(t *testing.T) {
	l, _, in := newLedger(t, testShards)
	ctx := context.Background()
	u := info("", "one-chunk", 1, 1)
	if !mustCount(t, l, u, 1) {
		t.Fatal("the only chunk did not make the upload ready")
	}
	for _, step := range []string{"ddb.PutItem:ID", "ddb.UpdateItem:shard", "ddb.UpdateItem:ready", "ddb.UpdateItem:full"} {
		if n := in.Calls(step); n != 0 {
			t.Errorf("%s called %d times for a one-chunk file", step, n)
		}
	}
	if n := in.Calls("ddb.PutItem:META"); n != 1 {
		t.Errorf("%d record writes, want 1", n)
	}
	rec, err := l.Get(ctx, u.Key)
	if err != nil || rec.State != upload.StateReady || rec.Received != 1 {
		t.Fatalf("record = %+v, %v; want ready", rec, err)
	}
	if mustCount(t, l, u, 1) {
		t.Fatal("a duplicate of the only chunk reported ready again")
	}
	if due, err := l.Overdue(ctx, time.Now().Add(time.Hour), 10); err != nil || !slices.Contains(due, u.Key) {
		t.Fatalf("the born-ready upload is not due for the re-drive: %v, %v", due, err)
	}
	// Another geometry under the same identifier, receiving: a one-chunk
	// upload under it is refused with 409, as any upload would be.
	other := info("", "shared-id", 3, 1)
	mustCount(t, l, other, 1)
	single := info("", "shared-id", 1, 1)
	if _, err := ledgertest.Count(ctx, l, single, 1); !errors.Is(err, upload.ErrConflict) {
		t.Fatalf("a one-chunk upload under an identifier another upload receives under: %v, want ErrConflict", err)
	}
}
