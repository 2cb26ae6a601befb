package boltledger

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func openDB(t *testing.T) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "g.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("b")); return err }); err != nil {
		t.Fatal(err)
	}
	return db
}

// Calls that arrive while a commit runs share the next one, and one that
// fails is answered with its own error while the rest commit without it.
func TestGroupCommitSharesAndIsolates(t *testing.T) {
	db := openDB(t)
	g := &groupCommit{db: db}
	const n = 20
	boom := errors.New("refused")

	// The first call holds its transaction open until the others are
	// queued behind it, so that they must share what follows.
	release := make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- g.do(func(tx *bolt.Tx) error {
			<-release
			return tx.Bucket([]byte("b")).Put([]byte("first"), []byte("1"))
		})
	}()
	waitFor(t, func() bool { g.mu.Lock(); defer g.mu.Unlock(); return g.running })

	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		txs  = map[int]bool{} // ids of the transactions that committed a call
		errs = make([]error, n)
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var id int
			errs[i] = g.do(func(tx *bolt.Tx) error {
				if i == 7 {
					tx.Bucket([]byte("b")).Put([]byte("k7"), []byte("x"))
					return boom
				}
				id = int(tx.ID())
				return tx.Bucket([]byte("b")).Put(fmt.Appendf(nil, "k%d", i), []byte("v"))
			})
			if errs[i] == nil {
				mu.Lock()
				txs[id] = true
				mu.Unlock()
			}
		}()
	}
	waitFor(t, func() bool { g.mu.Lock(); defer g.mu.Unlock(); return len(g.queue) == n })
	close(release)
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatalf("first call: %v", err)
	}

	for i, err := range errs {
		if i == 7 && !errors.Is(err, boom) || i != 7 && err != nil {
			t.Fatalf("call %d returned %v", i, err)
		}
	}
	if len(txs) != 1 {
		t.Fatalf("the %d calls queued behind one commit were committed in %d transactions, want 1", n-1, len(txs))
	}
	err := db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("b"))
		for i := range n {
			got := b.Get(fmt.Appendf(nil, "k%d", i))
			if (got != nil) != (i != 7) {
				return fmt.Errorf("k%d = %q after the commit", i, got)
			}
		}
		if b.Get([]byte("first")) == nil {
			return errors.New("the first call's write is missing")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.running || len(g.queue) != 0 {
		t.Fatalf("after all calls returned: running=%v, %d queued", g.running, len(g.queue))
	}
}

// With nothing else going on a call commits at once, and many callers in a
// row all get through (no lost hand-over).
func TestGroupCommitManyCallers(t *testing.T) {
	db := openDB(t)
	g := &groupCommit{db: db}
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := g.do(func(tx *bolt.Tx) error {
				return tx.Bucket([]byte("b")).Put(fmt.Appendf(nil, "m%d", i), nil)
			}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	db.View(func(tx *bolt.Tx) error {
		if n := tx.Bucket([]byte("b")).Stats().KeyN; n != 200 {
			t.Errorf("%d keys written, want 200", n)
		}
		return nil
	})
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}
