package s3store

import (
	"cmp"
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

// chunkSums collects the CRC-64/NVME that S3 keeps of each chunk: from the
// responses that stream the chunks into parts (GetObject with ChecksumMode
// ENABLED returns it, at no extra cost), the rest with HeadObject.
type chunkSums struct {
	mu      sync.Mutex
	crc     []uint64
	have    []bool
	unknown bool // a chunk has none (stored by older code)
}

func newChunkSums(n int) *chunkSums { return &chunkSums{crc: make([]uint64, n), have: make([]bool, n)} }

// note records chunk n's checksum as S3 gave it ("" when it has none).
func (c *chunkSums) note(n int, b64 string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, err := checksum.Decode(b64)
	if err != nil {
		c.unknown = true
		return
	}
	c.crc[n-1], c.have[n-1] = v, true
}

func (c *chunkSums) missing() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []int
	for i, ok := range c.have {
		if !ok {
			out = append(out, i+1)
		}
	}
	return out
}

// expectedCRC combines the chunks' checksums into the file's, reading those
// sums does not have yet with HeadObject, several at once; nil if a chunk
// has none.
func (s *Store) expectedCRC(ctx context.Context, rec upload.Record, sums *chunkSums) (*uint64, error) {
	todo := sums.missing()
	var firstErr error
	var mu sync.Mutex
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(headConcurrency, len(todo)) {
		wg.Go(func() {
			for n := range work {
				head, err := s.Client.HeadObject(ctx, &s3.HeadObjectInput{
					Bucket: aws.String(s.Bucket), Key: aws.String(s.ChunkKey(rec.Key, rec.Generation, n)),
					ChecksumMode: types.ChecksumModeEnabled,
				})
				if err != nil {
					mu.Lock()
					firstErr = cmp.Or(firstErr, fmt.Errorf("s3store: read chunk %d's checksum: %w", n, err))
					mu.Unlock()
					continue
				}
				sums.note(n, aws.ToString(head.ChecksumCRC64NVME))
			}
		})
	}
	for _, n := range todo {
		work <- n
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if sums.unknown {
		return nil, nil
	}
	crc := checksum.CRC64NVME(nil)
	for n := 1; n <= rec.TotalChunks; n++ {
		_, size := rec.ChunkBounds(n)
		crc = checksum.Combine(crc, sums.crc[n-1], size)
	}
	return &crc, nil
}

// headConcurrency is how many chunks' checksums are read at once.
const headConcurrency = 16

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

// rangeStream reads bytes [from, to) of one chunk object: a copied part,
// streamed when the server cannot copy it.
type rangeStream struct {
	ctx      context.Context
	s        *Store
	key      string
	from, to int64
	cur      io.Reader
	closer   io.Closer
	err      error
}

func (r *rangeStream) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.cur == nil {
		if r.from == r.to {
			return 0, io.EOF
		}
		out, err := r.s.Client.GetObject(r.ctx, &s3.GetObjectInput{
			Bucket: aws.String(r.s.Bucket), Key: aws.String(r.key),
			Range: aws.String(fmt.Sprintf("bytes=%d-%d", r.from, r.to-1)),
		})
		if err != nil {
			r.err = fmt.Errorf("read %s: %w", r.key, err)
			return 0, r.err
		}
		r.cur = &exactReader{r: out.Body, left: r.to - r.from}
		r.closer = out.Body
	}
	n, err := r.cur.Read(p)
	if err != nil && err != io.EOF {
		r.err = fmt.Errorf("read %s: %w", r.key, err)
	}
	return n, err
}

func (r *rangeStream) Close() error {
	if r.closer != nil {
		r.closer.Close()
	}
	return nil
}

// chunkStream reads whole chunks one after another, opening each only when
// the previous one is used up, and checks each yields exactly its size.
type chunkStream struct {
	ctx    context.Context
	s      *Store
	rec    upload.Record
	chunks []int
	sums   *chunkSums
	cur    io.ReadCloser
	left   int64
	err    error
}

func (c *chunkStream) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	for c.cur == nil {
		if len(c.chunks) == 0 {
			return 0, io.EOF
		}
		n := c.chunks[0]
		c.chunks = c.chunks[1:]
		_, size := c.rec.ChunkBounds(n)
		if size == 0 {
			continue
		}
		out, err := c.s.Client.GetObject(c.ctx, &s3.GetObjectInput{
			Bucket: aws.String(c.s.Bucket), Key: aws.String(c.s.ChunkKey(c.rec.Key, c.rec.Generation, n)),
			ChecksumMode: types.ChecksumModeEnabled,
		})
		if err != nil {
			c.err = fmt.Errorf("read chunk %d: %w", n, err)
			return 0, c.err
		}
		if c.sums != nil {
			c.sums.note(n, aws.ToString(out.ChecksumCRC64NVME))
		}
		c.cur, c.left = out.Body, size
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.cur.Read(p)
	c.left -= int64(n)
	if c.left == 0 {
		c.cur.Close()
		c.cur = nil
		return n, nil
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		c.err = fmt.Errorf("read chunk: %w", err)
		return n, c.err
	}
	return n, nil
}

func (c *chunkStream) Close() error {
	if c.cur != nil {
		c.cur.Close()
		c.cur = nil
	}
	return nil
}

// copySource is the x-amz-copy-source value: bucket/key, URL-escaped.
func copySource(bucket, key string) string {
	return url.PathEscape(bucket) + "/" + strings.ReplaceAll(url.PathEscape(key), "%2F", "/")
}
