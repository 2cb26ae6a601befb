package upload_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"hash/crc32"
	"os"
	"testing"

	"github.com/flowgate/flowgate/shared/checksum"
	"github.com/flowgate/flowgate/shared/upload"
)

func sha(b []byte) []byte { s := sha256.Sum256(b); return s[:] }

// A chunk whose bytes do not match the digest its client sent is refused
// with 422 (both libraries retry it), is not counted, and a good resend is
// taken; the finished file is the right one and carries its checksum.
func TestChunkDigestsChecked(t *testing.T) {
	ctx := context.Background()
	e := newSvcEnv(t)
	in := svcInfo("digests", 3*4096+100, 4096)
	data := make([]byte, in.TotalSize)
	rand.Read(data)

	for _, alg := range []string{"sha256", "crc32c", "crc64nvme"} {
		chunk := svcChunkOf(in, data, 2)
		corrupt := bytes.Clone(chunk)
		corrupt[len(corrupt)-1] ^= 1
		var d upload.Digests
		switch alg {
		case "sha256":
			d.SHA256 = sha(chunk)
		case "crc32c":
			c := crc32.Checksum(chunk, crc32.MakeTable(crc32.Castagnoli))
			d.CRC32C = &c
		case "crc64nvme":
			c := checksum.CRC64NVME(chunk)
			d.CRC64NVME = &c
		}
		_, err := e.svc.Put(ctx, in, 2, upload.Body{Reader: bytes.NewReader(corrupt), Digests: d})
		svcWantInputError(t, err, upload.Mismatch, alg+" mismatch")
		if e.counted(t, in, 2) {
			t.Fatalf("%s: a chunk that does not match its digest was counted", alg)
		}
	}
	// Every chunk, each with its SHA-256, out of order; the empty-chunk case
	// is TestEmptyChunkDigest's.
	for _, n := range []int{4, 3, 1, 2} {
		c := svcChunkOf(in, data, n)
		if _, err := e.svc.Put(ctx, in, n, upload.Body{Reader: bytes.NewReader(c), Digests: upload.Digests{SHA256: sha(c)}}); err != nil {
			t.Fatalf("chunk %d: %v", n, err)
		}
	}
	if !e.counted(t, in, 2) {
		t.Fatal("the good resend was not counted")
	}
	if got := e.assemble(t, in.Key); !bytes.Equal(got, data) {
		t.Fatal("the finished file differs from what was sent")
	}
	st, err := e.svc.Status(ctx, in.Key)
	if err != nil {
		t.Fatal(err)
	}
	if want := checksum.Encode(checksum.CRC64NVME(data)); st.CRC64NVME != want {
		t.Fatalf("status crc64nvme %q, want %q", st.CRC64NVME, want)
	}
}

// An empty chunk's digest is compared before anything is stored.
func TestEmptyChunkDigest(t *testing.T) {
	ctx := context.Background()
	e := newSvcEnv(t)
	in := svcInfo("empty-digest", 0, 4096)
	_, err := e.svc.Put(ctx, in, 1, upload.Body{Reader: bytes.NewReader(nil), Digests: upload.Digests{SHA256: sha([]byte("x"))}})
	svcWantInputError(t, err, upload.Mismatch, "empty chunk, wrong digest")
	if _, err := os.Stat(e.stagingPath(in.Key)); err == nil {
		t.Fatal("a refused empty chunk left a staging file")
	}
	if _, err := e.svc.Put(ctx, in, 1, upload.Body{Reader: bytes.NewReader(nil), Digests: upload.Digests{SHA256: sha(nil)}}); err != nil {
		t.Fatal(err)
	}
}
