package protocol

import (
	"errors"
	"net/url"
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
	if !errors.As(err, &ie) || (ie.Kind != upload.BadInput && ie.Kind != upload.TooLarge) || ie.Msg == "" {
		t.Fatalf("refusal %v is not a BadInput/TooLarge InputError", err)
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

// FuzzQuery: whatever the query string, Detect and ParseChunk either refuse
// with a 400 or 413, or return a chunk with the guarantees above; and a
// chunk taken in Resumable.js's names is exactly the chunk the same values
// in flow.js's names give, under the same key.
func FuzzQuery(f *testing.F) {
	f.Add("flowChunkNumber=1&flowChunkSize=1000&flowCurrentChunkSize=1500&flowTotalSize=2500&flowIdentifier=2500-ab&flowFilename=a.b&flowRelativePath=d%2Fa.b&flowTotalChunks=2")
	f.Add("resumableChunkNumber=2&resumableChunkSize=1000&resumableCurrentChunkSize=1500&resumableTotalSize=3500&resumableType=&resumableIdentifier=3500-ab&resumableFilename=a.b&resumableRelativePath=a.b&resumableTotalChunks=3")
	f.Add("ns_resumableChunkNumber=1&ns_resumableChunkSize=10&ns_resumableCurrentChunkSize=0&ns_resumableTotalSize=0&ns_resumableIdentifier=0-e&ns_resumableFilename=e&ns_resumableTotalChunks=1")
	f.Add("flowIdentifier=x&resumableIdentifier=x&flowChunkNumber=1&resumableChunkNumber=2")
	f.Add("a_resumableIdentifier=x&b_resumableIdentifier=x")
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		get := func(k string) (string, bool) {
			v, ok := q[k]
			if !ok || len(v) != 1 {
				return "", false
			}
			return v[0], true
		}
		var names []string
		for k := range q {
			names = append(names, k)
		}
		d, err := Detect(names, get)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		c, err := d.ParseChunk(get, "ns", fuzzLimits)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		checkInfo(t, c.Info)
		if d.Library != ResumableJS {
			return
		}
		flow := map[string]string{}
		for fl := field(0); fl < nFields; fl++ {
			if v, ok := get(d.name(fl)); ok && Flow.name(fl) != "" {
				flow[Flow.name(fl)] = v
			}
		}
		fc, err := Flow.ParseChunk(func(k string) (string, bool) { v, ok := flow[k]; return v, ok }, "ns", fuzzLimits)
		// The type and the checksums are fields flow.js does not name.
		c.ContentType = ""
		if err != nil || fc.Info != c.Info || fc.Number != c.Number || fc.Offset != c.Offset || fc.Size != c.Size {
			t.Fatalf("Resumable.js chunk %+v, but the same values in flow.js's names give %+v, %v", c, fc, err)
		}
	})
}
