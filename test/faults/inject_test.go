package faults

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowgate/flowgate/shared/boltledger"
	"github.com/flowgate/flowgate/shared/dirstore"
	"github.com/flowgate/flowgate/shared/upload"
)

// mode is what happens to one call.
type mode int

const (
	pass    mode = iota
	fail         // an error at once; the call never happens
	timeout      // the call hangs, then fails with a timeout; it never happens
	lost         // the call happens, then hangs and fails with a timeout: its effect stays, its answer is lost
	crash        // the call happens, then the process dies: nothing after it runs, and the server starts again
)

func (m mode) String() string {
	return [...]string{"pass", "fail", "timeout", "lost", "crash"}[m]
}

var (
	errInjected = errors.New("injected failure")
	errCrashed  = errors.New("injected crash: the process is dead")
)

// injector counts the calls of every step ("store.PutChunk",
// "ledger.Count" ...) across restarts and makes the nth call of one step
// fail.
type injector struct {
	target string
	nth    int
	mode   mode
	hang   time.Duration // how long a timeout takes
	// crashed is told when a crash was injected (buffered, one slot).
	crashed chan struct{}

	mu    sync.Mutex
	calls map[string]int
	hits  int
}

func newInjector(target string, nth int, m mode) *injector {
	return &injector{target: target, nth: nth, mode: m, hang: 50 * time.Millisecond,
		crashed: make(chan struct{}, 1), calls: map[string]int{}}
}

// call runs fn as the step, in the process whose death flag is dead.
func (in *injector) call(ctx context.Context, dead *atomic.Bool, step string, fn func() error) error {
	if dead.Load() {
		return errCrashed
	}
	in.mu.Lock()
	in.calls[step]++
	n := in.calls[step]
	m := pass
	if step == in.target && n == in.nth {
		m = in.mode
		in.hits++
	}
	in.mu.Unlock()
	switch m {
	case fail:
		return fmt.Errorf("%s #%d: %w", step, n, errInjected)
	case timeout:
		sleep(ctx, in.hang)
		return fmt.Errorf("%s #%d: %w (%w)", step, n, context.DeadlineExceeded, errInjected)
	case lost:
		if err := fn(); err != nil {
			return err
		}
		sleep(ctx, in.hang)
		return fmt.Errorf("%s #%d: done, but %w (%w)", step, n, context.DeadlineExceeded, errInjected)
	case crash:
		err := fn()
		dead.Store(true)
		select {
		case in.crashed <- struct{}{}:
		default:
		}
		if err != nil {
			return err
		}
		return fmt.Errorf("%s #%d: %w", step, n, errCrashed)
	}
	return fn()
}

func (in *injector) snapshot() (calls map[string]int, hits int) {
	in.mu.Lock()
	defer in.mu.Unlock()
	calls = make(map[string]int, len(in.calls))
	for k, v := range in.calls {
		calls[k] = v
	}
	return calls, in.hits
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// tally counts, per upload and across restarts, what must happen exactly
// once: the count that made it ready, the move of its staging file into
// place, the recording of its result; and the events published.
type tally struct {
	mu        sync.Mutex
	readies   map[string]int // Count answered ready=true
	renames   map[string]int // Assemble moved the staging file
	completes map[string]int // Complete recorded a result
	events    map[string]int // Publish sent an event
}

func newTally() *tally {
	return &tally{readies: map[string]int{}, renames: map[string]int{}, completes: map[string]int{}, events: map[string]int{}}
}

func (t *tally) add(m map[string]int, key string) {
	t.mu.Lock()
	m[key]++
	t.mu.Unlock()
}

func (t *tally) get(m map[string]int, key string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return m[key]
}

// faultStore is the real directory store behind the injector.
type faultStore struct {
	s    *dirstore.Store
	root string
	in   *injector
	dead *atomic.Bool
	tl   *tally
}

var (
	_ upload.ChunkStore   = (*faultStore)(nil)
	_ upload.Assembler    = (*faultStore)(nil)
	_ upload.StagedLister = (*faultStore)(nil)
)

func (f *faultStore) PutChunk(ctx context.Context, info upload.Info, gen string, n int, r io.Reader) error {
	return f.in.call(ctx, f.dead, "store.PutChunk", func() error { return f.s.PutChunk(ctx, info, gen, n, r) })
}

func (f *faultStore) MoveChunk(ctx context.Context, info upload.Info, n int, from, to string) error {
	return f.in.call(ctx, f.dead, "store.MoveChunk", func() error { return f.s.MoveChunk(ctx, info, n, from, to) })
}

func (f *faultStore) Discard(ctx context.Context, key, gen string) error {
	return f.in.call(ctx, f.dead, "store.Discard", func() error { return f.s.Discard(ctx, key, gen) })
}

func (f *faultStore) Staged(ctx context.Context) (out []upload.Staged, err error) {
	err = f.in.call(ctx, f.dead, "store.Staged", func() error {
		out, err = f.s.Staged(ctx)
		return err
	})
	return out, err
}

func (f *faultStore) Assemble(ctx context.Context, rec upload.Record) (res upload.Result, err error) {
	err = f.in.call(ctx, f.dead, "store.Assemble", func() error {
		_, staged := os.Stat(filepath.Join(f.root, "staging", rec.Key+"-"+rec.Generation+".part"))
		res, err = f.s.Assemble(ctx, rec)
		if err == nil && staged == nil {
			f.tl.add(f.tl.renames, rec.Key)
		}
		return err
	})
	return res, err
}

// faultLedger is the real bbolt ledger behind the injector.
type faultLedger struct {
	l    *boltledger.Ledger
	in   *injector
	dead *atomic.Bool
	tl   *tally
}

var (
	_ upload.Ledger  = (*faultLedger)(nil)
	_ upload.Scanner = (*faultLedger)(nil)
)

func (f *faultLedger) Lookup(ctx context.Context, info upload.Info, n int) (slot upload.Slot, err error) {
	err = f.in.call(ctx, f.dead, "ledger.Lookup", func() error {
		slot, err = f.l.Lookup(ctx, info, n)
		return err
	})
	return slot, err
}

func (f *faultLedger) Count(ctx context.Context, info upload.Info, n int, slot upload.Slot) (ready bool, err error) {
	err = f.in.call(ctx, f.dead, "ledger.Count", func() error {
		ready, err = f.l.Count(ctx, info, n, slot)
		if err == nil && ready {
			f.tl.add(f.tl.readies, info.Key)
		}
		return err
	})
	return ready, err
}

func (f *faultLedger) Get(ctx context.Context, key string) (rec upload.Record, err error) {
	err = f.in.call(ctx, f.dead, "ledger.Get", func() error {
		rec, err = f.l.Get(ctx, key)
		return err
	})
	return rec, err
}

func (f *faultLedger) Claim(ctx context.Context, key, owner string, lease time.Duration) (rec upload.Record, err error) {
	err = f.in.call(ctx, f.dead, "ledger.Claim", func() error {
		rec, err = f.l.Claim(ctx, key, owner, lease)
		return err
	})
	return rec, err
}

func (f *faultLedger) Complete(ctx context.Context, key, owner string, res upload.Result) error {
	return f.in.call(ctx, f.dead, "ledger.Complete", func() error {
		before, _ := f.l.Get(ctx, key)
		err := f.l.Complete(ctx, key, owner, res)
		if err == nil && before.State != upload.StateComplete {
			f.tl.add(f.tl.completes, key)
		}
		return err
	})
}

func (f *faultLedger) Fail(ctx context.Context, key, owner, reason string) error {
	return f.in.call(ctx, f.dead, "ledger.Fail", func() error { return f.l.Fail(ctx, key, owner, reason) })
}

func (f *faultLedger) Postpone(ctx context.Context, key, owner, reason string, until time.Time) error {
	return f.in.call(ctx, f.dead, "ledger.Postpone", func() error { return f.l.Postpone(ctx, key, owner, reason, until) })
}

func (f *faultLedger) MarkPublished(ctx context.Context, key string) error {
	return f.in.call(ctx, f.dead, "ledger.MarkPublished", func() error { return f.l.MarkPublished(ctx, key) })
}

func (f *faultLedger) Pending(ctx context.Context) (out []upload.Record, err error) {
	err = f.in.call(ctx, f.dead, "ledger.Pending", func() error {
		out, err = f.l.Pending(ctx)
		return err
	})
	return out, err
}

func (f *faultLedger) Idle(ctx context.Context, before time.Time) (out []upload.Record, err error) {
	err = f.in.call(ctx, f.dead, "ledger.Idle", func() error {
		out, err = f.l.Idle(ctx, before)
		return err
	})
	return out, err
}

func (f *faultLedger) Forget(ctx context.Context, key string, before time.Time) (gone bool, err error) {
	err = f.in.call(ctx, f.dead, "ledger.Forget", func() error {
		gone, err = f.l.Forget(ctx, key, before)
		return err
	})
	return gone, err
}

// faultPublisher counts the events that went out, behind the injector.
type faultPublisher struct {
	in   *injector
	dead *atomic.Bool
	tl   *tally
}

func (f *faultPublisher) Publish(ctx context.Context, ev upload.Event) error {
	return f.in.call(ctx, f.dead, "publisher.Publish", func() error {
		f.tl.add(f.tl.events, ev.UploadKey)
		return nil
	})
}
