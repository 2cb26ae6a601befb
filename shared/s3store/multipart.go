package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/flowgate/flowgate/shared/checksum"
	"github.com/flowgate/flowgate/shared/upload"
)

// The multipart upload of the finished object: created or resumed, its
// parts sent (copied server-side or streamed) with retries, completed.

// donePart is what CompleteMultipartUpload needs of a part.
type donePart struct{ etag, crc string }

// multipart runs (or resumes) the multipart upload of parts into final. The
// upload computes the object's full CRC-64/NVME from its parts' (each part
// carries its own: streamed ones in their trailer, copied ones computed by
// S3), and S3 refuses to complete an object whose checksum is not the one
// its chunks add up to (want, returned: nil when unknown).
func (s *Store) multipart(ctx context.Context, rec upload.Record, final string, parts []part, sums *chunkSums) (want *uint64, err error) {
	id, done, err := s.resume(ctx, rec, final, parts)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil && ctx.Err() == nil {
			// A failure we saw (not a crash): leave nothing behind. Use a
			// fresh context so a cancelled one cannot skip the cleanup.
			s.Client.AbortMultipartUpload(context.WithoutCancel(ctx), &s3.AbortMultipartUploadInput{
				Bucket: aws.String(s.Bucket), Key: aws.String(final), UploadId: aws.String(id),
			})
		}
	}()

	todo := make(chan part)
	var mu sync.Mutex
	var errs []error
	workers := s.Concurrency
	if workers <= 0 {
		workers = DefaultConcurrency
	}
	// Cancelled when one part fails for good, so the others stop early;
	// the caller's ctx stays as it was, for the abort above.
	work, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for p := range todo {
				dp, err := s.sendPart(work, rec, final, id, p, sums)
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Errorf("part %d: %w", p.num, err))
					cancel()
				} else {
					done[p.num] = dp
				}
				mu.Unlock()
			}
		})
	}
feed:
	for _, p := range parts {
		mu.Lock()
		_, ok := done[p.num]
		mu.Unlock()
		if ok {
			continue
		}
		select {
		case todo <- p:
		case <-work.Done():
			break feed
		}
	}
	close(todo)
	wg.Wait()
	if len(errs) > 0 {
		return nil, fmt.Errorf("s3store: assemble: %w", errors.Join(errs...))
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if want, err = s.expectedCRC(ctx, rec, sums); err != nil {
		return nil, err
	}

	completed := make([]types.CompletedPart, len(parts))
	for i, p := range parts {
		completed[i] = types.CompletedPart{
			PartNumber: aws.Int32(p.num), ETag: aws.String(done[p.num].etag),
			ChecksumCRC64NVME: aws.String(done[p.num].crc),
		}
	}
	in := &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(s.Bucket), Key: aws.String(final), UploadId: aws.String(id),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: completed},
		ChecksumType:    types.ChecksumTypeFullObject,
	}
	if want != nil {
		in.ChecksumCRC64NVME = aws.String(checksum.Encode(*want))
	}
	_, err = s.Client.CompleteMultipartUpload(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("s3store: complete multipart upload: %w", err)
	}
	return want, nil
}

// resume finds a multipart upload an interrupted assembly left for final and
// the parts it finished (those whose size matches the plan, which is the same
// for the same record), or starts a new one. Other leftovers are aborted.
//
// The upload is created with the CRC-64/NVME algorithm, full-object type,
// and every setting of the finished object (object.go); one left by older
// code without it is aborted, not resumed.
func (s *Store) resume(ctx context.Context, rec upload.Record, final string, parts []part) (string, map[int32]donePart, error) {
	ups, err := s.listUploads(ctx, final)
	if err != nil {
		return "", nil, err
	}
	ups = slices.DeleteFunc(ups, func(u types.MultipartUpload) bool { return aws.ToString(u.Key) != final })
	sort.Slice(ups, func(i, j int) bool { return aws.ToTime(ups[i].Initiated).After(aws.ToTime(ups[j].Initiated)) })

	done := map[int32]donePart{}
	if len(ups) > 0 {
		id := aws.ToString(ups[0].UploadId)
		sizes := map[int32]int64{}
		for _, p := range parts {
			sizes[p.num] = p.size
		}
		in := &s3.ListPartsInput{Bucket: aws.String(s.Bucket), Key: aws.String(final), UploadId: aws.String(id)}
		for range maxParts { // one page at least per 1,000 parts; bounded
			page, err := s.Client.ListParts(ctx, in)
			if err != nil {
				if isNotFound(err) { // aborted or completed meanwhile
					break
				}
				return "", nil, fmt.Errorf("s3store: list parts: %w", err)
			}
			if page.ChecksumAlgorithm != types.ChecksumAlgorithmCrc64nvme {
				break // begun by older code, without checksums: start afresh
			}
			for _, p := range page.Parts {
				if n := aws.ToInt32(p.PartNumber); sizes[n] == aws.ToInt64(p.Size) && sizes[n] > 0 && p.ChecksumCRC64NVME != nil {
					done[n] = donePart{aws.ToString(p.ETag), aws.ToString(p.ChecksumCRC64NVME)}
				}
			}
			if !aws.ToBool(page.IsTruncated) {
				return id, done, s.abort(ctx, ups[1:])
			}
			in.PartNumberMarker = page.NextPartNumberMarker
		}
		done = map[int32]donePart{}
	}

	if err := s.abort(ctx, ups); err != nil {
		return "", nil, err
	}
	o := s.settings(rec)
	out, err := s.Client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:               aws.String(s.Bucket),
		Key:                  aws.String(final),
		ChecksumAlgorithm:    types.ChecksumAlgorithmCrc64nvme,
		ChecksumType:         types.ChecksumTypeFullObject,
		ContentType:          aws.String(o.contentType),
		ContentDisposition:   aws.String(o.disposition),
		Metadata:             o.metadata,
		Tagging:              o.tagging,
		StorageClass:         o.storageClass,
		ServerSideEncryption: o.sse,
		SSEKMSKeyId:          o.kmsKey,
	})
	if err != nil {
		return "", nil, fmt.Errorf("s3store: create multipart upload: %w", err)
	}
	return aws.ToString(out.UploadId), done, nil
}

// sendPart uploads one part, retrying a few times: a streamed body cannot be
// rewound by the SDK, so retries happen here, re-reading the chunks.
func (s *Store) sendPart(ctx context.Context, rec upload.Record, final, id string, p part, sums *chunkSums) (donePart, error) {
	var err error
	for range partRetries {
		var dp donePart
		dp, err = s.sendPartOnce(ctx, rec, final, id, p, sums)
		if err == nil {
			return dp, nil
		}
		if ctx.Err() != nil {
			return donePart{}, err
		}
	}
	return donePart{}, err
}

func (s *Store) sendPartOnce(ctx context.Context, rec upload.Record, final, id string, p part, sums *chunkSums) (donePart, error) {
	if p.copyKey != "" && !s.copyNoChecksum.Load() {
		in := &s3.UploadPartCopyInput{
			Bucket: aws.String(s.Bucket), Key: aws.String(final), UploadId: aws.String(id),
			PartNumber: aws.Int32(p.num), CopySource: aws.String(copySource(s.Bucket, p.copyKey)),
		}
		if p.ranged {
			in.CopySourceRange = aws.String(fmt.Sprintf("bytes=%d-%d", p.copyFrom, p.copyTo-1))
		}
		out, err := s.Client.UploadPartCopy(ctx, in)
		switch {
		case err == nil && out.CopyPartResult.ChecksumCRC64NVME != nil:
			return donePart{aws.ToString(out.CopyPartResult.ETag), aws.ToString(out.CopyPartResult.ChecksumCRC64NVME)}, nil
		case err == nil || isInvalidArgument(err):
			// The server cannot copy into an upload with checksums (MinIO
			// refuses, naming the missing checksum): stream instead.
			s.copyNoChecksum.Store(true)
		default:
			return donePart{}, err
		}
	}

	var body io.ReadCloser = &chunkStream{ctx: ctx, s: s, rec: rec, chunks: p.chunks, sums: sums}
	if p.copyKey != "" {
		body = &rangeStream{ctx: ctx, s: s, key: p.copyKey, from: p.copyFrom, to: p.copyTo}
	}
	defer body.Close()
	errOf := func() error {
		switch b := body.(type) {
		case *chunkStream:
			return b.err
		case *rangeStream:
			return b.err
		}
		return nil
	}
	out, err := s.Client.UploadPart(ctx, &s3.UploadPartInput{
		Bucket: aws.String(s.Bucket), Key: aws.String(final), UploadId: aws.String(id),
		PartNumber: aws.Int32(p.num), ContentLength: aws.Int64(p.size),
		Body: body, ChecksumAlgorithm: types.ChecksumAlgorithmCrc64nvme,
	})
	if berr := errOf(); berr != nil {
		return donePart{}, berr
	}
	if err != nil {
		return donePart{}, err
	}
	return donePart{aws.ToString(out.ETag), aws.ToString(out.ChecksumCRC64NVME)}, nil
}

// isInvalidArgument tells S3's 400 InvalidArgument, MinIO's answer to a
// part copied into an upload with a checksum algorithm.
func isInvalidArgument(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "InvalidArgument"
}

// copySource is the x-amz-copy-source value: bucket/key, URL-escaped.
func copySource(bucket, key string) string {
	return url.PathEscape(bucket) + "/" + strings.ReplaceAll(url.PathEscape(key), "%2F", "/")
}
