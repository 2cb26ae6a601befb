package protocol

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/flowgate/flowgate/shared/upload"
)

var fuzzLimits = Limits{MaxFileSize: 1 << 40, MaxChunkSize: 8 << 20, MaxChunks: 100_000}

func fields(number, chunkSize, current, total, id, name, rel, chunks string) Fields {
	m := map[string]string{
		FieldChunkNumber: number, FieldChunkSize: chunkSize, FieldCurrentChunkSize: current,
		FieldTotalSize: total, FieldIdentifier: id, FieldFilename: name, FieldRelativePath: rel,
		FieldTotalChunks: chunks,
	}
	return func(k string) (string, bool) {
		v, ok := m[k]
		if !ok || v == "\x00absent" {
			return "", false
		}
		return v, true
	}
}

// FuzzParseChunk: whatever the fields, ParseChunk either refuses with a 400
// or 413, or returns a chunk that lies inside its file, within the limits,
// under a key that is a plain hex name.
func FuzzParseChunk(f *testing.F) {
	f.Add("1", "1048576", "1048576", "2500000", "2500000-photojpg", "photo.jpg", "photo.jpg", "2")
	f.Add("2", "1048576", "1451424", "2500000", "id", "a.bin", "dir/a.bin", "2")
	f.Add("1", "1000", "0", "0", "0-empty", "empty", "\x00absent", "1")
	f.Add("3", "1000", "500", "2500", "x", "../x", "/etc/passwd", "3")
	f.Add("-1", "0", "+5", "1e9", "a/b", "a\x00b", "a//b", "0x10")
	f.Fuzz(func(t *testing.T, number, chunkSize, current, total, id, name, rel, chunks string) {
		c, err := ParseChunk(fields(number, chunkSize, current, total, id, name, rel, chunks), "ns", fuzzLimits)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		if c.Number < 1 || c.Number > c.TotalChunks || c.TotalChunks > fuzzLimits.MaxChunks {
			t.Fatalf("chunk %d of %d accepted", c.Number, c.TotalChunks)
		}
		if c.Offset < 0 || c.Size < 0 || c.Offset+c.Size > c.TotalSize || c.Size > fuzzLimits.MaxChunkSize {
			t.Fatalf("chunk [%d,+%d) of a %d-byte file accepted", c.Offset, c.Size, c.TotalSize)
		}
		if c.Number == c.TotalChunks && c.Offset+c.Size != c.TotalSize {
			t.Fatalf("last chunk does not reach the end of the file")
		}
		if c.TotalSize > fuzzLimits.MaxFileSize {
			t.Fatalf("file over the limit accepted")
		}
		checkInfo(t, c.Info)
	})
}

// FuzzParseUpload: the status request's fields, same guarantees.
func FuzzParseUpload(f *testing.F) {
	f.Add("1048576", "2500000", "2500000-photojpg", "photo.jpg", "2")
	f.Add("1", "0", "z", "\x00absent", "1")
	f.Add("0", "-1", "", "..", "99999999999999999999")
	f.Fuzz(func(t *testing.T, chunkSize, total, id, name, chunks string) {
		info, err := ParseUpload(fields("\x00absent", chunkSize, "\x00absent", total, id, name, "\x00absent", chunks), "ns", fuzzLimits)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		checkInfo(t, info)
	})
}

func checkRefusal(t *testing.T, err error) {
	var ie *upload.InputError
	if !errors.As(err, &ie) || (ie.Status != http.StatusBadRequest && ie.Status != http.StatusRequestEntityTooLarge) || ie.Msg == "" {
		t.Fatalf("refusal %v is not a 400/413 InputError", err)
	}
	if !utf8.ValidString(ie.Msg) {
		t.Fatalf("error message is not UTF-8: %q", ie.Msg)
	}
}

func checkInfo(t *testing.T, info upload.Info) {
	if len(info.Key) != 32 || strings.Trim(info.Key, "0123456789abcdef") != "" {
		t.Fatalf("key %q is not 32 hex digits", info.Key)
	}
	for _, s := range []string{info.Identifier, info.FileName, info.RelativePath} {
		if !utf8.ValidString(s) || strings.ContainsAny(s, "\x00\\") {
			t.Fatalf("name %q accepted", s)
		}
	}
	if strings.Contains(info.FileName, "/") || info.FileName == ".." {
		t.Fatalf("file name %q accepted", info.FileName)
	}
	if strings.HasPrefix(info.RelativePath, "/") {
		t.Fatalf("absolute path %q accepted", info.RelativePath)
	}
	for _, seg := range strings.Split(info.RelativePath, "/") {
		if seg == ".." {
			t.Fatalf("relative path %q climbs out", info.RelativePath)
		}
	}
	min := max(info.TotalSize/info.ChunkSize, 1)
	if int64(info.TotalChunks) != min && int64(info.TotalChunks) != max((info.TotalSize+info.ChunkSize-1)/info.ChunkSize, 1) {
		t.Fatalf("chunk count %d does not fit %d/%d", info.TotalChunks, info.TotalSize, info.ChunkSize)
	}
}
