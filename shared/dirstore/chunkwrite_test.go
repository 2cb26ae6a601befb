package dirstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"syscall"
	"testing"
	"testing/iotest"
)

// Chunks of sizes around the write buffer and the O_DIRECT block, sent in a
// random order and in uneven reads, assemble to the bytes sent, whether the
// chunks go through O_DIRECT or the page cache.
func TestChunkWriteSizes(t *testing.T) {
	const mib = 1 << 20
	cases := []struct {
		name      string
		size      int64
		chunkSize int64
	}{
		{"1 MiB chunks, tail of one block and a byte", 5*mib + directAlign + 1, mib},
		{"3 MiB chunks (buffer boundaries inside), one-byte tail", 7*mib + 1, 3 * mib},
		{"4 KiB chunks", 40*directAlign + 100, directAlign},
		{"chunk size not block aligned", 3_000_000 + 17, 1_000_000},
		{"one chunk under a block", 100, mib},
		{"block-aligned file", 4 * mib, mib},
	}
	for _, mode := range []string{"direct", "buffered"} {
		for i, tc := range cases {
			t.Run(mode+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				s, _ := newStore(t)
				s.buffered.Store(mode == "buffered")
				rec := record(fmt.Sprintf("sizes-%d", i), tc.size, tc.chunkSize, true)
				data := content(uint64(i), tc.size)
				order := rand.New(rand.NewPCG(uint64(i), 3)).Perm(rec.TotalChunks)
				for _, k := range order {
					n := k + 1
					off, size := rec.ChunkBounds(n)
					// HalfReader hands over half of what is asked each time, so
					// reads end in the middle of blocks.
					r := iotest.HalfReader(bytes.NewReader(data[off : off+size]))
					if err := s.PutChunk(context.Background(), rec.Info, rec.Generation, n, r); err != nil {
						t.Fatalf("PutChunk(%d): %v", n, err)
					}
				}
				res, err := s.Assemble(context.Background(), rec)
				if err != nil {
					t.Fatal(err)
				}
				if got := readFinal(t, s, res); !bytes.Equal(got, data) {
					t.Fatalf("assembled %d bytes differ from the %d sent", len(got), len(data))
				}
			})
		}
	}
}

// A file system without O_DIRECT (the open fails with EINVAL) is remembered,
// and chunks go through the page cache intact. Another failure to open is
// taken as passing: that chunk goes through the page cache, the next tries
// O_DIRECT again.
func TestChunkWriteFallsBack(t *testing.T) {
	orig := openDirect
	defer func() { openDirect = orig }()
	for _, tc := range []struct {
		name         string
		err          error
		wantBuffered bool
	}{
		{"EINVAL", &os.PathError{Op: "open", Path: "x", Err: syscall.EINVAL}, true},
		{"unsupported platform", errors.ErrUnsupported, true},
		{"transient", &os.PathError{Op: "open", Path: "x", Err: syscall.EMFILE}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			openDirect = func(string) (*os.File, error) { calls++; return nil, tc.err }
			s, _ := newStore(t)
			rec := record("fallback-"+tc.name, 3<<20, 1<<20, true)
			data := content(5, rec.TotalSize)
			putAll(t, s, rec, data, 5)
			if got := s.buffered.Load(); got != tc.wantBuffered {
				t.Fatalf("store buffered = %v, want %v", got, tc.wantBuffered)
			}
			if want := map[bool]int{true: 1, false: 3}[tc.wantBuffered]; calls != want {
				t.Fatalf("O_DIRECT opened %d times for 3 chunks, want %d", calls, want)
			}
			res, err := s.Assemble(context.Background(), rec)
			if err != nil {
				t.Fatal(err)
			}
			if got := readFinal(t, s, res); !bytes.Equal(got, data) {
				t.Fatal("assembled bytes differ from those sent")
			}
		})
	}
}

// A reader failing in the middle of a buffer: its error comes back, and
// what it delivered before is no concern (the chunk is not counted).
func TestChunkWriteReaderErrorMidBuffer(t *testing.T) {
	s, _ := newStore(t)
	rec := record("midbuffer", 4<<20, 2<<20, true)
	boom := errors.New("connection reset")
	r := io.MultiReader(bytes.NewReader(make([]byte, bufferClasses[len(bufferClasses)-1]+10)), iotest.ErrReader(boom))
	if err := s.PutChunk(context.Background(), rec.Info, rec.Generation, 1, r); !errors.Is(err, boom) {
		t.Fatalf("PutChunk = %v, want the reader's error", err)
	}
}

// A disk without room for the window ahead still takes a chunk that fits;
// another failure to reserve fails the chunk.
func TestReserveOnFullDisk(t *testing.T) {
	orig := reserveBlocks
	defer func() { reserveBlocks = orig }()
	for _, tc := range []struct {
		err  error
		fail bool
	}{
		{syscall.ENOSPC, false},
		{syscall.EDQUOT, false},
		{syscall.EIO, true},
	} {
		reserveBlocks = func(*os.File, int64, int64) error { return &os.PathError{Op: "fallocate", Path: "x", Err: tc.err} }
		s, _ := newStore(t)
		rec := record("full-"+tc.err.Error(), 2<<20, 1<<20, true)
		data := content(3, rec.TotalSize)
		err := s.PutChunk(context.Background(), rec.Info, rec.Generation, 1, bytes.NewReader(data[:1<<20]))
		if tc.fail {
			if !errors.Is(err, tc.err) {
				t.Fatalf("reserving failed with %v: PutChunk = %v, want that error", tc.err, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("reserving failed with %v: PutChunk = %v, want the chunk taken", tc.err, err)
		}
		putAll(t, s, rec, data, 3)
		res, err := s.Assemble(context.Background(), rec)
		if err != nil {
			t.Fatal(err)
		}
		if got := readFinal(t, s, res); !bytes.Equal(got, data) {
			t.Fatal("assembled bytes differ from those sent")
		}
	}
}
