package protocol

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"

	"github.com/flowgate/flowgate/shared/upload"
)

// The optional fields that carry a digest of the chunk's bytes, in the form
// or the query string like the libraries' own fields (a page adds them with
// its `query` option; Resumable.js puts its parameterNamespace in front).
// Each value is the digest's bytes in base64 (as S3's x-amz-checksum-*
// headers and RFC 9530 write them) or in hex. A request may carry several;
// each is checked. SHA-256 is what a browser computes natively (WebCrypto);
// CRC32C and CRC64NVME are S3's cheap checksums.
const (
	FieldChecksumSHA256    = "checksumSha256"
	FieldChecksumCRC32C    = "checksumCrc32c"
	FieldChecksumCRC64NVME = "checksumCrc64nvme"
)

// IsChecksumField reports whether name is one of the checksum fields, after
// any prefix: a multipart body must carry them before its file part, so the
// chunk can be checked as it streams.
func IsChecksumField(name string) bool {
	for _, f := range []string{FieldChecksumSHA256, FieldChecksumCRC32C, FieldChecksumCRC64NVME} {
		if len(name) >= len(f) && name[len(name)-len(f):] == f {
			return true
		}
	}
	return false
}

// ParseDigests reads the checksum fields of a chunk POST.
func (d Dialect) ParseDigests(get Fields) (upload.Digests, error) {
	var out upload.Digests
	if v, ok := get(d.Prefix + FieldChecksumSHA256); ok {
		b, err := digestBytes(d.Prefix+FieldChecksumSHA256, v, 32)
		if err != nil {
			return out, err
		}
		out.SHA256 = b
	}
	if v, ok := get(d.Prefix + FieldChecksumCRC32C); ok {
		b, err := digestBytes(d.Prefix+FieldChecksumCRC32C, v, 4)
		if err != nil {
			return out, err
		}
		c := binary.BigEndian.Uint32(b)
		out.CRC32C = &c
	}
	if v, ok := get(d.Prefix + FieldChecksumCRC64NVME); ok {
		b, err := digestBytes(d.Prefix+FieldChecksumCRC64NVME, v, 8)
		if err != nil {
			return out, err
		}
		c := binary.BigEndian.Uint64(b)
		out.CRC64NVME = &c
	}
	return out, nil
}

// digestBytes decodes a digest of size bytes given in hex or base64. The two
// never read alike: hex has twice size digits and no padding, base64 has
// padding whenever size is not a multiple of 3, and otherwise 4/3 of size.
func digestBytes(field, v string, size int) ([]byte, error) {
	if len(v) == 2*size {
		if b, err := hex.DecodeString(v); err == nil {
			return b, nil
		}
	}
	if b, err := base64.StdEncoding.DecodeString(v); err == nil && len(b) == size {
		return b, nil
	}
	return nil, bad("%s must be the %d-byte digest of the chunk in base64 or hex, not %q", field, size, clip(v))
}
