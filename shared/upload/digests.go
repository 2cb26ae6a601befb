package upload

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash"
	"hash/crc32"
	"io"

	"github.com/flowgate/flowgate/shared/checksum"
	"github.com/flowgate/flowgate/shared/exactlen"
)

// Digests are what a client declared of one chunk's bytes, each optional.
// The service checks every one given while the chunk streams to the store,
// and refuses a chunk that does not match before the store has taken it
// (see verifier).
type Digests struct {
	SHA256    []byte  // 32 bytes
	CRC32C    *uint32 // Castagnoli
	CRC64NVME *uint64
}

// Empty reports whether no digest was given.
func (d Digests) Empty() bool { return d.SHA256 == nil && d.CRC32C == nil && d.CRC64NVME == nil }

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// verifier passes a chunk's bytes on from r and checks them against the
// declared digests. It compares as the last byte arrives, and on a mismatch
// returns an error instead of that last read: a store that reads to the end
// before it commits (an S3 PutObject, whose request is then cut off; the
// directory store, which then does not report the chunk as written) never
// takes a chunk that does not match.
type verifier struct {
	r      *exactlen.Reader
	want   Digests
	n      int
	sha    hash.Hash
	crc32c uint32
	crc64  uint64
	err    error
	done   bool
}

func newVerifier(r *exactlen.Reader, want Digests, n int) *verifier {
	v := &verifier{r: r, want: want, n: n, crc64: checksum.CRC64NVME(nil)}
	if want.SHA256 != nil {
		v.sha = sha256.New()
	}
	return v
}

func (v *verifier) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.r.Read(p)
	v.add(p[:n])
	if v.r.Left() == 0 && (err == nil || err == io.EOF) && !v.done {
		// The whole chunk has been read, and exactlen checked that
		// nothing follows it.
		if v.err = v.check(); v.err != nil {
			return 0, v.err
		}
	}
	return n, err
}

func (v *verifier) add(p []byte) {
	if len(p) == 0 {
		return
	}
	if v.sha != nil {
		v.sha.Write(p)
	}
	if v.want.CRC32C != nil {
		v.crc32c = crc32.Update(v.crc32c, castagnoli, p)
	}
	if v.want.CRC64NVME != nil {
		v.crc64 = checksum.UpdateCRC64NVME(v.crc64, p)
	}
}

// check compares what was read with what was declared, once.
func (v *verifier) check() error {
	v.done = true
	mismatch := func(field, sent, got string) error {
		return &InputError{Kind: Mismatch, Msg: fmt.Sprintf(
			"chunk %d does not match its %s (sent %s, received bytes give %s): it was damaged on the way; send it again", v.n, field, sent, got)}
	}
	if v.sha != nil {
		if got := v.sha.Sum(nil); !bytes.Equal(got, v.want.SHA256) {
			return mismatch("SHA-256", b64(v.want.SHA256), b64(got))
		}
	}
	if v.want.CRC32C != nil && v.crc32c != *v.want.CRC32C {
		return mismatch("CRC32C", b64(be32(*v.want.CRC32C)), b64(be32(v.crc32c)))
	}
	if v.want.CRC64NVME != nil && v.crc64 != *v.want.CRC64NVME {
		return mismatch("CRC64NVME", checksum.Encode(*v.want.CRC64NVME), checksum.Encode(v.crc64))
	}
	return nil
}

// finish makes sure the comparison happened, for a store that did not read
// to the end (nothing to read in an empty chunk, say).
func (v *verifier) finish() error {
	if v.err != nil || v.done {
		return v.err
	}
	if err := v.r.End(); err != nil {
		return err
	}
	v.err = v.check()
	return v.err
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
