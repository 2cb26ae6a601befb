package dynamoledger_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/testkit/ledgertest"
	"github.com/flowgate/flowgate/shared/dynamoledger"
	"github.com/flowgate/flowgate/shared/upload"
)

func mustBegin(t *testing.T, l *dynamoledger.Ledger, u upload.Info, chunks []int, checkAt time.Time) upload.Begun {
	t.Helper()
	b, err := l.Begin(context.Background(), u, chunks, checkAt)
	if err != nil {
		t.Fatalf("begin: %v", err)
	}
	return b
}

// countIn counts chunk n in generation gen, as the counting function does
// for a chunk the client stored under it.
func countIn(t *testing.T, l *dynamoledger.Ledger, u upload.Info, gen string, n int) bool {
	t.Helper()
	ready, err := l.Count(context.Background(), u, n, upload.Slot{State: upload.StateReceiving, Generation: gen})
	if err != nil {
		t.Fatalf("count chunk %d in %s: %v", n, gen, err)
	}
	return ready
}

// Begin creates the record before any chunk, in a generation every later
// Begin and every count agrees on, and tells which chunks are counted.
func TestBeginCreatesTheRecordFirst(t *testing.T) {
	l, clock, _ := newLedger(t, testShards)
	ctx := context.Background()
	u := info("alice", "direct", 10_000, 1000) // 10 chunks, 3 shards
	at := clock.Now().Add(time.Hour)

	b := mustBegin(t, l, u, []int{1, 2, 3, 4, 5}, at)
	if b.State != upload.StateReceiving || !upload.ValidName(b.Generation) || !b.Created || b.Replaced != "" || len(b.Counted) != 0 {
		t.Fatalf("first begin: %+v", b)
	}
	rec, err := l.Peek(ctx, u.Key)
	if err != nil || rec.Generation != b.Generation || rec.State != upload.StateReceiving || rec.Info != u {
		t.Fatalf("the record: %+v, %v", rec, err)
	}
	// A test GET (Lookup) of another process sees the record, not a new slot.
	other := &dynamoledger.Ledger{Client: l.Client, Table: l.Table, Now: clock.Now}
	dynamoledger.SetShardSize(other, testShards)
	if slot, err := other.Lookup(ctx, u, 7); err != nil || slot.New || slot.Generation != b.Generation {
		t.Fatalf("lookup in another process: %+v, %v", slot, err)
	}

	countIn(t, other, u, b.Generation, 1)
	countIn(t, other, u, b.Generation, 3)
	countIn(t, other, u, b.Generation, 9)
	again := mustBegin(t, l, u, []int{1, 2, 3, 9, 10}, at)
	if again.Generation != b.Generation || again.Created || !slices.Equal(again.Counted, []int{1, 3, 9}) {
		t.Fatalf("begin again: %+v, want generation %s and 1, 3, 9 counted", again, b.Generation)
	}
	_, counted, live, err := l.Counted(ctx, u.Key)
	if err != nil || !live || !slices.Equal(counted, []int{1, 3, 9}) {
		t.Fatalf("Counted: %v %v %v", counted, live, err)
	}

	for n := 1; n <= 10; n++ {
		if countIn(t, other, u, b.Generation, n) != (n == 10) {
			t.Fatalf("chunk %d: ready is wrong", n)
		}
	}
	done := mustBegin(t, l, u, []int{1}, at)
	if done.State != upload.StateReady || done.Generation != b.Generation {
		t.Fatalf("begin once ready: %+v", done)
	}
	if rec, _ := l.Peek(ctx, u.Key); rec.State != upload.StateReady {
		t.Fatalf("begin changed a ready record: %+v", rec)
	}
}

// Begin claims the identifier as a first chunk does, and replaces a dead
// record with a new generation, never a live one.
func TestBeginIdentityAndExpiry(t *testing.T) {
	l, clock, _ := newLedger(t, testShards)
	ctx := context.Background()
	a := info("alice", "same-id", 3000, 1000)
	b := info("alice", "same-id", 4000, 1000)
	at := clock.Now().Add(time.Hour)

	first := mustBegin(t, l, a, []int{1}, at)
	if _, err := l.Begin(ctx, b, []int{1}, at); !errors.Is(err, upload.ErrConflict) {
		t.Fatalf("begin of another geometry under the same identifier: %v, want ErrConflict", err)
	}
	if _, err := ledgertest.Count(ctx, l, b, 1); !errors.Is(err, upload.ErrConflict) {
		t.Fatalf("a proxied chunk of it: %v, want ErrConflict", err)
	}

	// Each Begin keeps the record for its idle expiry from then.
	clock.Advance(dynamoledger.DefaultIdleTTL - time.Hour)
	mustBegin(t, l, a, []int{2}, at)
	clock.Advance(dynamoledger.DefaultIdleTTL - time.Hour)
	if slot, err := l.Lookup(ctx, a, 1); err != nil || slot.New || slot.Generation != first.Generation {
		t.Fatalf("a record begun again %s ago: %+v, %v", dynamoledger.DefaultIdleTTL-time.Hour, slot, err)
	}

	clock.Advance(2 * time.Hour) // idle past its expiry: dead, though not deleted
	second := mustBegin(t, l, a, []int{1}, at)
	if second.Generation == first.Generation || second.Replaced != first.Generation {
		t.Fatalf("begin after expiry: %+v, want a new generation replacing %s", second, first.Generation)
	}
	// The old generation's chunks count for nothing now.
	if _, err := l.Count(ctx, a, 1, upload.Slot{State: upload.StateReceiving, Generation: first.Generation}); err == nil {
		t.Fatal("a chunk of the replaced generation was counted")
	}
	// b may take the identifier once a's record is dead.
	clock.Advance(dynamoledger.DefaultIdleTTL + time.Minute)
	if got := mustBegin(t, l, b, []int{1}, at); got.State != upload.StateReceiving {
		t.Fatalf("begin of b after a expired: %+v", got)
	}
}

// Concurrent Begins of a new upload, in independent processes, agree on one
// record.
func TestBeginConcurrent(t *testing.T) {
	l, clock, _ := newLedger(t, testShards)
	u := info("", "raced", 8000, 1000)
	gens := make([]string, 6)
	var wg sync.WaitGroup
	for i := range gens {
		inst := &dynamoledger.Ledger{Client: l.Client, Table: l.Table, Now: clock.Now}
		dynamoledger.SetShardSize(inst, testShards)
		wg.Go(func() {
			b, err := inst.Begin(context.Background(), u, []int{i + 1}, clock.Now().Add(time.Hour))
			if err != nil {
				t.Errorf("begin %d: %v", i, err)
				return
			}
			gens[i] = b.Generation
		})
	}
	wg.Wait()
	for _, g := range gens[1:] {
		if g != gens[0] {
			t.Fatalf("concurrent begins got generations %v", gens)
		}
	}
}

// An upload begun is due for a check of its stored chunks when its URLs
// have run out; each Begin pushes that later, Checked moves or ends it,
// and an upload that becomes ready leaves the checks for the assembly's
// index.
func TestCheckDue(t *testing.T) {
	l, clock, _ := newLedger(t, testShards)
	ctx := context.Background()
	u := info("", "checked", 2000, 1000)
	v := info("", "other", 2000, 1000)
	now := clock.Now()

	b := mustBegin(t, l, u, []int{1}, now.Add(20*time.Minute))
	mustBegin(t, l, v, []int{1}, now.Add(40*time.Minute))
	due := func(at time.Duration) []string {
		t.Helper()
		keys, err := l.CheckDue(ctx, now.Add(at), 10)
		if err != nil {
			t.Fatal(err)
		}
		return keys
	}
	if keys := due(10 * time.Minute); len(keys) != 0 {
		t.Fatalf("due before its URLs ran out: %v", keys)
	}
	if keys := due(30 * time.Minute); !slices.Equal(keys, []string{u.Key}) {
		t.Fatalf("due at 30 minutes: %v", keys)
	}
	if keys := due(time.Hour); !slices.Equal(keys, []string{u.Key, v.Key}) {
		t.Fatalf("due at an hour, oldest first: %v", keys)
	}
	mustBegin(t, l, u, []int{2}, now.Add(50*time.Minute)) // the client asked for more URLs
	if keys := due(45 * time.Minute); !slices.Equal(keys, []string{v.Key}) {
		t.Fatalf("due at 45 minutes after u asked again: %v", keys)
	}

	if err := l.Checked(ctx, u.Key, b.Generation, now.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if keys := due(time.Hour); !slices.Equal(keys, []string{v.Key}) {
		t.Fatalf("after u was checked: %v", keys)
	}
	if err := l.Checked(ctx, u.Key, "0000000000000000", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if keys := due(3 * time.Hour); !slices.Contains(keys, u.Key) {
		t.Fatal("a check of another generation ended u's")
	}

	countIn(t, l, u, b.Generation, 1)
	if !countIn(t, l, u, b.Generation, 2) {
		t.Fatal("u not ready")
	}
	if keys := due(3 * time.Hour); slices.Contains(keys, u.Key) {
		t.Fatal("a ready upload is still due for a check")
	}
	if owed, err := l.Overdue(ctx, now.Add(3*time.Hour), 10); err != nil || !slices.Equal(owed, []string{u.Key}) {
		t.Fatalf("the ready upload is not owed its assembly: %v, %v", owed, err)
	}
	if err := l.Checked(ctx, u.Key, b.Generation, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if owed, _ := l.Overdue(ctx, now.Add(3*time.Hour), 10); !slices.Equal(owed, []string{u.Key}) {
		t.Fatal("ending a check took a ready upload out of the assembly's index")
	}

	if err := l.Checked(ctx, v.Key, mustBegin(t, l, v, nil, now).Generation, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if keys := due(24 * time.Hour); len(keys) != 0 {
		t.Fatalf("after every check ended: %v", keys)
	}
}
