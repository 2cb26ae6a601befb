// Package checksum computes the checksums flowgate keeps of uploaded bytes,
// and combines the CRC-64/NVME of consecutive pieces into the CRC of the
// whole without reading the bytes again.
//
// CRC-64/NVME is the checksum S3 computes for a whole object from its parts
// (a multipart upload with ChecksumType FULL_OBJECT), so the same value can
// be known locally, from the chunks as they arrive, and on S3, from the
// object itself (x-amz-checksum-crc64nvme). Values travel as S3 writes them:
// the 8 bytes big-endian, base64-encoded.
package checksum

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash"

	"github.com/minio/crc64nvme"
)

// nvmePoly is the CRC-64/NVME polynomial, bit-reversed (as hash/crc64 takes
// it, and as the CRC keeps its polynomials).
const nvmePoly = 0x9a6c9329ac4bc9b5

// The CRC itself is github.com/minio/crc64nvme's: carry-less multiplication
// (PCLMULQDQ, or PMULL on arm64, the Lambda functions' architecture) where
// the CPU has it, Go's table-driven code elsewhere. Go's hash/crc64, which
// the AWS SDK uses, computes the same value at about a tenth of the speed
// (docs/benchmarks.md): every byte received passes through this once.

// NewCRC64NVME returns a hash computing CRC-64/NVME.
func NewCRC64NVME() hash.Hash64 { return crc64nvme.New() }

// CRC64NVME is the CRC-64/NVME of b.
func CRC64NVME(b []byte) uint64 { return crc64nvme.Checksum(b) }

// UpdateCRC64NVME continues crc (of some bytes before) with b.
func UpdateCRC64NVME(crc uint64, b []byte) uint64 { return crc64nvme.Update(crc, b) }

// Combine returns the CRC-64/NVME of A followed by B, given the CRC of A,
// the CRC of B and the length of B. It does arithmetic on the two values
// only (about a hundred multiplications of polynomials for any length), so
// chunks received in any order combine into the file's checksum without a
// second read.
//
// A CRC with all-ones initial value and final xor, such as this one, obeys
// crc(A‖B) = crc(A)·x^(8·len(B)) mod P  ⊕  crc(B): the initial and final
// inversions cancel out between the two pieces.
func Combine(crcA, crcB uint64, lenB int64) uint64 {
	if lenB <= 0 {
		return crcA
	}
	return mulMod(xPow8n(lenB), crcA) ^ crcB
}

// Polynomials modulo P are kept bit-reversed, as the CRC itself is: the
// highest bit holds the coefficient of x^0.
const one = uint64(1) << 63

// mulMod multiplies two polynomials modulo P.
func mulMod(a, b uint64) uint64 {
	var p uint64
	for m := one; m != 0; m >>= 1 {
		if a&m != 0 {
			p ^= b
		}
		// b·x: shift towards the high powers, reducing by P.
		if b&1 != 0 {
			b = b>>1 ^ nvmePoly
		} else {
			b >>= 1
		}
	}
	return p
}

// x2k[k] is x^(2^k) mod P.
var x2k = func() (t [64]uint64) {
	t[0] = one >> 1 // x^1
	for k := 1; k < len(t); k++ {
		t[k] = mulMod(t[k-1], t[k-1])
	}
	return t
}()

// xPow8n is x^(8n) mod P: the shift of a CRC past n bytes.
func xPow8n(n int64) uint64 {
	p := one // x^0
	for k := 3; n != 0; k, n = k+1, n>>1 {
		if n&1 != 0 {
			p = mulMod(x2k[k%64], p)
		}
	}
	return p
}

// Encode writes a CRC-64 as S3 does: 8 bytes big-endian, base64.
func Encode(crc uint64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], crc)
	return base64.StdEncoding.EncodeToString(b[:])
}

// Decode reads a CRC-64 written by Encode.
func Decode(s string) (uint64, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != 8 {
		return 0, errors.New("checksum: not a base64 CRC-64")
	}
	return binary.BigEndian.Uint64(b), nil
}
