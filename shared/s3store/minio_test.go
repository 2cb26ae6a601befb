package s3store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/flowgate/flowgate/internal/devstack/localaws"
	"github.com/flowgate/flowgate/internal/testkit/awstest"
	"github.com/flowgate/flowgate/shared/checksum"
)

// What the pinned MinIO does with checksums, which the store relies on (or
// works around): it checks and keeps every algorithm S3 has on PutObject, and
// refuses a body that does not match a checksum given in advance; it builds a
// multipart upload's full-object CRC-64/NVME from the parts' and refuses to
// complete one whose checksum is not the one expected; it refuses (400
// InvalidArgument) to copy a part into a multipart upload that has a checksum
// algorithm, where AWS computes the copied part's checksum (hence the
// store's streamed fallback); like AWS, it allows no full-object SHA-256.
func TestMinIOChecksums(t *testing.T) {
	ctx := context.Background()
	c := awstest.S3(t)
	bucket := awstest.Bucket(t, c)
	data := make([]byte, 5*MiB+100)
	rand.Read(data)
	put := func(key string, b []byte, in func(*s3.PutObjectInput)) error {
		p := &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(b)}
		in(p)
		_, err := c.PutObject(ctx, p)
		return err
	}
	head := func(key string) *s3.HeadObjectOutput {
		h, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), ChecksumMode: types.ChecksumModeEnabled})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}

	for _, alg := range []types.ChecksumAlgorithm{"CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"} {
		if err := put("one-"+string(alg), data[:1000], func(p *s3.PutObjectInput) { p.ChecksumAlgorithm = alg }); err != nil {
			t.Fatalf("PutObject with %s: %v", alg, err)
		}
		h := head("one-" + string(alg))
		got := map[types.ChecksumAlgorithm]*string{"CRC32": h.ChecksumCRC32, "CRC32C": h.ChecksumCRC32C,
			"CRC64NVME": h.ChecksumCRC64NVME, "SHA1": h.ChecksumSHA1, "SHA256": h.ChecksumSHA256}[alg]
		if got == nil || h.ChecksumType != types.ChecksumTypeFullObject {
			t.Errorf("%s: the object keeps no checksum (%v)", alg, h.ChecksumType)
		}
	}
	if got := aws.ToString(head("one-CRC64NVME").ChecksumCRC64NVME); got != checksum.Encode(checksum.CRC64NVME(data[:1000])) {
		t.Errorf("MinIO's CRC-64/NVME %s is not package checksum's", got)
	}
	err := put("wrong", data[:1000], func(p *s3.PutObjectInput) {
		p.ChecksumCRC64NVME = aws.String(checksum.Encode(checksum.CRC64NVME(data[:999])))
	})
	if code(err) != "XAmzContentChecksumMismatch" {
		t.Errorf("a body that does not match its checksum: %v", err)
	}
	if keys := awstestKeys(t, &env{client: c, bucket: bucket}, "wrong"); len(keys) != 0 {
		t.Error("a body that does not match its checksum was stored")
	}

	mpu := func(key string) *string {
		out, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key),
			ChecksumAlgorithm: types.ChecksumAlgorithmCrc64nvme, ChecksumType: types.ChecksumTypeFullObject})
		if err != nil {
			t.Fatal(err)
		}
		return out.UploadId
	}
	// Copying a part in: refused.
	if err := put("chunk", data, func(p *s3.PutObjectInput) { p.ChecksumAlgorithm = types.ChecksumAlgorithmCrc64nvme }); err != nil {
		t.Fatal(err)
	}
	id := mpu("copied")
	_, err = c.UploadPartCopy(ctx, &s3.UploadPartCopyInput{Bucket: aws.String(bucket), Key: aws.String("copied"), UploadId: id,
		PartNumber: aws.Int32(1), CopySource: aws.String(bucket + "/chunk")})
	if code(err) != "InvalidArgument" {
		t.Errorf("UploadPartCopy into an upload with checksums: %v; the store streams such parts on InvalidArgument", err)
	}

	// Two streamed parts: the full-object CRC-64/NVME, checked on completion.
	id = mpu("built")
	var parts []types.CompletedPart
	for i, b := range [][]byte{data[:5*MiB], data[5*MiB:]} {
		out, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(bucket), Key: aws.String("built"), UploadId: id,
			PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(b), ChecksumAlgorithm: types.ChecksumAlgorithmCrc64nvme})
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: out.ETag, ChecksumCRC64NVME: out.ChecksumCRC64NVME})
	}
	complete := func(want uint64) error {
		_, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String("built"), UploadId: id,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}, ChecksumType: types.ChecksumTypeFullObject,
			ChecksumCRC64NVME: aws.String(checksum.Encode(want))})
		return err
	}
	whole := checksum.CRC64NVME(data)
	if err := complete(whole ^ 1); code(err) != "XAmzContentChecksumMismatch" {
		t.Errorf("completing with another checksum than the parts': %v", err)
	}
	if err := complete(whole); err != nil {
		t.Fatalf("completing with the parts' checksum: %v", err)
	}
	if h := head("built"); aws.ToString(h.ChecksumCRC64NVME) != checksum.Encode(whole) || h.ChecksumType != types.ChecksumTypeFullObject {
		t.Errorf("the object's checksum %s (%s), want %s FULL_OBJECT", aws.ToString(h.ChecksumCRC64NVME), h.ChecksumType, checksum.Encode(whole))
	}

	_, err = c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String("sha"),
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256, ChecksumType: types.ChecksumTypeFullObject})
	if code(err) != "InvalidArgument" {
		t.Errorf("a full-object SHA-256: %v", err)
	}
}

func code(err error) string {
	var ae smithy.APIError
	if err == nil {
		return ""
	}
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return err.Error()
}

// With a KMS key, every object the store writes, chunk and finished file, is
// encrypted with it (MinIO's static KMS key stands in for a KMS key's ARN).
func TestKMSKey(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.store.KMSKey = localaws.KMSKeyID
	e.store.PartSize = 5 * MiB
	f := newFile("secret.bin", 11*MiB, MiB, true)
	e.stage(t, f)
	h, err := e.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(e.store.ChunkKey(f.rec.Key, f.rec.Generation, 1))})
	if err != nil || h.ServerSideEncryption != types.ServerSideEncryptionAwsKms {
		t.Fatalf("chunk: %v, encryption %q", err, h.ServerSideEncryption)
	}
	// A chunk moved to another generation stays encrypted.
	other := "00000000000000aa"
	if err := e.store.PutChunk(ctx, f.rec.Info, other, 2, f.chunk(2)); err != nil {
		t.Fatal(err)
	}
	if err := e.store.MoveChunk(ctx, f.rec.Info, 2, other, f.rec.Generation); err != nil {
		t.Fatal(err)
	}
	res, err := e.store.Assemble(ctx, f.rec)
	if err != nil {
		t.Fatal(err)
	}
	h, err = e.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(res.Object)})
	if err != nil || h.ServerSideEncryption != types.ServerSideEncryptionAwsKms || !bytes.Contains([]byte(aws.ToString(h.SSEKMSKeyId)), []byte(localaws.KMSKeyID)) {
		t.Fatalf("finished file: %v, encryption %q with %q", err, h.ServerSideEncryption, aws.ToString(h.SSEKMSKeyId))
	}
	if res.CRC64NVME != crcOf(f) {
		t.Fatalf("crc64nvme %s, want %s", res.CRC64NVME, crcOf(f))
	}
}
