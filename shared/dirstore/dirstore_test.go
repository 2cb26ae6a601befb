package dirstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/flowgate/flowgate/shared/upload"
)

func newStore(t *testing.T) (*Store, string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "data")
	s, err := New(root)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s, root
}

// record makes a counted upload of size bytes: chunks is what flow.js
// sends, floor(size/chunkSize) with forceChunkSize false, the ceiling with true.
func record(id string, size, chunkSize int64, force bool) upload.Record {
	var chunks int64
	if force {
		chunks = max((size+chunkSize-1)/chunkSize, 1)
	} else {
		chunks = max(size/chunkSize, 1)
	}
	info := upload.Info{
		Key:         upload.UploadKey("public", id, size, chunkSize, int(chunks)),
		Namespace:   "public",
		Identifier:  id,
		FileName:    id + ".bin",
		TotalSize:   size,
		ChunkSize:   chunkSize,
		TotalChunks: int(chunks),
	}
	return upload.Record{Info: info, Generation: "0123456789abcdef", State: upload.StateAssembling, Received: int(chunks)}
}

func content(seed uint64, n int64) []byte {
	r := rand.New(rand.NewPCG(seed, 99))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return b
}

// putAll stores every chunk of data in a random order.
func putAll(t *testing.T, s *Store, rec upload.Record, data []byte, seed uint64) {
	t.Helper()
	order := make([]int, rec.TotalChunks)
	for i := range order {
		order[i] = i + 1
	}
	r := rand.New(rand.NewPCG(seed, 7))
	r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	for _, n := range order {
		off, size := rec.ChunkBounds(n)
		if err := s.PutChunk(context.Background(), rec.Info, rec.Generation, n, bytes.NewReader(data[off:off+size])); err != nil {
			t.Fatalf("PutChunk(%d): %v", n, err)
		}
	}
}

func readFinal(t *testing.T, s *Store, res upload.Result) []byte {
	t.Helper()
	b, err := os.ReadFile(s.Path(res.Location))
	if err != nil {
		t.Fatalf("read finished file: %v", err)
	}
	return b
}

func TestAssembleRandomOrder(t *testing.T) {
	t.Parallel()
	const cs = 1000
	cases := []struct {
		name  string
		size  int64
		force bool
	}{
		{"force/exact multiple", 5 * cs, true},
		{"force/short last chunk", 5*cs + 1, true},
		{"force/one short chunk", cs - 1, true},
		{"noforce/remainder in last", 5*cs + 700, false},
		{"noforce/last chunk 2*chunkSize-1", 4*cs + cs - 1, false},
		{"noforce/single chunk of 2*chunkSize-1", 2*cs - 1, false},
		{"noforce/smaller than one chunk", 10, false},
		{"force/empty file", 0, true},
		{"noforce/empty file", 0, false},
		{"force/large, many chunks", 300*cs + 17, true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, root := newStore(t)
			rec := record(fmt.Sprintf("case-%d", i), tc.size, cs, tc.force)
			if !tc.force && tc.size >= 2*cs {
				if _, last := rec.ChunkBounds(rec.TotalChunks); last < cs {
					t.Fatalf("bad test: last chunk is %d bytes", last)
				}
			}
			data := content(uint64(i), tc.size)
			putAll(t, s, rec, data, uint64(i))
			res, err := s.Assemble(context.Background(), rec)
			if err != nil {
				t.Fatalf("Assemble: %v", err)
			}
			if res.Size != tc.size {
				t.Fatalf("Result.Size = %d, want %d", res.Size, tc.size)
			}
			wantLoc := "files/" + rec.Key + "-" + rec.Generation + "/" + rec.FileName
			if res.Location != wantLoc {
				t.Fatalf("Location = %q, want %q", res.Location, wantLoc)
			}
			if got := readFinal(t, s, res); !bytes.Equal(got, data) {
				t.Fatalf("assembled %d bytes differ from the %d sent", len(got), len(data))
			}
			if _, err := os.Stat(filepath.Join(root, "staging", rec.Key+"-"+rec.Generation+".part")); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("staging file still there after Assemble: %v", err)
			}
		})
	}
}

// Sending a chunk again (a retry) replaces its bytes and touches no other chunk.
func TestPutChunkAgainReplaces(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	rec := record("again", 30, 10, true)
	data := content(1, 30)
	putAll(t, s, rec, data, 1)
	if err := s.PutChunk(context.Background(), rec.Info, rec.Generation, 2, strings.NewReader("ABCDEFGHIJ")); err != nil {
		t.Fatal(err)
	}
	res, err := s.Assemble(context.Background(), rec)
	if err != nil {
		t.Fatal(err)
	}
	want := append(append(append([]byte{}, data[:10]...), "ABCDEFGHIJ"...), data[20:]...)
	if got := readFinal(t, s, res); !bytes.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func TestPutChunkReaderError(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	rec := record("failing", 100, 50, true)
	boom := errors.New("connection reset")
	err := s.PutChunk(context.Background(), rec.Info, rec.Generation, 1, &failingReader{data: make([]byte, 20), err: boom})
	if !errors.Is(err, boom) {
		t.Fatalf("PutChunk with a reader failing mid-chunk: %v, want the reader's error", err)
	}
}

func TestAssembleIdempotent(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	rec := record("idem", 2500, 1000, false) // 2 chunks, the last of 1500 bytes
	data := content(3, rec.TotalSize)
	putAll(t, s, rec, data, 3)
	ctx := context.Background()
	first, err := s.Assemble(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	second, err := s.Assemble(ctx, rec)
	if err != nil {
		t.Fatalf("second Assemble after success: %v", err)
	}
	if first != second {
		t.Fatalf("second Assemble = %+v, want %+v", second, first)
	}
	if got := readFinal(t, s, second); !bytes.Equal(got, data) {
		t.Fatal("finished file changed by a second Assemble")
	}
}

func TestAssembleWrongSize(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, root := newStore(t)

	// A chunk is missing (the ledger would never let this happen): the
	// staging file has its size but a never-written hole. Holes are whole
	// blocks, so the chunks here are.
	var perm *upload.PermanentError
	for _, missing := range []int{2, 3} {
		if !holesVisible(t, root) {
			t.Log("this file system does not report never-written blocks as holes; skipping the missing-chunk cases")
			break
		}
		rec := record(fmt.Sprintf("missing-%d", missing), 3*4096, 4096, true)
		for n := 1; n <= 3; n++ {
			if n == missing {
				continue
			}
			if err := s.PutChunk(ctx, rec.Info, rec.Generation, n, bytes.NewReader(make([]byte, 4096))); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.Assemble(ctx, rec); !errors.As(err, &perm) {
			t.Fatalf("Assemble with chunk %d missing: %v, want *upload.PermanentError", missing, err)
		}
	}

	// Storage gained bytes behind our back: the staging file is long.
	long := record("long", 100, 50, true)
	if err := os.WriteFile(filepath.Join(root, "staging", long.Key+"-"+long.Generation+".part"), make([]byte, 101), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Assemble(ctx, long); !errors.As(err, &perm) {
		t.Fatalf("Assemble of a staging file of the wrong size: %v, want *upload.PermanentError", err)
	}
	// Nothing was moved into files/.
	if entries, _ := os.ReadDir(filepath.Join(root, "files")); len(entries) != 0 {
		t.Fatalf("a failed assembly left %d entries in files/", len(entries))
	}

	// No chunk at all.
	none := record("none", 100, 50, true)
	if _, err := s.Assemble(ctx, none); !errors.As(err, &perm) {
		t.Fatalf("Assemble with every chunk missing: %v, want *upload.PermanentError", err)
	}

	// A bad key or generation in the record.
	bad := record("bad", 10, 10, true)
	bad.Generation = "../../x"
	if _, err := s.Assemble(ctx, bad); !errors.As(err, &perm) {
		t.Fatalf("Assemble with a bad generation: %v, want *upload.PermanentError", err)
	}
}

func TestDiscardAndStaged(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, root := newStore(t)
	if st, err := s.Staged(ctx); err != nil || len(st) != 0 {
		t.Fatalf("Staged of an empty store = %v, %v", st, err)
	}
	a := record("a", 20, 10, true)
	// a2 is a later generation of the same upload (a started again after
	// its record expired), b another upload.
	a2 := a
	a2.Generation = "fedcba9876543210"
	b := record("b", 20, 10, true)
	for _, rec := range []upload.Record{a, a2, b} {
		if err := s.PutChunk(ctx, rec.Info, rec.Generation, 1, bytes.NewReader(make([]byte, 10))); err != nil {
			t.Fatal(err)
		}
	}
	// Files that are not staging files are not listed.
	for _, name := range []string{"notes.txt", "ABCDEF.part", "zz.part", a.Key + ".part"} {
		if err := os.WriteFile(filepath.Join(root, "staging", name), nil, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	staged := func() map[[2]string]bool {
		t.Helper()
		st, err := s.Staged(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := map[[2]string]bool{}
		for _, x := range st {
			got[[2]string{x.Key, x.Generation}] = true
			if x.Modified.IsZero() {
				t.Fatalf("Staged %s without a modification time", x.Key)
			}
		}
		return got
	}
	if got := staged(); len(got) != 3 || !got[[2]string{a.Key, a.Generation}] || !got[[2]string{a2.Key, a2.Generation}] || !got[[2]string{b.Key, b.Generation}] {
		t.Fatalf("Staged = %v, want both generations of a, and b", got)
	}

	for i := 0; i < 2; i++ {
		if err := s.Discard(ctx, a.Key, a.Generation); err != nil {
			t.Fatalf("Discard #%d: %v", i+1, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "staging", a.Key+"-"+a.Generation+".part")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("staging file of a still there after Discard: %v", err)
	}
	if err := s.Discard(ctx, "00000000000000000000000000000000", "0000000000000000"); err != nil {
		t.Fatalf("Discard of something never staged: %v", err)
	}
	// Discarding one generation leaves the other generation of the same
	// upload alone.
	if got := staged(); len(got) != 2 || !got[[2]string{a2.Key, a2.Generation}] || !got[[2]string{b.Key, b.Generation}] {
		t.Fatalf("Staged after Discard = %v, want a's second generation and b", got)
	}
}

// MoveChunk carries a chunk from one generation's staging file into
// another's, where assembly finds it.
func TestMoveChunk(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newStore(t)
	rec := record("move", 30, 10, true)
	from := "aaaaaaaaaaaaaaaa"
	data := []byte("0123456789abcdefghijABCDEFGHIJ")
	if err := s.PutChunk(ctx, rec.Info, from, 2, bytes.NewReader(data[10:20])); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 3} {
		if err := s.PutChunk(ctx, rec.Info, rec.Generation, n, bytes.NewReader(data[(n-1)*10:n*10])); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.MoveChunk(ctx, rec.Info, 2, from, rec.Generation); err != nil {
		t.Fatalf("MoveChunk: %v", err)
	}
	res, err := s.Assemble(ctx, rec)
	if err != nil {
		t.Fatalf("Assemble after MoveChunk: %v", err)
	}
	if got, _ := os.ReadFile(s.Path(res.Location)); !bytes.Equal(got, data) {
		t.Fatalf("assembled %q, want %q", got, data)
	}
	if err := s.MoveChunk(ctx, rec.Info, 1, "bbbbbbbbbbbbbbbb", rec.Generation); err == nil {
		t.Fatal("MoveChunk from a generation with nothing staged succeeded")
	}
}

// snapshot lists every path under dir.
func snapshot(t *testing.T, dir string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		out[p] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestInvalidKeysRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	outer := t.TempDir()
	root := filepath.Join(outer, "a", "data")
	s, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	// A victim next to the root, where "../x" from staging/ would point.
	victim := filepath.Join(root, "x.part")
	if err := os.WriteFile(victim, []byte("keep"), 0o640); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, outer)

	bad := []string{"../x", "..", "", "x", "ABCDEF0123", "../../a/data/x", "abc/def", "0123456789abcdef0123456789abcdef/..",
		"/tmp/abc", "00112233445566778899aabbccddeeff\x00", strings.Repeat("a", 65)}
	for _, key := range bad {
		info := record("k", 4, 4, true).Info
		info.Key = key
		if err := s.PutChunk(ctx, info, "0123456789abcdef", 1, strings.NewReader("evil")); err == nil {
			t.Errorf("PutChunk accepted key %q", key)
		}
		if err := s.Discard(ctx, key, "0123456789abcdef"); err == nil {
			t.Errorf("Discard accepted key %q", key)
		}
		// The generation comes from the ledger, never a client; it is
		// checked all the same.
		good := record("k", 4, 4, true).Info
		if err := s.PutChunk(ctx, good, key, 1, strings.NewReader("evil")); err == nil {
			t.Errorf("PutChunk accepted generation %q", key)
		}
		if err := s.Discard(ctx, good.Key, key); err == nil {
			t.Errorf("Discard accepted generation %q", key)
		}
		if err := s.MoveChunk(ctx, good, 1, key, "0123456789abcdef"); err == nil {
			t.Errorf("MoveChunk accepted generation %q", key)
		}
		rec := record("k", 4, 4, true)
		rec.Key = key
		var perm *upload.PermanentError
		if _, err := s.Assemble(ctx, rec); !errors.As(err, &perm) {
			t.Errorf("Assemble with key %q: %v, want *upload.PermanentError", key, err)
		}
	}
	after := snapshot(t, outer)
	for p := range after {
		if !before[p] {
			t.Errorf("a refused call created %s", p)
		}
	}
	for p := range before {
		if !after[p] {
			t.Errorf("a refused call removed %s", p)
		}
	}
	if b, err := os.ReadFile(victim); err != nil || string(b) != "keep" {
		t.Fatalf("file outside staging/ changed: %q, %v", b, err)
	}
}

func TestFinishedNameSanitized(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	names := []string{`..\a:b.txt`, "..", ".", "../../etc/passwd", "a/b", "", ".hidden", "con\x00trol", strings.Repeat("é", 200) + ".txt"}
	for i, name := range names {
		s, root := newStore(t)
		rec := record("n", 3, 3, true)
		rec.FileName = name
		if err := s.PutChunk(ctx, rec.Info, rec.Generation, 1, strings.NewReader("abc")); err != nil {
			t.Fatal(err)
		}
		res, err := s.Assemble(ctx, rec)
		if err != nil {
			t.Fatalf("Assemble(%q): %v", name, err)
		}
		p := s.Path(res.Location)
		dir := filepath.Join(root, "files", rec.Key+"-"+rec.Generation)
		if filepath.Dir(p) != dir {
			t.Fatalf("case %d: finished file %q is not directly inside %q", i, p, dir)
		}
		base := filepath.Base(p)
		if base == "." || base == ".." || strings.HasPrefix(base, ".") || strings.ContainsAny(base, `/\:`+"\x00") || len(base) > 255 {
			t.Fatalf("case %d: unsafe finished name %q", i, base)
		}
		if b, err := os.ReadFile(p); err != nil || string(b) != "abc" {
			t.Fatalf("case %d: finished file: %q, %v", i, b, err)
		}
		entries, err := os.ReadDir(dir)
		if err != nil || len(entries) != 1 {
			t.Fatalf("case %d: %d entries in the upload's folder, %v", i, len(entries), err)
		}
	}
	// The example from the design, spelled out.
	if got := upload.SafeFileName(`..\a:b.txt`); strings.ContainsAny(got, `/\:`) || strings.HasPrefix(got, ".") {
		t.Fatalf("SafeFileName(`..\\a:b.txt`) = %q", got)
	}
}

// Chunks of one upload written at once (sharing fsyncs) all land whole, and
// the store keeps no per-upload state once they are done.
func TestConcurrentPutChunks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := newStore(t)
	rec := record("concurrent", 64*512+100, 512, false) // 64 chunks, the last of 612 bytes
	data := content(11, rec.TotalSize)
	var wg sync.WaitGroup
	errs := make(chan error, rec.TotalChunks)
	for n := 1; n <= rec.TotalChunks; n++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			off, size := rec.ChunkBounds(n)
			if err := s.PutChunk(ctx, rec.Info, rec.Generation, n, bytes.NewReader(data[off:off+size])); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("PutChunk: %v", err)
	}
	if left := s.files.active() + s.dirs.active(); left != 0 {
		t.Fatalf("%d fsync groups left behind after every writer finished", left)
	}
	res, err := s.Assemble(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	if got := readFinal(t, s, res); !bytes.Equal(got, data) {
		t.Fatal("concurrently written chunks assembled into other bytes")
	}
}

// holesVisible reports whether the file system under dir shows preallocated,
// never-written blocks as a hole.
func holesVisible(t *testing.T, dir string) bool {
	t.Helper()
	f, err := os.CreateTemp(dir, "probe")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if err := preallocate(f, 0, 8192); err != nil {
		t.Fatal(err)
	}
	hole, err := firstHole(f.Name())
	return err == nil && hole == 0
}
