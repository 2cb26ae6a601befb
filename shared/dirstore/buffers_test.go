package dirstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// A chunk gets the smallest buffer that holds it, up to the largest size.
func TestBufferClasses(t *testing.T) {
	for _, tc := range []struct {
		size int64
		want int
	}{{0, 64 << 10}, {1, 64 << 10}, {64 << 10, 64 << 10}, {64<<10 + 1, 256 << 10}, {256 << 10, 256 << 10}, {300 << 10, 1 << 20}, {4 << 20, 1 << 20}} {
		p := newBufferPool(DefaultBufferBudget)
		b, err := p.get(context.Background(), tc.size)
		if err != nil {
			t.Fatal(err)
		}
		if len(*b) != tc.want || p.inUse() != tc.want {
			t.Errorf("chunk of %d bytes: buffer of %d (%d held), want %d", tc.size, len(*b), p.inUse(), tc.want)
		}
		p.put(b)
	}
}

// The budget holds: past it a request waits until a buffer comes back, or
// its context ends; free buffers of another size make room.
func TestBufferBudget(t *testing.T) {
	p := newBufferPool(2 << 20)
	ctx := context.Background()
	a, _ := p.get(ctx, 1<<20)
	b, _ := p.get(ctx, 1<<20)

	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := p.get(short, 1<<20); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("third buffer over the budget: %v, want to wait until the context ends", err)
	}

	got := make(chan *[]byte)
	go func() {
		c, err := p.get(ctx, 64<<10)
		if err != nil {
			t.Error(err)
		}
		got <- c
	}()
	select {
	case <-got:
		t.Fatal("a buffer was handed out over the budget")
	case <-time.After(20 * time.Millisecond):
	}
	p.put(a) // a free 1 MiB buffer is given up for the 64 KiB one
	c := <-got
	if len(*c) != 64<<10 || p.inUse() != 1<<20+64<<10 {
		t.Fatalf("got %d bytes with %d held, want 64 KiB with 1 MiB + 64 KiB held", len(*c), p.inUse())
	}
	p.put(b)
	p.put(c)
}

// Many chunks stored at once through a small budget: all are taken, and
// the buffers held never exceed it.
func TestPutChunkWithinBudget(t *testing.T) {
	s, _ := newStore(t)
	s.buffers = newBufferPool(2 << 20)
	var wg sync.WaitGroup
	for i := range 24 {
		rec := record(fmt.Sprintf("budget-%d", i), 300<<10, 1<<20, true)
		data := content(uint64(i), rec.TotalSize)
		wg.Go(func() {
			if err := s.PutChunk(context.Background(), rec.Info, rec.Generation, 1, bytes.NewReader(data)); err != nil {
				t.Error(err)
			}
			if held := s.buffers.inUse(); held > 2<<20 {
				t.Errorf("%d bytes of buffers held, over the budget", held)
			}
			res, err := s.Assemble(context.Background(), rec)
			if err != nil {
				t.Error(err)
				return
			}
			if got := readFinal(t, s, res); !bytes.Equal(got, data) {
				t.Error("assembled bytes differ from those sent")
			}
		})
	}
	wg.Wait()
}
