package s3store

import (
	"context"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/flowgate/flowgate/shared/upload"
)

// Streams that read chunk objects back from S3 to send them on as one part.

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
		r.cur = newChunkReader(out.Body, r.to-r.from)
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
