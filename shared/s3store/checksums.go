package s3store

import (
	"cmp"
	"context"
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/flowgate/flowgate/shared/checksum"
	"github.com/flowgate/flowgate/shared/upload"
)

// The checksum the finished object must have: the CRC-64/NVME of each
// chunk, as S3 keeps it, combined in order.

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
