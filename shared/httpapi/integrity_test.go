package httpapi_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/shared/checksum"
	"github.com/flowgate/flowgate/shared/httpapi"
	"github.com/flowgate/flowgate/shared/upload"
)

func withDigest(q url.Values, name, value string) url.Values {
	out := url.Values{}
	for k, v := range q {
		out[k] = v
	}
	out.Set(name, value)
	return out
}

// The checksum fields, in the form before the file part or in the query
// string, in base64 or hex: a chunk that matches is taken, one that does not
// gets 422 (both libraries retry it) and is not counted; a malformed digest
// is 400, and so is a checksum field after the file part (too late to check
// the chunk as it streams). The finished file's status has its CRC-64/NVME
// and type.
func TestChunkChecksumFields(t *testing.T) {
	e := newEnv(t)
	f := newFile(41, 3*1000+17, 1000, false)
	damaged := bytes.Clone(f.chunk(1))
	damaged[10] ^= 1
	s := sha256.Sum256(f.chunk(1))
	b64, hx := base64.StdEncoding.EncodeToString(s[:]), hex.EncodeToString(s[:])

	wantStatus(t, e.multipart(flowParts(withDigest(f.params(1), "checksumSha256", b64), damaged), nil), http.StatusUnprocessableEntity, "does not match its SHA-256")
	wantStatus(t, e.octet(withDigest(f.params(1), "checksumSha256", hx), damaged), http.StatusUnprocessableEntity, "send it again")
	wantStatus(t, e.get("/upload", f.params(1)), 204, "")
	// A test GET has no bytes to check: its checksum fields are not read.
	wantStatus(t, e.get("/upload", withDigest(f.params(1), "checksumSha256", "abc")), 204, "")
	wantStatus(t, e.octet(withDigest(f.params(1), "checksumSha256", "abc"), f.chunk(1)), 400, "checksumSha256 must be the 32-byte digest")
	late := append(flowParts(f.params(1), f.chunk(1)), part{name: "checksumSha256", value: b64})
	wantStatus(t, e.multipart(late, nil), 400, "must come before")

	wantStatus(t, e.multipart(flowParts(withDigest(f.params(1), "checksumSha256", b64), f.chunk(1)), nil), 200, "")
	crc := checksum.CRC64NVME(f.chunk(2))
	wantStatus(t, e.octet(withDigest(f.params(2), "checksumCrc64nvme", checksum.Encode(crc)), f.chunk(2)), 200, "")
	wantStatus(t, e.multipart(flowParts(f.params(3), f.chunk(3)), nil), 200, "") // no digest: taken as before
	if got := e.finished(f); !bytes.Equal(got, f.data) {
		t.Fatal("finished file differs")
	}
	st := e.status(f)
	if st.CRC64NVME != checksum.Encode(checksum.CRC64NVME(f.data)) || st.ContentType != upload.DefaultContentType {
		t.Fatalf("status %+v: want the file's CRC-64/NVME and %s", st, upload.DefaultContentType)
	}
}

// Resumable.js gets 422 for a damaged chunk too (it retries it), and the
// file's type from resumableType.
func TestChecksumResumable(t *testing.T) {
	e := newEnv(t)
	f := newFile(42, 500, 1000, false)
	q := url.Values{}
	for k, v := range f.params(1) {
		q[strings.Replace(k, "flow", "resumable", 1)] = v
	}
	q.Set("resumableType", "image/PNG")
	s := sha256.Sum256(f.chunk(1))
	q.Set("checksumSha256", base64.StdEncoding.EncodeToString(s[:]))
	damaged := bytes.Clone(f.chunk(1))
	damaged[0] ^= 1
	wantStatus(t, e.octet(q, damaged), http.StatusUnprocessableEntity, "SHA-256")
	wantStatus(t, e.octet(q, f.chunk(1)), 200, "")
	if st := e.status(f); st.ContentType != "image/png" {
		t.Fatalf("content type %q, want image/png", st.ContentType)
	}
}

// The allow-list refuses with 415: by name at the test GET, by type (the
// chunk's own, in the multipart part or the octet body) at the POST; a file
// refused stores nothing. Resumable.js gets 415 too (permanent for it).
func TestAllowList(t *testing.T) {
	allowed, err := upload.ParseAllowList("image/*, .png, .jpg")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(h *httpapi.Handler) { h.Allowed = allowed })
	f := newFile(43, 300, 1000, false)

	txt := f.params(1)
	txt.Set("flowFilename", "notes.txt")
	txt.Set("flowRelativePath", "notes.txt")
	wantStatus(t, e.get("/upload", txt), 415, `files named "notes.txt" are not accepted here (allowed: image/*, .png, .jpg)`)
	wantStatus(t, e.octet(txt, f.chunk(1), "Content-Type", "image/png"), 415, "not accepted")

	png := f.params(1)
	png.Set("flowFilename", "photo.png")
	png.Set("flowRelativePath", "photo.png")
	wantStatus(t, e.octet(png, f.chunk(1), "Content-Type", "text/html"), 415, "files of type text/html are not accepted")
	wantStatus(t, e.octet(png, f.chunk(1)), 415, "application/octet-stream")
	if names := e.stagingFiles(); len(names) != 0 {
		t.Fatalf("refused files left %v", names)
	}
	wantStatus(t, e.get("/upload", png), 204, "")
	wantStatus(t, e.octet(png, f.chunk(1), "Content-Type", "image/png"), 200, "")
}
