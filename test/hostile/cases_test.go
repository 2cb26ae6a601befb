package hostile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// The case table both paths run: every request in it is hostile or broken,
// and must get a 4xx with a JSON error and change nothing stored.
//
// Each case has a file of its own (identifier hostile-NN, 2500 bytes in
// chunks of 1000: chunk 1 has 1000 bytes, chunk 2 the remaining 1500, as
// flow.js cuts it with forceChunkSize false), and the hostile request is
// derived from that file's valid fields. After the case the harness sends
// the file's first chunk properly, and at the end of the battery its
// second: every case file must then be complete with exactly its bytes, so
// a hostile request can neither take the server down nor poison the upload
// it aimed at.

const (
	caseSize  = 2500
	caseChunk = 1000
)

// hfile is a case's own file.
type hfile struct {
	id, name string
	data     []byte
}

func caseFile(i int) hfile {
	r := rand.New(rand.NewPCG(uint64(i), 0x4057))
	data := make([]byte, caseSize)
	for j := range data {
		data[j] = byte(r.Uint32())
	}
	return hfile{id: fmt.Sprintf("hostile-%02d", i), name: fmt.Sprintf("case-%02d.bin", i), data: data}
}

func (f hfile) bounds(n int) (off, size int64) {
	if n == 1 {
		return 0, caseChunk
	}
	return caseChunk, caseSize - caseChunk
}

func (f hfile) chunk(n int) []byte {
	off, size := f.bounds(n)
	return f.data[off : off+size]
}

// params are the fields flow.js sends for chunk n, in its order.
func (f hfile) params(n int) fields {
	_, size := f.bounds(n)
	return fields{
		{"flowChunkNumber", strconv.Itoa(n)},
		{"flowChunkSize", strconv.Itoa(caseChunk)},
		{"flowCurrentChunkSize", strconv.FormatInt(size, 10)},
		{"flowTotalSize", strconv.Itoa(caseSize)},
		{"flowIdentifier", f.id},
		{"flowFilename", f.name},
		{"flowRelativePath", "dir/" + f.name},
		{"flowTotalChunks", "2"},
	}
}

// statusParams are the fields of a status request for the file.
func (f hfile) statusParams() fields {
	return f.params(1).del("flowChunkNumber").del("flowCurrentChunkSize")
}

type kv struct{ k, v string }

// fields keep their order, as a browser's FormData does.
type fields []kv

func (fs fields) set(k, v string) fields {
	out := append(fields(nil), fs...)
	for i := range out {
		if out[i].k == k {
			out[i].v = v
			return out
		}
	}
	return append(out, kv{k, v})
}

func (fs fields) del(k string) fields {
	var out fields
	for _, f := range fs {
		if f.k != k {
			out = append(out, f)
		}
	}
	return out
}

func (fs fields) query() string {
	var b strings.Builder
	for i, f := range fs {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(f.k) + "=" + url.QueryEscape(f.v))
	}
	return b.String()
}

// request is one HTTP request, described so that both paths send it alike.
type request struct {
	method      string // POST if empty
	path        string // /upload if empty
	query       string
	contentType string
	body        []byte
	chunked     bool // no Content-Length: the body is sent chunked
}

func (r request) build(base string) *http.Request {
	method, path := r.method, r.path
	if method == "" {
		method = http.MethodPost
	}
	if path == "" {
		path = "/upload"
	}
	u := base + path
	if r.query != "" {
		u += "?" + r.query
	}
	var body io.Reader
	if r.body != nil || r.chunked {
		body = bytes.NewReader(r.body)
	}
	if r.chunked {
		body = io.MultiReader(body) // hides the length
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		panic(err)
	}
	if r.chunked {
		req.ContentLength = -1
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	return req
}

func getReq(fs fields) request { return request{method: http.MethodGet, query: fs.query()} }

func octetReq(fs fields, data []byte) request {
	return request{query: fs.query(), contentType: "application/octet-stream", body: append([]byte{}, data...)}
}

// part is one multipart part; file parts carry data and a file name.
type part struct {
	name, value string
	file        bool
	filename    string
}

func flowParts(fs fields, data []byte) []part {
	var ps []part
	for _, f := range fs {
		ps = append(ps, part{name: f.k, value: f.v})
	}
	return append(ps, part{name: "file", value: string(data), file: true, filename: "blob"})
}

func multipartBody(ps []part) (contentType string, body []byte) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, p := range ps {
		if p.file {
			h := make(textproto.MIMEHeader)
			h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, p.name, p.filename))
			h.Set("Content-Type", "application/octet-stream")
			w, _ := mw.CreatePart(h)
			io.WriteString(w, p.value)
		} else {
			mw.WriteField(p.name, p.value)
		}
	}
	mw.Close()
	return mw.FormDataContentType(), buf.Bytes()
}

func multipartReq(ps []part) request {
	ct, body := multipartBody(ps)
	return request{contentType: ct, body: body}
}

// flowMultipart is chunk n's fields and data as flow.js sends them.
func flowMultipart(fs fields, data []byte) request { return multipartReq(flowParts(fs, data)) }

// env is what cases may need of the path under test.
type env struct {
	// abs is an absolute path inside the watched directory: a server that
	// took a client's absolute path for a file name would write there.
	abs string
}

type hcase struct {
	name string
	// setup sends valid chunks first (each must be answered 200), before
	// the snapshot is taken.
	setup func(f hfile) []request
	req   func(f hfile, e env) request
	want  int
	// wantAWS, when set, is the answer behind API Gateway, which refuses
	// some requests itself before the function sees them.
	wantAWS int
	// accepted cases are valid uploads with hostile decorations the server
	// must ignore (a part's file name, extra fields): they get a 200 and
	// may only change what is staged.
	accepted bool
	// jsonAccepted cases carry invalid UTF-8 in a query parameter. Where
	// the request reaches the function as a JSON event (Lambda's way),
	// those bytes arrive as U+FFFD, each one: a valid character, inert in
	// a name, which browsers themselves send for names they cannot
	// represent (a File's name is a USVString). There the request is a
	// valid upload, taken like an accepted case.
	jsonAccepted bool
	// twin, for a jsonAccepted case whose identifier is the hostile one, is
	// the other upload the request starts there; the battery finishes and
	// checks it too.
	twin func(f hfile) hfile
}

// nameAttacks are values for every name field; each is refused.
func nameAttacks(e env) []kv {
	return []kv{
		{"traversal", "../../../pwned"},
		{"absolute path", e.abs},
		{"windows absolute path", `C:\pwned`},
		{"backslash traversal", `..\..\pwned`},
		{"NUL", "a\x00b.txt"},
		{"newline", "a\r\nb.txt"},
		{"escape sequence", "\x1b[2Jx.txt"},
		{"DEL", "x\x7f.txt"},
		{"C1 control", "x\u0085.txt"},
		{"bidi override", "x\u202etxt.exe"},
		{"non-UTF-8", "x\xff\xfe.txt"},
		{"overlong UTF-8 slash", "..\xc0\xafpwned"},
		{"over-long", strings.Repeat("n", 1100)},
	}
}

func cases() []hcase {
	var cs []hcase
	add := func(c hcase) { cs = append(cs, c) }

	// Every name field with every attack, alternating the body methods
	// (multipart sends the bytes raw, octet percent-encoded in the query).
	nAttacks := len(nameAttacks(env{}))
	for fi, field := range []string{"flowFilename", "flowRelativePath", "flowIdentifier"} {
		for ai := 0; ai < nAttacks; ai++ {
			label := nameAttacks(env{abs: "/abs"})[ai].k
			octet := (fi+ai)%2 == 1
			how := "multipart"
			if octet {
				how = "octet"
			}
			c := hcase{
				name: fmt.Sprintf("%s %s (%s)", field, label, how),
				req: func(f hfile, e env) request {
					fs := f.params(1).set(field, nameAttacks(e)[ai].v)
					if octet {
						return octetReq(fs, f.chunk(1))
					}
					return flowMultipart(fs, f.chunk(1))
				},
				want: 400,
			}
			// A multipart body travels base64-encoded, byte for byte; a
			// query string does not.
			if v := nameAttacks(env{})[ai].v; octet && !utf8.ValidString(v) {
				c.jsonAccepted = true
				if field == "flowIdentifier" {
					c.twin = func(f hfile) hfile { f.id = v; return f }
				}
			}
			add(c)
		}
	}
	for _, v := range []struct{ field, value string }{
		{"flowFilename", "."},
		{"flowFilename", ".."},
		{"flowRelativePath", "a/./b"},
		{"flowRelativePath", "a//b"},
		{"flowRelativePath", "C:pwned"},
		{"flowRelativePath", "dir/"},
	} {
		add(hcase{
			name: fmt.Sprintf("%s=%q", v.field, v.value),
			req:  func(f hfile, e env) request { return flowMultipart(f.params(1).set(v.field, v.value), f.chunk(1)) },
			want: 400,
		})
	}
	add(hcase{
		name: "status with a traversal identifier",
		req: func(f hfile, e env) request {
			return request{method: http.MethodGet, path: "/upload/status", query: f.statusParams().set("flowIdentifier", "../../pwned").query()}
		},
		want: 400,
	})
	add(hcase{
		name: "test GET with an absolute file name",
		req:  func(f hfile, e env) request { return getReq(f.params(1).set("flowFilename", e.abs)) },
		want: 400,
	})

	// Numbers.
	for _, v := range []struct {
		field, value string
		want         int
	}{
		{"flowChunkNumber", "0", 400},
		{"flowChunkNumber", "-1", 400},
		{"flowChunkNumber", "one", 400},
		{"flowChunkNumber", "1e0", 400},
		{"flowChunkNumber", "0x1", 400},
		{"flowChunkNumber", "3", 400}, // beyond the total of 2
		{"flowChunkNumber", "99999999999999999999", 400},
		{"flowTotalChunks", "5", 400},
		{"flowTotalChunks", "0", 400},
		{"flowTotalChunks", "-2", 400},
		{"flowTotalSize", "500", 400}, // 500 bytes cannot be 2 chunks of 1000
		{"flowTotalSize", "-2500", 400},
		{"flowTotalSize", "9223372036854775807", 400},
		{"flowCurrentChunkSize", "999", 400},
		{"flowCurrentChunkSize", "-1000", 400},
		{"flowChunkSize", "0", 400},
		{"flowChunkSize", "-1000", 400},
		{"flowTotalSize", "99999999999999999", 413}, // huge declared size
	} {
		add(hcase{
			name: fmt.Sprintf("%s=%s", v.field, v.value),
			req:  func(f hfile, e env) request { return octetReq(f.params(1).set(v.field, v.value), f.chunk(1)) },
			want: v.want,
		})
	}
	add(hcase{
		name: "huge chunk declared",
		req: func(f hfile, e env) request {
			big := strconv.Itoa(5 << 20) // a 5 MiB file in one chunk: over the 4 MiB chunk limit
			fs := f.params(1).set("flowTotalSize", big).set("flowChunkSize", big).set("flowCurrentChunkSize", big).set("flowTotalChunks", "1")
			return octetReq(fs, f.chunk(1))
		},
		want: 413,
	})
	add(hcase{
		name: "too many chunks declared",
		req: func(f hfile, e env) request {
			return octetReq(f.params(1).set("flowTotalSize", "5000").set("flowChunkSize", "1").
				set("flowTotalChunks", "5000").set("flowCurrentChunkSize", "1"), f.chunk(1)[:1])
		},
		want: 413,
	})

	// Every required field missing in turn.
	for _, k := range []string{"flowChunkNumber", "flowChunkSize", "flowCurrentChunkSize", "flowTotalSize",
		"flowIdentifier", "flowFilename", "flowTotalChunks"} {
		add(hcase{
			name: "missing " + k,
			req:  func(f hfile, e env) request { return flowMultipart(f.params(1).del(k), f.chunk(1)) },
			want: 400,
		})
	}

	// Bodies that disagree with what they declare.
	add(hcase{name: "octet body shorter", want: 400,
		req: func(f hfile, e env) request { return octetReq(f.params(1), f.chunk(1)[:999]) }})
	add(hcase{name: "octet body longer", want: 400,
		req: func(f hfile, e env) request { return octetReq(f.params(1), append(f.chunk(1), 'x')) }})
	add(hcase{name: "octet body empty", want: 400,
		req: func(f hfile, e env) request { return octetReq(f.params(1), []byte{}) }})
	add(hcase{name: "octet body shorter, chunked", want: 400,
		req: func(f hfile, e env) request {
			r := octetReq(f.params(1), f.chunk(1)[:500])
			r.chunked = true
			return r
		}})
	add(hcase{name: "octet body longer, chunked", want: 400,
		req: func(f hfile, e env) request {
			r := octetReq(f.params(1), append(f.chunk(1), "extra"...))
			r.chunked = true
			return r
		}})
	add(hcase{name: "octet body far over the request limit", want: 400, wantAWS: 413,
		req: func(f hfile, e env) request { return octetReq(f.params(1), make([]byte, 5<<20)) }})
	add(hcase{name: "multipart file part shorter", want: 400,
		req: func(f hfile, e env) request { return flowMultipart(f.params(1), f.chunk(1)[:10]) }})
	add(hcase{name: "multipart file part longer", want: 400,
		req: func(f hfile, e env) request { return flowMultipart(f.params(1), append(f.chunk(1), 'x')) }})
	add(hcase{name: "multipart empty file part", want: 400,
		req: func(f hfile, e env) request { return flowMultipart(f.params(1), nil) }})

	// Bodies that are not what they claim to be.
	add(hcase{name: "non-multipart body (text/plain)", want: 400,
		req: func(f hfile, e env) request {
			_, body := multipartBody(flowParts(f.params(1), f.chunk(1)))
			return request{contentType: "text/plain", body: body}
		}})
	add(hcase{name: "urlencoded form body", want: 400,
		req: func(f hfile, e env) request {
			return request{contentType: "application/x-www-form-urlencoded", body: []byte(f.params(1).query() + "&file=" + url.QueryEscape(string(f.chunk(1))))}
		}})
	add(hcase{name: "multipart without boundary", want: 400,
		req: func(f hfile, e env) request {
			return request{query: f.params(1).query(), contentType: "multipart/form-data", body: f.chunk(1)}
		}})
	add(hcase{name: "multipart garbage", want: 400,
		req: func(f hfile, e env) request {
			return request{query: f.params(1).query(), contentType: "multipart/form-data; boundary=zz", body: []byte("this is not multipart at all")}
		}})
	add(hcase{name: "multipart cut off inside the file", want: 408, // cut short: both libraries retry 408
		req: func(f hfile, e env) request {
			r := flowMultipart(f.params(1), f.chunk(1))
			r.body = r.body[:len(r.body)-600]
			return r
		}})
	add(hcase{name: "multipart without its closing boundary", want: 408, // cut short: both libraries retry 408
		req: func(f hfile, e env) request {
			r := flowMultipart(f.params(1), f.chunk(1))
			r.body = r.body[:len(r.body)-8]
			return r
		}})
	add(hcase{name: "multipart two file parts", want: 400,
		req: func(f hfile, e env) request {
			return multipartReq(append(flowParts(f.params(1), f.chunk(1)), part{name: "file", value: string(f.chunk(1)), file: true, filename: "again"}))
		}})
	add(hcase{name: "multipart no file part", want: 400,
		req: func(f hfile, e env) request {
			ps := flowParts(f.params(1), f.chunk(1))
			return multipartReq(ps[:len(ps)-1])
		}})
	add(hcase{name: "multipart file before the fields", want: 400,
		req: func(f hfile, e env) request {
			ps := flowParts(f.params(1), f.chunk(1))
			return multipartReq(append([]part{ps[len(ps)-1]}, ps[:len(ps)-1]...))
		}})
	add(hcase{name: "multipart field given twice", want: 400,
		req: func(f hfile, e env) request {
			return multipartReq(append([]part{{name: "flowChunkNumber", value: "2"}}, flowParts(f.params(1), f.chunk(1))...))
		}})
	add(hcase{name: "multipart field over 4 KiB", want: 400,
		req: func(f hfile, e env) request {
			return multipartReq(append([]part{{name: "note", value: strings.Repeat("x", 5000)}}, flowParts(f.params(1), f.chunk(1))...))
		}})
	add(hcase{name: "multipart 100 parts", want: 400,
		req: func(f hfile, e env) request {
			var ps []part
			for i := 0; i < 100; i++ {
				ps = append(ps, part{name: "x" + strconv.Itoa(i), value: "1"})
			}
			return multipartReq(append(ps, flowParts(f.params(1), f.chunk(1))...))
		}})
	add(hcase{name: "multipart with a 5 MiB part header", want: 413,
		req: func(f hfile, e env) request {
			ct, body := multipartBody(flowParts(f.params(1), f.chunk(1)))
			_, boundary, _ := strings.Cut(ct, "boundary=")
			huge := "--" + boundary + "\r\nX-Junk: " + strings.Repeat("j", 5<<20) + "\r\nContent-Disposition: form-data; name=\"pad\"\r\n\r\nx\r\n"
			return request{contentType: ct, body: append([]byte(huge), body...)}
		}})

	// Geometry that changes between chunks of one upload.
	sendFirst := func(f hfile) []request { return []request{octetReq(f.params(1), f.chunk(1))} }
	add(hcase{name: "geometry change: other chunk size", setup: sendFirst, want: 409,
		req: func(f hfile, e env) request {
			fs := f.params(2).set("flowChunkSize", "500").set("flowCurrentChunkSize", "500").set("flowTotalChunks", "5")
			return octetReq(fs, f.data[500:1000])
		}})
	add(hcase{name: "geometry change: other total size", setup: sendFirst, want: 409,
		req: func(f hfile, e env) request {
			fs := f.params(2).set("flowTotalSize", "2600").set("flowCurrentChunkSize", "1600")
			return octetReq(fs, append(f.chunk(2), make([]byte, 100)...))
		}})
	add(hcase{name: "geometry change: forceChunkSize count", setup: sendFirst, want: 409,
		req: func(f hfile, e env) request {
			fs := f.params(2).set("flowTotalChunks", "3").set("flowCurrentChunkSize", "1000")
			return flowMultipart(fs, f.data[1000:2000])
		}})

	// Methods the API does not have.
	for _, m := range []string{http.MethodDelete, http.MethodPut, http.MethodPatch} {
		add(hcase{name: m + " /upload", want: 405,
			req: func(f hfile, e env) request {
				return request{method: m, query: f.params(1).query(), contentType: "application/octet-stream", body: f.chunk(1)}
			}})
	}

	// Valid chunks with hostile decorations: taken (200), decorations ignored.
	add(hcase{name: "accepted: traversal in the part's file name", want: 200, accepted: true,
		req: func(f hfile, e env) request {
			ps := flowParts(f.params(1), f.chunk(1))
			ps[len(ps)-1].filename = "../../../pwned"
			return multipartReq(ps)
		}})
	add(hcase{name: "accepted: absolute path in the part's file name", want: 200, accepted: true,
		req: func(f hfile, e env) request {
			ps := flowParts(f.params(1), f.chunk(1))
			ps[len(ps)-1].filename = e.abs
			return multipartReq(ps)
		}})
	add(hcase{name: "accepted: extra fields named like paths", want: 200, accepted: true,
		req: func(f hfile, e env) request {
			return multipartReq(append([]part{{name: "../../pwned", value: e.abs}, {name: e.abs, value: "../x"}}, flowParts(f.params(1), f.chunk(1))...))
		}})
	add(hcase{name: "accepted: dotted file name", want: 200, accepted: true,
		req: func(f hfile, e env) request {
			return flowMultipart(f.params(1).set("flowFilename", "..pwned").set("flowRelativePath", "..a/..b/..pwned"), f.chunk(1))
		}})
	add(hcase{name: "accepted: reserved device name", want: 200, accepted: true,
		req: func(f hfile, e env) request {
			return octetReq(f.params(1).set("flowFilename", "CON").set("flowRelativePath", "aux/NUL"), f.chunk(1))
		}})
	return cs
}

// checkAnswer: the status is the one wanted and an error is a JSON object
// with a message ("error" from the handler, "message" from API Gateway).
func checkAnswer(t *testing.T, status int, body []byte, want int) {
	t.Helper()
	if status != want {
		t.Fatalf("status %d, want %d (body %.200q)", status, want, body)
	}
	if status < 400 {
		return
	}
	var e struct{ Error, Message string }
	if err := json.Unmarshal(body, &e); err != nil || e.Error == "" && e.Message == "" {
		t.Fatalf("%d with body %.200q, want a JSON error", status, body)
	}
}
