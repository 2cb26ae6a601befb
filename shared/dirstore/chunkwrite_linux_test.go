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
	resident := residentPages(t, s.stagingPath(rec.Key))
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
	for _, in := range residentPages(t, s.stagingPath(rec2.Key)) {
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
