package dirstore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"unsafe"

	"github.com/flowgate/flowgate/shared/upload"
)

// Chunk bytes really bypass the page cache: after the chunks of a file are
// written, its whole blocks are not resident in memory (a direct write
// leaves none behind), only the tail page written through the cache is.
// Through the page cache every page would be resident.
func TestChunksBypassPageCache(t *testing.T) {
	s, root := newStore(t)
	probe := filepath.Join(root, "probe")
	if err := os.WriteFile(probe, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if f, err := openDirectFile(probe); errors.Is(err, syscall.EINVAL) {
		t.Skipf("no O_DIRECT on the file system of %s", root)
	} else if err != nil {
		t.Fatal(err)
	} else {
		f.Close()
	}

	rec := record("pagecache", 4<<20+100, 1<<20, true)
	data := content(9, rec.TotalSize)
	putAll(t, s, rec, data, 9)
	if s.buffered.Load() {
		t.Fatal("the store fell back to the page cache on a file system with O_DIRECT")
	}
	resident := residentPages(t, s.stagingPath(stagingName(rec.Key, rec.Generation)))
	page := int64(os.Getpagesize())
	tailPage := rec.TotalSize / page
	for i, in := range resident {
		if in && int64(i) != tailPage {
			t.Fatalf("page %d of %d is in the page cache; direct writes leave none there", i, len(resident))
		}
	}

	// The same check sees pages written through the cache.
	s.buffered.Store(true)
	rec2 := record("pagecache-buffered", 1<<20, 1<<20, true)
	putAll(t, s, rec2, content(10, rec2.TotalSize), 10)
	n := 0
	for _, in := range residentPages(t, s.stagingPath(stagingName(rec2.Key, rec2.Generation))) {
		if in {
			n++
		}
	}
	if n == 0 {
		t.Fatal("no page of a file written through the page cache is resident: the check sees nothing")
	}
	res, err := s.Assemble(context.Background(), rec)
	if err != nil {
		t.Fatal(err)
	}
	if got := readFinal(t, s, res); !bytes.Equal(got, data) {
		t.Fatal("assembled bytes differ from those sent")
	}
}

// residentPages reports, per page of the file, whether it is in the page
// cache (mincore on a mapping that is never touched).
func residentPages(t *testing.T, path string) []bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	m, err := syscall.Mmap(int(f.Fd()), 0, int(fi.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(m)
	page := os.Getpagesize()
	vec := make([]byte, (len(m)+page-1)/page)
	_, _, errno := syscall.Syscall(syscall.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0])))
	if errno != 0 {
		t.Fatalf("mincore: %v", errno)
	}
	out := make([]bool, len(vec))
	for i, v := range vec {
		out[i] = v&1 != 0
	}
	return out
}

// A client declaring a large file holds little more disk than it sends: at
// most twice reserveAhead past it, however it picks its chunks. Sent in
// order, the reservation moves along with the upload.
func TestReserveIsBounded(t *testing.T) {
	s, _ := newStore(t)
	const mib = 1 << 20
	allocated := func(rec upload.Record) int64 {
		var st syscall.Stat_t
		if err := syscall.Stat(s.stagingPath(stagingName(rec.Key, rec.Generation)), &st); err != nil {
			t.Fatal(err)
		}
		return st.Blocks * 512
	}
	put := func(rec upload.Record, n int) {
		_, size := rec.ChunkBounds(n)
		if err := s.PutChunk(context.Background(), rec.Info, rec.Generation, n, bytes.NewReader(make([]byte, size))); err != nil {
			t.Fatal(err)
		}
	}

	// Each chunk at the far end of what is reserved, then one far away.
	greedy := record("greedy", 10<<30, mib, true)
	chunks := []int{1, 64, 127, 190, 253, 316, 9000}
	for _, n := range chunks {
		put(greedy, n)
	}
	limit := int64(len(chunks))*mib + 2*reserveAhead + mib // a block or so of slack
	if got := allocated(greedy); got > limit {
		t.Fatalf("%d chunks of 1 MiB sent for a declared 10 GiB file hold %d MiB, want at most %d", len(chunks), got/mib, limit/mib)
	}

	inOrder := record("in-order", 10<<30, mib, true)
	for n := 1; n <= 70; n++ {
		put(inOrder, n)
	}
	if got := allocated(inOrder); got < 128*mib {
		t.Fatalf("after 70 chunks in order, %d MiB are allocated; the reservation did not move along (want 128)", got/mib)
	}
}
