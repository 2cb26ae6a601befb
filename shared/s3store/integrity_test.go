package s3store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"mime"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/flowgate/flowgate/shared/boltledger"
	"github.com/flowgate/flowgate/shared/checksum"
	"github.com/flowgate/flowgate/shared/s3store"
	"github.com/flowgate/flowgate/shared/upload"
)

// crcOf is the CRC-64/NVME of the file's bytes, computed from them.
func crcOf(f file) string {
	h := checksum.NewCRC64NVME()
	for n := 1; n <= f.rec.TotalChunks; n++ {
		io.Copy(h, f.chunk(n))
	}
	return checksum.Encode(h.Sum64())
}

// The finished object is servable as it is and checkable with the SDK
// alone: its full-object CRC-64/NVME (which MinIO, like S3, computes from
// the parts' and refuses to complete when it is not the chunks' combined
// checksum), type, disposition, metadata, tags and storage class, at the
// key the layout gives; the Result says the same. Every shape: streamed
// parts, copied parts (streamed on MinIO), one chunk copied whole.
func TestFinishedObjectServable(t *testing.T) {
	for _, c := range []struct {
		name        string
		size, chunk int64
	}{
		{"streamed parts", 11*MiB + 5, MiB},
		{"copied parts", 11 * MiB, 5 * MiB},
		{"one chunk", 3000, MiB},
		{"empty", 0, MiB},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t)
			e.store.Layout = "{namespace}/{uploadKey}/{name}"
			e.store.Disposition = upload.DispositionInline
			tags, err := s3store.ParseTags("app=flowgate, stage=test")
			if err != nil {
				t.Fatal(err)
			}
			e.store.Tags = tags
			e.store.StorageClass = types.StorageClassReducedRedundancy
			e.store.PartSize = 5 * MiB
			f := newFile("Résumé 2026.pdf", c.size, c.chunk, false)
			f.rec.Namespace, f.rec.RelativePath, f.rec.ContentType = "jwt:ada@example.com", "docs/Résumé 2026.pdf", "application/pdf"
			e.stage(t, f)
			res, err := e.store.Assemble(ctx, f.rec)
			if err != nil {
				t.Fatal(err)
			}
			want := crcOf(f)
			if res.CRC64NVME != want {
				t.Fatalf("result crc64nvme %q, want %q (computed from the bytes)", res.CRC64NVME, want)
			}
			if wantKey := "files/jwt_ada@example.com/" + f.rec.Key + "/Résumé 2026.pdf"; res.Object != wantKey {
				t.Fatalf("object key %q, want %q", res.Object, wantKey)
			}
			head, err := e.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(res.Object), ChecksumMode: types.ChecksumModeEnabled})
			if err != nil {
				t.Fatal(err)
			}
			if aws.ToString(head.ChecksumCRC64NVME) != want || head.ChecksumType != types.ChecksumTypeFullObject {
				t.Errorf("object checksum %q (%s), want %q FULL_OBJECT", aws.ToString(head.ChecksumCRC64NVME), head.ChecksumType, want)
			}
			if got := aws.ToString(head.ContentType); got != "application/pdf" || res.ContentType != got {
				t.Errorf("content type %q (result %q), want application/pdf", got, res.ContentType)
			}
			wantCD := `inline; filename="R_sum_ 2026.pdf"; filename*=UTF-8''R%C3%A9sum%C3%A9%202026.pdf`
			if got := aws.ToString(head.ContentDisposition); got != wantCD || res.ContentDisposition != got {
				t.Errorf("content disposition %q (result %q), want %q", got, res.ContentDisposition, wantCD)
			}
			_, params, err := mime.ParseMediaType(aws.ToString(head.ContentDisposition))
			if err != nil || params["filename"] != "Résumé 2026.pdf" {
				t.Errorf("Go's mime reads the disposition's name as %q (%v)", params["filename"], err)
			}
			var dec mime.WordDecoder
			rel, err := dec.DecodeHeader(head.Metadata["flowgate-relative-path"])
			if err != nil || rel != f.rec.RelativePath || head.Metadata["flowgate-namespace"] != f.rec.Namespace ||
				head.Metadata["flowgate-upload-key"] != f.rec.Key || head.Metadata["flowgate-generation"] != f.rec.Generation {
				t.Errorf("metadata %v (relative path %q, %v)", head.Metadata, rel, err)
			}
			if head.StorageClass != types.StorageClassReducedRedundancy {
				t.Errorf("storage class %q", head.StorageClass)
			}
			tg, err := e.client.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String(e.bucket), Key: aws.String(res.Object)})
			if err != nil || len(tg.TagSet) != 2 {
				t.Errorf("tags %v, %v", tg, err)
			}
			// The SDK checks every byte it reads against the object's
			// checksum: a consumer needs nothing else.
			out, err := e.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(res.Object), ChecksumMode: types.ChecksumModeEnabled})
			if err != nil {
				t.Fatal(err)
			}
			h := checksum.NewCRC64NVME()
			if _, err := io.Copy(h, out.Body); err != nil {
				t.Fatal(err)
			}
			if checksum.Encode(h.Sum64()) != want {
				t.Fatal("the object's bytes do not give its checksum")
			}
		})
	}
}

// corruptingS3 flips a byte of every chunk read back during assembly, after
// the SDK has checked it: as if the bytes were damaged between reading a
// chunk and sending it on as part of the file.
type corruptingS3 struct{ s3store.API }

func (c corruptingS3) GetObject(ctx context.Context, in *s3.GetObjectInput, opts ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	out, err := c.API.GetObject(ctx, in, opts...)
	if err != nil {
		return out, err
	}
	b, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, err
	}
	if len(b) > 0 {
		b[len(b)/2] ^= 0x40
	}
	out.Body = io.NopCloser(bytes.NewReader(b))
	return out, nil
}

// An assembly whose bytes went wrong on the way never completes: S3 refuses
// an object whose checksum is not the one its chunks add up to, so no
// finished file appears; the chunks stay, and an assembly without the fault
// finishes the right file.
func TestAssemblyRefusesADamagedFile(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	f := newFile("damaged.bin", 7*MiB+3, MiB, false)
	e.stage(t, f)
	bad := &s3store.Store{Client: corruptingS3{e.store.Client}, Bucket: e.bucket}
	if _, err := bad.Assemble(ctx, f.rec); err == nil {
		t.Fatal("an assembly of damaged bytes completed")
	}
	if keys := awstestKeys(t, e, "files/"); len(keys) != 0 {
		t.Fatalf("a damaged assembly left %v", keys)
	}
	res, err := e.store.Assemble(ctx, f.rec)
	if err != nil {
		t.Fatal(err)
	}
	if res.CRC64NVME != crcOf(f) {
		t.Fatalf("crc64nvme %s, want %s", res.CRC64NVME, crcOf(f))
	}
}

func awstestKeys(t *testing.T, e *env, prefix string) []string {
	t.Helper()
	out, err := e.client.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(e.bucket), Prefix: aws.String(prefix)})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	return keys
}

// A chunk that does not match its client's digest never lands in S3: the
// service withholds the last bytes, so the PutObject is cut off, and MinIO
// stores nothing; the same chunk with the right bytes is stored with its
// CRC-64/NVME.
func TestMismatchedChunkNeverLands(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	l, err := boltledger.Open(filepath.Join(t.TempDir(), "ledger.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	svc := &upload.Service{Store: e.store, Ledger: l}
	f := newFile("digest.bin", 3*MiB, MiB, true)
	f.rec.Namespace = "public"
	f.rec.Key = upload.UploadKey("public", f.rec.Identifier, f.rec.TotalSize, f.rec.ChunkSize, f.rec.TotalChunks)
	good, _ := io.ReadAll(f.chunk(2))
	sum := sha256.Sum256(good)
	bad := bytes.Clone(good)
	bad[len(bad)-1] ^= 1
	_, err = svc.Put(ctx, f.rec.Info, 2, upload.Body{Reader: bytes.NewReader(bad), Digests: upload.Digests{SHA256: sum[:]}})
	var ie *upload.InputError
	if !errors.As(err, &ie) || ie.Kind != upload.Mismatch {
		t.Fatalf("damaged chunk: %v, want 422", err)
	}
	if keys := awstestKeys(t, e, "staging/"); len(keys) != 0 {
		t.Fatalf("a damaged chunk landed: %v", keys)
	}
	if _, err := svc.Put(ctx, f.rec.Info, 2, upload.Body{Reader: bytes.NewReader(good), Digests: upload.Digests{SHA256: sum[:]}}); err != nil {
		t.Fatal(err)
	}
	keys := awstestKeys(t, e, "staging/")
	if len(keys) != 1 {
		t.Fatalf("staged %v, want the one chunk", keys)
	}
	h, err := e.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(keys[0]), ChecksumMode: types.ChecksumModeEnabled})
	if err != nil || aws.ToString(h.ChecksumCRC64NVME) != checksum.Encode(checksum.CRC64NVME(good)) {
		t.Fatalf("the chunk's checksum: %v %q", err, aws.ToString(h.ChecksumCRC64NVME))
	}
}
