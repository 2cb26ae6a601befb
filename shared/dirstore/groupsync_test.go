package dirstore

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeFile records each fsync: when it began (a sequence number) and whether
// it has ended.
type fakeFile struct {
	mu      sync.Mutex
	started int
	ended   map[int]bool
	calls   atomic.Int32
}

func (f *fakeFile) Sync() error {
	f.calls.Add(1)
	f.mu.Lock()
	f.started++
	me := f.started
	f.mu.Unlock()
	time.Sleep(2 * time.Millisecond) // an fsync takes a while; writers pile up
	f.mu.Lock()
	f.ended[me] = true
	f.mu.Unlock()
	return nil
}

// TestGroupSyncCoversEveryWriter: each Sync returns only after an fsync that
// began after it was called has ended, and concurrent writers share fsyncs.
func TestGroupSyncCoversEveryWriter(t *testing.T) {
	f := &fakeFile{ended: map[int]bool{}}
	var g groupSync
	const writers = 64
	var wg sync.WaitGroup
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.mu.Lock()
			before := f.started
			f.mu.Unlock()
			if err := g.Sync(f); err != nil {
				t.Error(err)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			for j := before + 1; j <= f.started; j++ {
				if f.ended[j] {
					return
				}
			}
			t.Errorf("Sync returned without an fsync that began after it was called (before=%d started=%d)", before, f.started)
		}()
	}
	wg.Wait()
	if n := f.calls.Load(); n >= writers {
		t.Fatalf("%d fsyncs for %d concurrent writers: none shared", n, writers)
	}
	t.Logf("%d writers, %d fsyncs", writers, f.calls.Load())
}
