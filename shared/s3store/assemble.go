package s3store

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/flowgate/flowgate/shared/checksum"
	"github.com/flowgate/flowgate/shared/upload"
)

// S3's multipart limits.
const (
	minPartSize = 5 << 20 // every part but the last
	maxPartSize = 5 << 30 // any part; also the most CopyObject copies at once
	maxParts    = 10_000  // parts per upload
	maxObject   = 5 << 40 // the largest object
	partRetries = 3       // attempts per part before the assembly fails
)

// part is one part of the finished object: either a server-side copy of (a
// range of) one chunk, or a stream of whole chunks read back and sent on.
type part struct {
	num  int32
	size int64
	// copy
	copyKey          string
	copyFrom, copyTo int64 // byte range within copyKey, inclusive start, exclusive end
	ranged           bool
	// stream
	chunks []int
}

// Assemble builds the finished object from the upload's chunks (see the
// package doc for names), checks its size, deletes the chunks and returns
// where it landed. It is idempotent: after a crash at any point a new call
// finds the finished object, or resumes the multipart upload the crashed one
// left, and ends with the same Result.
//
// Chunks of at least 5 MiB are copied server-side (UploadPartCopy); smaller
// ones are read back and streamed into parts of PartSize or more. Up to
// Concurrency parts are in flight, each streamed without buffering, so
// memory stays flat whatever the file's size.
func (s *Store) Assemble(ctx context.Context, rec upload.Record) (upload.Result, error) {
	final := s.FinalKey(rec)
	if rec.TotalSize > maxObject {
		return upload.Result{}, &upload.PermanentError{Reason: fmt.Sprintf("%d bytes is over S3's 5 TiB object limit", rec.TotalSize)}
	}

	objs, err := s.listStaged(ctx, rec.Key, rec.Generation)
	if err != nil {
		return upload.Result{}, err
	}
	missing := checkChunks(rec, s.genPrefix(rec.Key, rec.Generation), objs)

	// Done before? CompleteMultipartUpload and CopyObject are atomic (and
	// the first checked the object against its chunks' checksum, the second
	// is S3's own copy of the one chunk): an object at the final key of this
	// generation with the right size is this upload's file.
	if res, ok, err := s.finalResult(ctx, rec, final, nil); err != nil {
		return upload.Result{}, err
	} else if ok {
		return res, s.Discard(ctx, rec.Key, rec.Generation)
	}
	if missing != nil {
		return upload.Result{}, missing
	}

	// What the finished file's checksum must be: the chunks' checksums, as
	// S3 verified and kept them when each chunk was stored, combined. Nil
	// when unknown (chunks stored without a CRC-64/NVME by older code).
	sums := newChunkSums(rec.TotalChunks)
	var want *uint64
	if rec.TotalChunks == 1 && rec.TotalSize <= maxPartSize {
		// One chunk (a small file, or an empty one): a server-side copy.
		if want, err = s.expectedCRC(ctx, rec, sums); err != nil {
			return upload.Result{}, err
		}
		if err := s.copySingle(ctx, rec, final, want); err != nil {
			return upload.Result{}, err
		}
	} else {
		parts, err := s.plan(rec)
		if err != nil {
			return upload.Result{}, err
		}
		if want, err = s.multipart(ctx, rec, final, parts, sums); err != nil {
			return upload.Result{}, err
		}
	}

	res, ok, err := s.finalResult(ctx, rec, final, want)
	if err != nil {
		return upload.Result{}, err
	}
	if !ok {
		return upload.Result{}, &upload.PermanentError{Reason: "the assembled object does not have the declared size or its chunks' checksum"}
	}
	keys := make([]string, len(objs))
	for i, o := range objs {
		keys[i] = aws.ToString(o.Key)
	}
	if err := s.deleteKeys(ctx, keys); err != nil {
		return upload.Result{}, err
	}
	return res, nil
}

// copySingle copies the only chunk to the finished key with the finished
// object's settings, and checks the checksum S3 computed for the copy.
func (s *Store) copySingle(ctx context.Context, rec upload.Record, final string, want *uint64) error {
	o := s.settings(rec)
	out, err := s.Client.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket:               aws.String(s.Bucket),
		Key:                  aws.String(final),
		CopySource:           aws.String(copySource(s.Bucket, s.ChunkKey(rec.Key, rec.Generation, 1))),
		ChecksumAlgorithm:    types.ChecksumAlgorithmCrc64nvme,
		MetadataDirective:    types.MetadataDirectiveReplace,
		Metadata:             o.metadata,
		ContentType:          aws.String(o.contentType),
		ContentDisposition:   aws.String(o.disposition),
		TaggingDirective:     types.TaggingDirectiveReplace,
		Tagging:              o.tagging,
		StorageClass:         o.storageClass,
		ServerSideEncryption: o.sse,
		SSEKMSKeyId:          o.kmsKey,
	})
	if err != nil {
		return fmt.Errorf("s3store: copy single chunk: %w", err)
	}
	if want != nil && out.CopyObjectResult != nil && out.CopyObjectResult.ChecksumCRC64NVME != nil {
		if got, err := checksum.Decode(aws.ToString(out.CopyObjectResult.ChecksumCRC64NVME)); err == nil && got != *want {
			return &upload.PermanentError{Reason: "the copied object's checksum differs from its chunk's"}
		}
	}
	return nil
}

// finalResult reports whether the finished object of this generation
// exists with the declared size (and, when want is known, the chunks'
// checksum), and its Result if so.
func (s *Store) finalResult(ctx context.Context, rec upload.Record, final string, want *uint64) (upload.Result, bool, error) {
	head, err := s.Client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket: aws.String(s.Bucket), Key: aws.String(final), ChecksumMode: types.ChecksumModeEnabled,
	})
	if isNotFound(err) {
		return upload.Result{}, false, nil
	}
	if err != nil {
		return upload.Result{}, false, fmt.Errorf("s3store: head finished object: %w", err)
	}
	if aws.ToInt64(head.ContentLength) != rec.TotalSize {
		// Not ours to trust (a partial write cannot exist); rebuild over it.
		return upload.Result{}, false, nil
	}
	if gen, ok := head.Metadata[metaGeneration]; ok && gen != rec.Generation {
		// Another generation's file, under a layout without {generation}.
		return upload.Result{}, false, nil
	}
	crc := aws.ToString(head.ChecksumCRC64NVME)
	if want != nil && crc != "" && crc != checksum.Encode(*want) {
		return upload.Result{}, false, nil
	}
	return upload.Result{
		Location:           "s3://" + s.Bucket + "/" + final,
		Bucket:             s.Bucket,
		Object:             final,
		Size:               rec.TotalSize,
		ETag:               strings.Trim(aws.ToString(head.ETag), `"`),
		CRC64NVME:          crc,
		ContentType:        aws.ToString(head.ContentType),
		ContentDisposition: aws.ToString(head.ContentDisposition),
	}, true, nil
}

// checkChunks makes sure every chunk is staged with its size. A missing or
// misfit chunk cannot appear by retrying (the ledger counted only durable
// chunks, so it was lost to expiry or tampering): the failure is permanent.
func checkChunks(rec upload.Record, prefix string, objs []types.Object) error {
	sizes := make(map[string]int64, len(objs))
	for _, o := range objs {
		sizes[aws.ToString(o.Key)] = aws.ToInt64(o.Size)
	}
	for n := 1; n <= rec.TotalChunks; n++ {
		_, want := rec.ChunkBounds(n)
		got, ok := sizes[fmt.Sprintf("%s%08d", prefix, n)]
		if !ok {
			return &upload.PermanentError{Reason: fmt.Sprintf("chunk %d of %d is not stored", n, rec.TotalChunks)}
		}
		if got != want {
			return &upload.PermanentError{Reason: fmt.Sprintf("chunk %d is %d bytes, expected %d", n, got, want)}
		}
	}
	return nil
}

// plan cuts the file into parts. When chunks are at least 5 MiB and few
// enough, each becomes a copied part (split in ranges if over 5 GiB).
// Otherwise consecutive whole chunks are grouped into streamed parts of at
// least PartSize, and of more when needed to stay within 10,000 parts: a 5 TiB
// file of 1 MiB chunks gets parts of 525 MiB.
func (s *Store) plan(rec upload.Record) ([]part, error) {
	var parts []part
	add := func(p part) {
		p.num = int32(len(parts) + 1)
		parts = append(parts, p)
	}
	if rec.ChunkSize >= minPartSize {
		for n := 1; n <= rec.TotalChunks; n++ {
			_, size := rec.ChunkBounds(n)
			key := s.ChunkKey(rec.Key, rec.Generation, n)
			if size <= maxPartSize {
				// A whole-object copy; the last chunk may be under 5 MiB,
				// which S3 allows for the last part.
				add(part{size: size, copyKey: key, copyTo: size})
				continue
			}
			k := (size + maxPartSize - 1) / maxPartSize
			for i := range k {
				from, to := size*i/k, size*(i+1)/k
				add(part{size: to - from, copyKey: key, copyFrom: from, copyTo: to, ranged: true})
			}
		}
		if len(parts) <= maxParts {
			return parts, nil
		}
		parts = nil
	}

	target := s.PartSize
	if target == 0 {
		target = DefaultPartSize
	}
	target = max(target, minPartSize)
	per := max(
		int((target+rec.ChunkSize-1)/rec.ChunkSize),
		(rec.TotalChunks+maxParts-1)/maxParts,
	)
	for first := 1; first <= rec.TotalChunks; first += per {
		last := min(first+per-1, rec.TotalChunks)
		p := part{}
		for n := first; n <= last; n++ {
			_, size := rec.ChunkBounds(n)
			p.size += size
			p.chunks = append(p.chunks, n)
		}
		if p.size > maxPartSize {
			return nil, &upload.PermanentError{Reason: "file too large for S3 multipart limits"}
		}
		add(p)
	}
	return parts, nil
}
