// Package s3store keeps chunks in S3 and assembles them into the finished
// object with one multipart upload. It implements upload.ChunkStore,
// upload.StagedLister and upload.Assembler against any S3 API (AWS, MinIO).
//
// Layout in the bucket:
//
//	<staging prefix><upload key>/<generation>/<chunk number, 8 digits>   one object per chunk
//	<finished prefix><upload key>-<generation>/<safe name>                the finished file (Layout)
//
// Both names derive only from the upload key (a hash), the record's random
// generation and the sanitized file name, never from client strings
// directly. Each generation of an upload has its own chunk objects, so that
// removing one generation's (after it expired, or when a refused first chunk
// is cleaned up) can never remove another's, whichever function instance
// does it and however late. A lifecycle rule on the staging prefix (expire
// objects, abort incomplete multipart uploads) is the backstop for anything
// a crash leaves.
//
// Integrity: every chunk object is written with a CRC-64/NVME, which S3
// checks against the bytes it received and keeps; the finished object is a
// multipart upload with a full-object CRC-64/NVME, which S3 computes from
// the parts and checks, on completion, against the chunks' checksums
// combined (package checksum). The finished object also carries what a site
// needs to serve it (object.go): type, disposition, metadata, tags, storage
// class, SSE-KMS key.
//
// Chunks and streamed parts go out as they arrive, never buffered: the SDK
// sends such a body with a checksum trailer (aws-chunked), which it only does
// over HTTPS. The endpoint must therefore be HTTPS, as AWS is; the local
// MinIO that localaws starts serves TLS for this reason.
package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/flowgate/flowgate/shared/exactlen"
	"github.com/flowgate/flowgate/shared/upload"
)

// API is the part of the S3 client the store uses; *s3.Client implements it.
// Tests wrap a real client to fail or abandon chosen calls.
type API interface {
	PutObject(context.Context, *s3.PutObjectInput, ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	HeadObject(context.Context, *s3.HeadObjectInput, ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
	CopyObject(context.Context, *s3.CopyObjectInput, ...func(*s3.Options)) (*s3.CopyObjectOutput, error)
	DeleteObjects(context.Context, *s3.DeleteObjectsInput, ...func(*s3.Options)) (*s3.DeleteObjectsOutput, error)
	ListObjectsV2(context.Context, *s3.ListObjectsV2Input, ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	CreateMultipartUpload(context.Context, *s3.CreateMultipartUploadInput, ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
	UploadPart(context.Context, *s3.UploadPartInput, ...func(*s3.Options)) (*s3.UploadPartOutput, error)
	UploadPartCopy(context.Context, *s3.UploadPartCopyInput, ...func(*s3.Options)) (*s3.UploadPartCopyOutput, error)
	ListParts(context.Context, *s3.ListPartsInput, ...func(*s3.Options)) (*s3.ListPartsOutput, error)
	ListMultipartUploads(context.Context, *s3.ListMultipartUploadsInput, ...func(*s3.Options)) (*s3.ListMultipartUploadsOutput, error)
	CompleteMultipartUpload(context.Context, *s3.CompleteMultipartUploadInput, ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error)
	AbortMultipartUpload(context.Context, *s3.AbortMultipartUploadInput, ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
}

// NewClient builds an S3 client from an SDK config. When an endpoint
// override is in force (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL or
// cfg.BaseEndpoint: MinIO and other S3-compatible servers), it addresses
// buckets by path, which those servers expect; on AWS it keeps virtual hosts.
func NewClient(cfg aws.Config, optFns ...func(*s3.Options)) *s3.Client {
	opts := append([]func(*s3.Options){func(o *s3.Options) {
		// BaseEndpoint is filled from the environment before option
		// functions run, so this sees every kind of override.
		if o.BaseEndpoint != nil && *o.BaseEndpoint != "" {
			o.UsePathStyle = true
		}
		// Chunk objects written by older code, or by servers without
		// checksums, have none to validate; that is not worth a log line
		// per read.
		o.DisableLogOutputChecksumValidationSkipped = true
	}}, optFns...)
	return s3.NewFromConfig(cfg, opts...)
}

// Defaults for Store's zero fields.
const (
	DefaultStagingPrefix  = "staging/"
	DefaultFinishedPrefix = "files/"
	DefaultPartSize       = 16 << 20
	DefaultConcurrency    = 4
)

// Store is the S3 chunk store and assembler. Only Client and Bucket are
// required.
type Store struct {
	Client API
	Bucket string
	// StagingPrefix holds chunk objects; FinishedPrefix finished files.
	StagingPrefix  string
	FinishedPrefix string
	// PartSize is the target size of a part streamed from small chunks; it
	// is raised when a file would otherwise need more than 10,000 parts.
	// An interrupted assembly resumes the parts it finished, matched by
	// number and size, so PartSize must not change while assemblies may be
	// resumed; deployments leave it at the default (tests lower it).
	PartSize int64
	// Concurrency is how many parts are in flight during one assembly.
	Concurrency int

	// How the finished object is written (object.go): its key below
	// FinishedPrefix (Layout, DefaultLayout when empty), Content-Disposition
	// mode (upload.DispositionAttachment when empty), tags in the
	// x-amz-tagging form (ParseTags), storage class (the bucket's default
	// when empty). KMSKey, when set, encrypts every object the store
	// writes, chunks included, with that KMS key (SSE-KMS).
	Layout       string
	Disposition  string
	Tags         string
	StorageClass types.StorageClass
	KMSKey       string

	// Presign signs the URLs clients of the direct data path store chunks
	// with (direct.go); nil when the deployment's data path is proxy. Its
	// endpoint is the one clients reach, which may differ from Client's.
	Presign Presigner

	// copyNoChecksum is set once the server refused to copy a part into a
	// multipart upload that has a checksum algorithm (MinIO does; AWS
	// computes the part's checksum): parts are streamed from then on.
	copyNoChecksum atomic.Bool
}

func (s *Store) staging() string {
	if s.StagingPrefix == "" {
		return DefaultStagingPrefix
	}
	return s.StagingPrefix
}

func (s *Store) finished() string {
	if s.FinishedPrefix == "" {
		return DefaultFinishedPrefix
	}
	return s.FinishedPrefix
}

// ChunkKey is the object key of chunk n of generation gen of an upload.
func (s *Store) ChunkKey(key, gen string, n int) string {
	return fmt.Sprintf("%s%08d", s.genPrefix(key, gen), n)
}

// genPrefix is the common prefix of a generation's chunk objects.
func (s *Store) genPrefix(key, gen string) string {
	return s.staging() + key + "/" + gen + "/"
}

// FinalKey is the object key of an upload's finished file.
func (s *Store) FinalKey(rec upload.Record) string {
	return s.finished() + layoutKey(s.Layout, rec)
}

// PutChunk streams chunk n to its own object. The body goes out with its
// exact length and a CRC-64/NVME trailer (aws-chunked): S3 checks the bytes
// it received and keeps the checksum with the object, where the assembly
// finds it to check the finished file; the stream needs no seeking, so
// nothing is buffered. If r
// fails, or yields more or fewer bytes than the chunk's size, the request is
// cut off before its end and S3 stores nothing.
func (s *Store) PutChunk(ctx context.Context, info upload.Info, gen string, n int, r io.Reader) error {
	if !upload.ValidName(info.Key) || !upload.ValidName(gen) {
		return errors.New("s3store: invalid upload key or generation")
	}
	_, size := info.ChunkBounds(n)
	body := newChunkReader(r, size)
	sse, kmsKey := s.encryption()
	_, err := s.Client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:               aws.String(s.Bucket),
		Key:                  aws.String(s.ChunkKey(info.Key, gen, n)),
		Body:                 body,
		ContentLength:        aws.Int64(size),
		ContentType:          aws.String("application/octet-stream"),
		ChecksumAlgorithm:    types.ChecksumAlgorithmCrc64nvme,
		ServerSideEncryption: sse,
		SSEKMSKeyId:          kmsKey,
	})
	if err := body.Err(); err != nil {
		return err
	}
	if err != nil {
		return fmt.Errorf("s3store: put chunk %d: %w", n, err)
	}
	return nil
}

// MoveChunk moves chunk n from generation from to generation to: it reads
// the chunk back and writes it under its new key (a chunk is a few MiB at
// most behind API Gateway, and a move happens only when a request loses the
// race to create an upload's record), then deletes the original. Reading and
// writing rather than CopyObject keeps the upload function's permissions to
// the staging prefix.
func (s *Store) MoveChunk(ctx context.Context, info upload.Info, n int, from, to string) error {
	if !upload.ValidName(info.Key) || !upload.ValidName(from) || !upload.ValidName(to) {
		return errors.New("s3store: invalid upload key or generation")
	}
	src := s.ChunkKey(info.Key, from, n)
	out, err := s.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(src)})
	if err != nil {
		return fmt.Errorf("s3store: read chunk %d to move it: %w", n, err)
	}
	defer out.Body.Close()
	if err := s.PutChunk(ctx, info, to, n, out.Body); err != nil {
		return err
	}
	return s.deleteKeys(ctx, []string{src})
}

// Discard deletes the staged chunks of one generation of the upload, and
// aborts any multipart upload an interrupted assembly of it left.
func (s *Store) Discard(ctx context.Context, key, gen string) error {
	if !upload.ValidName(key) || !upload.ValidName(gen) {
		return errors.New("s3store: invalid upload key or generation")
	}
	objs, err := s.listStaged(ctx, key, gen)
	if err != nil {
		return err
	}
	keys := make([]string, len(objs))
	for i, o := range objs {
		keys[i] = aws.ToString(o.Key)
	}
	if err := s.deleteKeys(ctx, keys); err != nil {
		return err
	}
	return s.abortLeftovers(ctx, key, gen)
}

// abortLeftovers aborts the multipart uploads an interrupted assembly of
// the generation left. Only a layout with {generation} tells one
// generation's finished key from another's; with any other, nothing is
// aborted here (the bucket's lifecycle rule aborts what is left).
func (s *Store) abortLeftovers(ctx context.Context, key, gen string) error {
	layout := s.Layout
	if layout == "" {
		layout = DefaultLayout
	}
	if !strings.Contains(layout, "{generation}") {
		return nil
	}
	cut := len(layout)
	for _, f := range []string{"{namespace}", "{name}"} {
		if i := strings.Index(layout, f); i >= 0 && i < cut {
			cut = i
		}
	}
	prefix := s.finished() + strings.NewReplacer("{uploadKey}", key, "{generation}", gen).Replace(layout[:cut])
	ups, err := s.listUploads(ctx, prefix)
	if err != nil {
		return err
	}
	ups = slices.DeleteFunc(ups, func(u types.MultipartUpload) bool {
		k := strings.TrimPrefix(aws.ToString(u.Key), s.finished())
		return !strings.Contains(k, key) || !strings.Contains(k, gen)
	})
	return s.abort(ctx, ups)
}

// Staged lists every generation of an upload with staged chunks and when
// its latest chunk was written. It lists every chunk object (one request per
// 1,000), which suits a sweeper of the embedded kind; on AWS the lifecycle
// rule does this job.
func (s *Store) Staged(ctx context.Context) ([]upload.Staged, error) {
	byKey := map[[2]string]time.Time{}
	var order [][2]string
	p := s3.NewListObjectsV2Paginator(s.Client, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.Bucket), Prefix: aws.String(s.staging()),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("s3store: list staged: %w", err)
		}
		for _, o := range page.Contents {
			parts := strings.Split(strings.TrimPrefix(aws.ToString(o.Key), s.staging()), "/")
			if len(parts) != 3 {
				continue
			}
			key := [2]string{parts[0], parts[1]}
			t, seen := byKey[key]
			if !seen {
				order = append(order, key)
			}
			if m := aws.ToTime(o.LastModified); m.After(t) {
				byKey[key] = m
			}
		}
	}
	out := make([]upload.Staged, len(order))
	for i, k := range order {
		out[i] = upload.Staged{Key: k[0], Generation: k[1], Modified: byKey[k]}
	}
	return out, nil
}

// listStaged lists the chunk objects of one generation of an upload, in
// chunk order.
func (s *Store) listStaged(ctx context.Context, key, gen string) ([]types.Object, error) {
	var out []types.Object
	p := s3.NewListObjectsV2Paginator(s.Client, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.Bucket), Prefix: aws.String(s.genPrefix(key, gen)),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("s3store: list chunks: %w", err)
		}
		out = append(out, page.Contents...)
	}
	return out, nil
}

// deleteKeys deletes objects 1,000 per request (the API's limit).
func (s *Store) deleteKeys(ctx context.Context, keys []string) error {
	for len(keys) > 0 {
		n := min(len(keys), 1000)
		ids := make([]types.ObjectIdentifier, n)
		for i, k := range keys[:n] {
			ids[i] = types.ObjectIdentifier{Key: aws.String(k)}
		}
		out, err := s.Client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: aws.String(s.Bucket),
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		})
		if err != nil {
			return fmt.Errorf("s3store: delete chunks: %w", err)
		}
		if len(out.Errors) > 0 {
			e := out.Errors[0]
			return fmt.Errorf("s3store: delete %d chunks failed, first %s: %s %s",
				len(out.Errors), aws.ToString(e.Key), aws.ToString(e.Code), aws.ToString(e.Message))
		}
		keys = keys[n:]
	}
	return nil
}

func (s *Store) abort(ctx context.Context, ups []types.MultipartUpload) error {
	for _, u := range ups {
		_, err := s.Client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
			Bucket: aws.String(s.Bucket), Key: u.Key, UploadId: u.UploadId,
		})
		if err != nil && !isNotFound(err) {
			return fmt.Errorf("s3store: abort stale multipart upload: %w", err)
		}
	}
	return nil
}

func (s *Store) listUploads(ctx context.Context, prefix string) ([]types.MultipartUpload, error) {
	var out []types.MultipartUpload
	in := &s3.ListMultipartUploadsInput{Bucket: aws.String(s.Bucket), Prefix: aws.String(prefix)}
	for range 1000 { // bounded: 1,000 pages of 1,000 uploads is far past any real case
		page, err := s.Client.ListMultipartUploads(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("s3store: list multipart uploads: %w", err)
		}
		out = append(out, page.Uploads...)
		if !aws.ToBool(page.IsTruncated) {
			break
		}
		in.KeyMarker, in.UploadIdMarker = page.NextKeyMarker, page.NextUploadIdMarker
	}
	return out, nil
}

// isNotFound tells a missing object, bucket or upload from other failures.
func isNotFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	var nsu *types.NoSuchUpload
	if errors.As(err, &nsk) || errors.As(err, &nf) || errors.As(err, &nsu) {
		return true
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NotFound", "NoSuchKey", "NoSuchUpload":
			return true
		}
	}
	return false
}

// chunkReader reads exactly one chunk's bytes (exactlen.Reader), and names
// a body of the wrong size as a chunk's in its errors.
type chunkReader struct{ x *exactlen.Reader }

func newChunkReader(r io.Reader, size int64) *chunkReader {
	return &chunkReader{exactlen.NewReader(r, size)}
}

func (c *chunkReader) Read(p []byte) (int, error) {
	n, err := c.x.Read(p)
	return n, chunkSizeErr(err)
}

// Err is the reader's failure, or nil.
func (c *chunkReader) Err() error { return chunkSizeErr(c.x.Err()) }

func chunkSizeErr(err error) error {
	if errors.Is(err, exactlen.ErrShort) || errors.Is(err, exactlen.ErrLong) {
		return fmt.Errorf("s3store: chunk %w", err)
	}
	return err
}
