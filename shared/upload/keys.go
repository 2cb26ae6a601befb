package upload

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
)

// UploadKey derives the storage name of an upload from everything that makes it
// that upload: who sends it (namespace), what the client calls it (identifier)
// and how it is cut (total size, chunk size, chunk count). Two clients whose
// files share an identifier but not a namespace or a geometry get different
// keys, so their chunks can never mix. The result is 32 lowercase hex digits,
// safe as a file name and an S3 key segment.
func UploadKey(namespace, identifier string, totalSize, chunkSize int64, totalChunks int) string {
	return digest("flowgate/upload/v1", namespace, identifier,
		strconv.FormatInt(totalSize, 10), strconv.FormatInt(chunkSize, 10), strconv.Itoa(totalChunks))
}

// IdentityKey names the pair (namespace, identifier) alone. Ledgers index it to
// find an upload in progress under the same identifier with another geometry,
// which the protocol answers with 409.
func IdentityKey(namespace, identifier string) string {
	return digest("flowgate/identity/v1", namespace, identifier)
}

// digest hashes length-prefixed fields, so that no two different field lists
// can produce the same input.
func digest(fields ...string) string {
	h := sha256.New()
	var n [8]byte
	for _, f := range fields {
		l := uint64(len(f))
		for i := range n {
			n[i] = byte(l >> (8 * i))
		}
		h.Write(n[:])
		h.Write([]byte(f))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// ValidName reports whether s has the shape of the names storage sees: an
// upload key or a generation, lowercase hex of at most 64 digits. Stores
// check every name they are given with it, so that nothing else can ever
// become part of a path or an object key, whatever a caller passes.
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
