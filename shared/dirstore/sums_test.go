package dirstore

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/flowgate/flowgate/shared/checksum"
)

// The finished file's CRC-64/NVME comes from the chunks' entries, whatever
// order they came in, moved chunks included; a missing entry (a chunk staged
// before the table existed) and a re-run after the rename give the same
// value; the finished file has no table left on it.
func TestFileChecksum(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	s, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	rec := record("sums", 5*8192+123, 8192, false)
	data := content(7, rec.TotalSize)
	want := checksum.Encode(checksum.CRC64NVME(data))
	const other = "fedcba9876543210"
	for _, n := range []int{5, 2, 4, 1, 3} {
		off, size := rec.ChunkBounds(n)
		gen := rec.Generation
		if n == 4 {
			gen = other // stored under another generation, then moved
		}
		if err := s.PutChunk(ctx, rec.Info, gen, n, bytes.NewReader(data[off:off+size])); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.MoveChunk(ctx, rec.Info, 4, other, rec.Generation); err != nil {
		t.Fatal(err)
	}
	// Chunk 2's entry lost, as if written by older code.
	staging := s.stagingPath(stagingName(rec.Key, rec.Generation))
	f, err := os.OpenFile(staging, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, sumEntry), sumOffset(rec.Info, 2)); err != nil {
		t.Fatal(err)
	}
	f.Close()

	res, err := s.Assemble(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	if res.CRC64NVME != want {
		t.Fatalf("crc64nvme %s, want %s", res.CRC64NVME, want)
	}
	got, err := os.ReadFile(filepath.Join(root, res.Location))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("finished file differs (%d bytes, want %d): %v", len(got), len(data), err)
	}
	again, err := s.Assemble(ctx, rec)
	if err != nil || again.CRC64NVME != want {
		t.Fatalf("re-run after the rename: %s, %v; want %s", again.CRC64NVME, err, want)
	}
}
