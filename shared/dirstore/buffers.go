package dirstore

import (
	"context"
	"sync"
)

// Write buffers are what a chunk's bytes pass through on their way to disk,
// and with many requests in flight they are most of the server's memory. So
// their total is bounded by design: buffers come in three sizes, each
// request takes the smallest that holds its chunk (up to 1 MiB: a larger
// chunk is written a buffer at a time), and together they never exceed a
// budget. A request that finds the budget spent waits, before reading its
// body, until another returns a buffer (or its context ends); memory does
// not grow with the number of requests. Buffers are kept for reuse, outside
// the garbage-collected heap where the platform allows (mmap on Linux), so
// they do not raise the collector's goal either.
//
// With the default budget of 24 MiB, 24 requests of 4 MiB chunks in flight
// each hold a 1 MiB buffer and none waits; 200 one-chunk uploads of 256 KiB
// sent at once hold at most 96 buffers of 256 KiB, and the rest wait their
// turn. What a request holds besides (its connection's buffers, the 64 KiB
// read buffer of a multipart body, its goroutine) is some 100 KiB: the
// server's memory is about 17 MiB, plus at most the budget, plus that per
// request in flight (measured: 200 at once, 38-53 MiB in all).

// bufferClasses are the buffer sizes, smallest first; the largest is the
// most a write takes at once (1 MiB writes took a third less time than 256
// KiB ones on the disks measured), small chunks get small buffers.
var bufferClasses = [...]int{64 << 10, 256 << 10, 1 << 20}

// DefaultBufferBudget is the most bytes of write buffers a Store holds.
const DefaultBufferBudget = 24 << 20

// bufferPool hands out aligned buffers within a budget.
type bufferPool struct {
	budget int

	mu       sync.Mutex
	held     int                           // bytes allocated: in use plus free
	free     [len(bufferClasses)][]*[]byte // returned, by class
	returned chan struct{}                 // closed when a buffer comes back; then replaced
}

func newBufferPool(budget int) *bufferPool {
	return &bufferPool{budget: max(budget, bufferClasses[len(bufferClasses)-1]), returned: make(chan struct{})}
}

// classFor is the class of buffer for a chunk of size bytes.
func classFor(size int64) int {
	for c, b := range bufferClasses {
		if size <= int64(b) {
			return c
		}
	}
	return len(bufferClasses) - 1
}

// get returns a buffer for a chunk of size bytes, waiting while the budget
// is spent. The caller gives it back with put.
func (p *bufferPool) get(ctx context.Context, size int64) (*[]byte, error) {
	c := classFor(size)
	want := bufferClasses[c]
	for {
		p.mu.Lock()
		if n := len(p.free[c]); n > 0 {
			b := p.free[c][n-1]
			p.free[c] = p.free[c][:n-1]
			p.mu.Unlock()
			return b, nil
		}
		// Make room from free buffers of other sizes.
		for o := range p.free {
			for p.held+want > p.budget && len(p.free[o]) > 0 {
				n := len(p.free[o])
				releaseBuffer(p.free[o][n-1])
				p.free[o] = p.free[o][:n-1]
				p.held -= bufferClasses[o]
			}
		}
		if p.held+want <= p.budget {
			p.held += want
			p.mu.Unlock()
			return allocBuffer(want), nil
		}
		wait := p.returned
		p.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

// put returns a buffer from get.
func (p *bufferPool) put(b *[]byte) {
	c := classFor(int64(len(*b)))
	p.mu.Lock()
	p.free[c] = append(p.free[c], b)
	close(p.returned)
	p.returned = make(chan struct{})
	p.mu.Unlock()
}

// inUse is how many bytes of buffers are held (in use or free), for tests.
func (p *bufferPool) inUse() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held
}
