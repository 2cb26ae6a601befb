package boltledger

import (
	"sync"

	bolt "go.etcd.io/bbolt"
)

// groupCommit runs write functions in shared transactions, so that requests
// writing at the same time share one commit and its fsync.
//
// bbolt's own DB.Batch does this by waiting up to MaxBatchDelay for company
// before it commits; with a few chunk requests in flight that wait was most
// of a chunk's time in the ledger (profiled: 3.5 ms per 1 MiB chunk, with a
// 2 ms delay). Here nobody waits for company: a call commits at once when no
// commit is running, and the calls that arrive while one runs are committed
// together right after it, by the first of them.
//
// As with Batch, a function may run more than once (with the functions of
// other calls, then again without one that failed), so it must decide
// everything afresh each time.
type groupCommit struct {
	db *bolt.DB

	mu      sync.Mutex
	running bool    // a leader is committing
	queue   []*call // waiting for the next commit
}

type call struct {
	fn   func(*bolt.Tx) error
	err  error
	done chan struct{} // told once: the call's result is in err, or it leads the next commit
	lead bool
}

// do runs fn in a write transaction shared with other calls and returns once
// that transaction committed (nil) or fn's own error once fn failed.
func (g *groupCommit) do(fn func(*bolt.Tx) error) error {
	c := &call{fn: fn, done: make(chan struct{}, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, c)
	if g.running {
		g.mu.Unlock()
		<-c.done
		if !c.lead {
			return c.err
		}
		g.mu.Lock()
	}
	g.running = true
	batch := g.queue
	g.queue = nil
	g.mu.Unlock()

	g.commit(batch, c)

	// Hand over to the first call that arrived meanwhile, so that the leader
	// returns as soon as its own commit is done.
	g.mu.Lock()
	if len(g.queue) > 0 {
		next := g.queue[0]
		next.lead = true
		next.done <- struct{}{}
	} else {
		g.running = false
	}
	g.mu.Unlock()
	return c.err
}

// commit runs batch in one transaction. A function that fails gets its
// error and is left out; the rest run again in a new transaction.
func (g *groupCommit) commit(batch []*call, self *call) {
	answer := func(c *call, err error) {
		c.err = err
		if c != self {
			c.done <- struct{}{}
		}
	}
	for len(batch) > 0 {
		failed, ferr := -1, error(nil)
		err := g.db.Update(func(tx *bolt.Tx) error {
			for i, c := range batch {
				if err := c.fn(tx); err != nil {
					failed, ferr = i, err
					return err
				}
			}
			return nil
		})
		if failed >= 0 {
			answer(batch[failed], ferr)
			batch = append(batch[:failed:failed], batch[failed+1:]...)
			continue
		}
		for _, c := range batch {
			answer(c, err) // nil, or the commit's own failure for all
		}
		return
	}
}
