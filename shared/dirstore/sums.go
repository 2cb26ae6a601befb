package dirstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/flowgate/flowgate/shared/checksum"
	"github.com/flowgate/flowgate/shared/upload"
)

// Each chunk's CRC-64/NVME is computed as its bytes are written and kept in
// a table at the end of the staging file, past the file's declared size: one
// entry of 16 bytes per chunk, at TotalSize + 16·(n−1), holding the CRC and
// its complement. The table shares the chunk's fsync (it is the same file),
// so keeping it costs no extra write to the disk's journal, and an entry is
// durable before its chunk is counted. At assembly the entries combine into
// the file's CRC (package checksum) and the table is cut off; no byte of the
// file is read again.
//
// An entry that is not there (all zeros: never written, as for chunks
// staged before this table existed) is computed by reading that chunk, and
// so is the whole file when a crash left it renamed but its result not
// recorded: rare paths, correct in any case.
const sumEntry = 16

// sumOffset is where chunk n's entry lives in the staging file.
func sumOffset(info upload.Info, n int) int64 { return info.TotalSize + int64(n-1)*sumEntry }

// tableEnd is the staging file's size once every entry is written.
func tableEnd(info upload.Info) int64 { return sumOffset(info, info.TotalChunks+1) }

// crcWriter computes the CRC of what passes through it.
type crcReader struct {
	r   io.Reader
	crc uint64
}

func (c *crcReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.crc = checksum.UpdateCRC64NVME(c.crc, p[:n])
	return n, err
}

// writeSum writes chunk n's entry; the caller syncs the file.
func writeSum(f *os.File, info upload.Info, n int, crc uint64) error {
	var e [sumEntry]byte
	binary.BigEndian.PutUint64(e[:8], crc)
	binary.BigEndian.PutUint64(e[8:], ^crc)
	_, err := f.WriteAt(e[:], sumOffset(info, n))
	return err
}

// fileCRC combines the chunks' entries of a staging file of size bytes
// into the file's CRC, computing any missing entry from the chunk's bytes.
func fileCRC(f *os.File, info upload.Info, size int64) (uint64, error) {
	table := make([]byte, max(0, min(size, tableEnd(info))-info.TotalSize))
	if _, err := f.ReadAt(table, info.TotalSize); err != nil && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("dirstore: read the chunks' checksums: %w", err)
	}
	crc := checksum.CRC64NVME(nil)
	for n := 1; n <= info.TotalChunks; n++ {
		off, length := info.ChunkBounds(n)
		var c uint64
		i := (n - 1) * sumEntry
		if i+sumEntry <= len(table) && binary.BigEndian.Uint64(table[i:]) == ^binary.BigEndian.Uint64(table[i+8:]) {
			c = binary.BigEndian.Uint64(table[i:])
		} else {
			h := checksum.NewCRC64NVME()
			if _, err := io.Copy(h, io.NewSectionReader(f, off, length)); err != nil {
				return 0, fmt.Errorf("dirstore: read chunk %d for its checksum: %w", n, err)
			}
			c = h.Sum64()
		}
		crc = checksum.Combine(crc, c, length)
	}
	return crc, nil
}
