package httpapi_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/shared/boltledger"
	"github.com/flowgate/flowgate/shared/dirstore"
	"github.com/flowgate/flowgate/shared/httpapi"
	"github.com/flowgate/flowgate/shared/protocol"
	"github.com/flowgate/flowgate/shared/upload"
)

// env is a handler on real embedded storage, with assembly run inline so
// tests can look at finished files as soon as the last chunk is answered.
type env struct {
	t      *testing.T
	dir    string
	srv    *httptest.Server
	ledger *boltledger.Ledger
	store  *dirstore.Store
}

var testLimits = protocol.Limits{MaxFileSize: 64 << 20, MaxChunkSize: 8 << 20, MaxChunks: 1000}

func newEnv(t *testing.T, opts ...func(*httpapi.Handler)) *env {
	t.Helper()
	dir := t.TempDir()
	store, err := dirstore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ledger, err := boltledger.Open(filepath.Join(dir, "ledger.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ledger.Close() })
	pipe := &upload.Pipeline{Ledger: ledger, Assembler: store, Owner: "test", Lease: time.Minute, Log: slog.New(slog.DiscardHandler)}
	svc := &upload.Service{Store: store, Ledger: ledger}
	svc.OnReady = func(key string) {
		if err := pipe.Run(context.Background(), key); err != nil {
			t.Errorf("assemble %s: %v", key, err)
		}
	}
	h := &httpapi.Handler{Service: svc, Limits: testLimits, Log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &env{t: t, dir: dir, srv: srv, ledger: ledger, store: store}
}

// file is a test file cut the way flow.js cuts it.
type file struct {
	data      []byte
	id, name  string
	chunkSize int64
	total     int
}

func newFile(seed int64, size int, chunkSize int64, force bool) file {
	data := make([]byte, size)
	rand.New(rand.NewSource(seed)).Read(data)
	total := int64(size) / chunkSize
	if force {
		total = (int64(size) + chunkSize - 1) / chunkSize
	}
	return file{data: data, id: fmt.Sprintf("%d-file%d", size, seed), name: fmt.Sprintf("file%d.bin", seed),
		chunkSize: chunkSize, total: int(max(total, 1))}
}

func (f file) info() upload.Info {
	return upload.Info{TotalSize: int64(len(f.data)), ChunkSize: f.chunkSize, TotalChunks: f.total}
}

func (f file) key(ns string) string {
	return upload.UploadKey(ns, f.id, int64(len(f.data)), f.chunkSize, f.total)
}

func (f file) chunk(n int) []byte {
	off, size := f.info().ChunkBounds(n)
	return f.data[off : off+size]
}

// params are the fields flow.js sends for chunk n.
func (f file) params(n int) url.Values {
	_, size := f.info().ChunkBounds(n)
	return url.Values{
		"flowChunkNumber":      {strconv.Itoa(n)},
		"flowChunkSize":        {strconv.FormatInt(f.chunkSize, 10)},
		"flowCurrentChunkSize": {strconv.FormatInt(size, 10)},
		"flowTotalSize":        {strconv.Itoa(len(f.data))},
		"flowIdentifier":       {f.id},
		"flowFilename":         {f.name},
		"flowRelativePath":     {"dir/" + f.name},
		"flowTotalChunks":      {strconv.Itoa(f.total)},
	}
}

type resp struct {
	status int
	body   string
	header http.Header
}

func (e *env) do(req *http.Request) resp {
	e.t.Helper()
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, body: string(b), header: res.Header}
}

func (e *env) get(path string, q url.Values, hdr ...string) resp {
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+path+"?"+q.Encode(), nil)
	setHeaders(req, hdr)
	return e.do(req)
}

func (e *env) octet(q url.Values, body []byte, hdr ...string) resp {
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/upload?"+q.Encode(), bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/octet-stream")
	setHeaders(req, hdr)
	return e.do(req)
}

// part is one multipart part: a field, or the file when file is true.
type part struct {
	name, value string
	file        bool
}

func multipartBody(parts []part) (string, []byte) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, p := range parts {
		if p.file {
			w, _ := mw.CreateFormFile(p.name, "blob")
			w.Write([]byte(p.value))
		} else {
			mw.WriteField(p.name, p.value)
		}
	}
	mw.Close()
	return mw.FormDataContentType(), buf.Bytes()
}

// flowParts lays the fields out as flow.js does: fields, then the file.
func flowParts(q url.Values, data []byte) []part {
	var ps []part
	for k, vs := range q {
		for _, v := range vs {
			ps = append(ps, part{name: k, value: v})
		}
	}
	return append(ps, part{name: "file", value: string(data), file: true})
}

func (e *env) multipart(parts []part, query url.Values, hdr ...string) resp {
	ct, body := multipartBody(parts)
	return e.raw(ct, body, query, hdr...)
}

func (e *env) raw(contentType string, body []byte, query url.Values, hdr ...string) resp {
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/upload?"+query.Encode(), bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	setHeaders(req, hdr)
	return e.do(req)
}

func setHeaders(req *http.Request, hdr []string) {
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
}

// status asks for the upload's status.
func (e *env) status(f file, hdr ...string) upload.Status {
	e.t.Helper()
	q := f.params(1)
	q.Del("flowChunkNumber")
	q.Del("flowCurrentChunkSize")
	r := e.get("/upload/status", q, hdr...)
	if r.status != 200 {
		e.t.Fatalf("status: %d %s", r.status, r.body)
	}
	var st upload.Status
	if err := json.Unmarshal([]byte(r.body), &st); err != nil {
		e.t.Fatal(err)
	}
	return st
}

// finished returns the finished file's bytes.
func (e *env) finished(f file, hdr ...string) []byte {
	e.t.Helper()
	st := e.status(f, hdr...)
	if st.State != upload.StateComplete {
		e.t.Fatalf("state %s, want complete (%+v)", st.State, st)
	}
	// Size is there when complete, 0 bytes included.
	if st.Size == nil || *st.Size != int64(len(f.data)) {
		e.t.Fatalf("status size %v, want %d", st.Size, len(f.data))
	}
	b, err := os.ReadFile(e.store.Path(st.Location))
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// stagingEmpty reports whether no chunk bytes are staged.
func (e *env) stagingFiles() []string {
	ents, _ := os.ReadDir(filepath.Join(e.dir, "staging"))
	var names []string
	for _, d := range ents {
		names = append(names, d.Name())
	}
	return names
}

func wantStatus(t *testing.T, r resp, want int, errPart string) {
	t.Helper()
	if r.status != want {
		t.Fatalf("status %d, want %d (body %q)", r.status, want, r.body)
	}
	if want >= 400 {
		var e struct{ Error string }
		if err := json.Unmarshal([]byte(r.body), &e); err != nil || e.Error == "" {
			t.Fatalf("error body %q is not {\"error\": ...}", r.body)
		}
		if !strings.Contains(e.Error, errPart) {
			t.Fatalf("error %q does not mention %q", e.Error, errPart)
		}
	}
}

func sum(b []byte) [32]byte { return sha256.Sum256(b) }

// TestUploadModes sends whole files in both methods and both chunking modes,
// over the sizes where chunk arithmetic goes wrong, in a shuffled order.
func TestUploadModes(t *testing.T) {
	e := newEnv(t)
	const cs = 64 << 10
	sizes := []int{0, 1, cs - 1, cs, cs + 1, 2*cs - 1, 2 * cs, 3*cs + 7, 5 * cs}
	seed := int64(1)
	for _, force := range []bool{false, true} {
		for _, method := range []string{"multipart", "octet"} {
			for _, size := range sizes {
				seed++
				f := newFile(seed, size, cs, force)
				t.Run(fmt.Sprintf("force=%v/%s/%d", force, method, size), func(t *testing.T) {
					order := rand.New(rand.NewSource(seed)).Perm(f.total)
					for _, i := range order {
						n := i + 1
						wantStatus(t, e.get("/upload", f.params(n)), 204, "")
						var r resp
						if method == "octet" {
							r = e.octet(f.params(n), f.chunk(n))
						} else {
							r = e.multipart(flowParts(f.params(n), f.chunk(n)), nil)
						}
						wantStatus(t, r, 200, "")
						wantStatus(t, e.get("/upload", f.params(n)), 200, "")
					}
					if got := e.finished(f); sum(got) != sum(f.data) {
						t.Fatalf("finished file differs from the source (%d bytes, want %d)", len(got), len(f.data))
					}
				})
			}
		}
	}
	if s := e.stagingFiles(); len(s) != 0 {
		t.Fatalf("chunks left behind: %v", s)
	}
}

// TestLastChunkCarriesRemainder: with forceChunkSize false the last chunk is
// up to 2*chunkSize-1 bytes, and a client claiming the ceil count is also fine.
func TestLastChunkCarriesRemainder(t *testing.T) {
	e := newEnv(t)
	f := newFile(7, 2*1000-1, 1000, false) // one chunk of 1999 bytes
	if f.total != 1 {
		t.Fatalf("total %d", f.total)
	}
	if got := len(f.chunk(1)); got != 1999 {
		t.Fatalf("chunk size %d", got)
	}
	wantStatus(t, e.octet(f.params(1), f.chunk(1)), 200, "")
	if got := e.finished(f); sum(got) != sum(f.data) {
		t.Fatal("content differs")
	}
}

// TestBadInput: every malformed request gets a 4xx with a JSON error and
// changes nothing: no record, no staged bytes.
func TestBadInput(t *testing.T) {
	const cs = 1000
	f := newFile(3, 2500, cs, false) // 2 chunks: 1000 and 1500 bytes
	with := func(n int, k, v string) url.Values {
		q := f.params(n)
		q.Set(k, v)
		return q
	}
	without := func(n int, k string) url.Values {
		q := f.params(n)
		q.Del(k)
		return q
	}
	type tc struct {
		name   string
		send   func(e *env) resp
		status int
		errMsg string
	}
	var cases []tc
	// Every required field missing in turn, for a test GET and both POSTs.
	for _, k := range []string{"flowChunkNumber", "flowChunkSize", "flowCurrentChunkSize", "flowTotalSize",
		"flowIdentifier", "flowFilename", "flowTotalChunks"} {
		k := k
		cases = append(cases,
			tc{"get without " + k, func(e *env) resp { return e.get("/upload", without(1, k)) }, 400, k},
			tc{"octet without " + k, func(e *env) resp { return e.octet(without(1, k), f.chunk(1)) }, 400, k},
			tc{"multipart without " + k, func(e *env) resp { return e.multipart(flowParts(without(1, k), f.chunk(1)), nil) }, 400, k},
		)
	}
	badField := []struct{ field, value, msg string }{
		{"flowChunkNumber", "0", "between 1 and 2"},
		{"flowChunkNumber", "3", "between 1 and 2"},
		{"flowChunkNumber", "-1", "whole number"},
		{"flowChunkNumber", "1.0", "whole number"},
		{"flowChunkNumber", "+1", "whole number"},
		{"flowChunkNumber", " 1", "whole number"},
		{"flowChunkNumber", "0x1", "whole number"},
		{"flowChunkNumber", "99999999999999999999", "too large"},
		{"flowChunkSize", "0", "at least 1"},
		{"flowTotalSize", "-5", "whole number"},
		{"flowTotalChunks", "5", "flowTotalChunks"},
		{"flowTotalChunks", "0", "flowTotalChunks"},
		{"flowCurrentChunkSize", "999", "flowCurrentChunkSize"},
		{"flowIdentifier", "a/b", "flowIdentifier"},
		{"flowIdentifier", `a\b`, "flowIdentifier"},
		{"flowIdentifier", "a\x00b", "control"},
		{"flowIdentifier", "a\nb", "control"},
		{"flowIdentifier", "a\xffb", "UTF-8"},
		{"flowIdentifier", strings.Repeat("i", 256), "longer"},
		{"flowFilename", "../../etc/passwd", "not a path"},
		{"flowFilename", "/etc/passwd", "not a path"},
		{"flowFilename", `..\..\win.ini`, "not a path"},
		{"flowFilename", "..", "not"},
		{"flowFilename", ".", "not"},
		{"flowFilename", "a\x00.txt", "control"},
		{"flowFilename", "a\u202e.txt", "control"},
		{"flowFilename", "\xc3\x28.txt", "UTF-8"},
		{"flowFilename", strings.Repeat("n", 256), "longer"},
		{"flowRelativePath", "/abs/file", "relative"},
		{"flowRelativePath", "C:/x/file", "relative"},
		{"flowRelativePath", "a/../../b", ". or .."},
		{"flowRelativePath", "./a", ". or .."},
		{"flowRelativePath", `a\b`, "/ between"},
		{"flowRelativePath", "a//b", "empty"},
		{"flowRelativePath", "a/\x01/b", "control"},
		{"flowRelativePath", strings.Repeat("d/", 600) + "f", "longer"},
	}
	for _, b := range badField {
		b := b
		cases = append(cases,
			tc{fmt.Sprintf("get %s=%q", b.field, clip(b.value)), func(e *env) resp { return e.get("/upload", with(1, b.field, b.value)) }, 400, b.msg},
			tc{fmt.Sprintf("multipart %s=%q", b.field, clip(b.value)), func(e *env) resp {
				return e.multipart(flowParts(with(1, b.field, b.value), f.chunk(1)), nil)
			}, 400, b.msg},
		)
	}
	big := newFile(4, 0, cs, false)
	cases = append(cases,
		tc{"file over the limit", func(e *env) resp {
			q := big.params(1)
			q.Set("flowTotalSize", strconv.FormatInt(testLimits.MaxFileSize+1, 10))
			q.Set("flowChunkSize", strconv.FormatInt(testLimits.MaxFileSize+1, 10))
			q.Set("flowCurrentChunkSize", strconv.FormatInt(testLimits.MaxFileSize+1, 10))
			return e.get("/upload", q)
		}, 413, "over the limit"},
		tc{"huge declared size", func(e *env) resp { return e.get("/upload", with(1, "flowTotalSize", "999999999999999999")) }, 413, "over the limit"},
		tc{"chunk over the limit", func(e *env) resp {
			q := big.params(1)
			sz := strconv.FormatInt(testLimits.MaxChunkSize+1, 10)
			q.Set("flowTotalSize", sz)
			q.Set("flowChunkSize", sz)
			q.Set("flowCurrentChunkSize", sz)
			return e.get("/upload", q)
		}, 413, "chunk"},
		tc{"too many chunks", func(e *env) resp {
			q := big.params(1)
			q.Set("flowTotalSize", "1001")
			q.Set("flowChunkSize", "1")
			q.Set("flowTotalChunks", "1001")
			q.Set("flowCurrentChunkSize", "1")
			return e.get("/upload", q)
		}, 413, "chunks"},
		// Bodies that disagree with what they declare.
		tc{"octet body shorter", func(e *env) resp { return e.octet(f.params(1), f.chunk(1)[:999]) }, 400, "bytes"},
		tc{"octet body longer", func(e *env) resp { return e.octet(f.params(1), append(f.chunk(1), 'x')) }, 400, "bytes"},
		tc{"octet body shorter, no length", func(e *env) resp {
			req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/upload?"+f.params(1).Encode(), io.MultiReader(bytes.NewReader(f.chunk(1)[:500])))
			req.ContentLength = -1
			return e.do(req)
		}, 400, "shorter"},
		tc{"octet body longer, no length", func(e *env) resp {
			req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/upload?"+f.params(1).Encode(), io.MultiReader(bytes.NewReader(f.chunk(1)), strings.NewReader("extra")))
			req.ContentLength = -1
			return e.do(req)
		}, 400, "longer"},
		tc{"multipart file part shorter", func(e *env) resp { return e.multipart(flowParts(f.params(1), f.chunk(1)[:10]), nil) }, 400, "shorter"},
		tc{"multipart file part longer", func(e *env) resp {
			return e.multipart(flowParts(f.params(1), append(f.chunk(1), 'x')), nil)
		}, 400, "longer"},
		tc{"multipart empty file part", func(e *env) resp { return e.multipart(flowParts(f.params(1), nil), nil) }, 400, "shorter"},
		tc{"multipart two file parts", func(e *env) resp {
			return e.multipart(append(flowParts(f.params(1), f.chunk(1)), part{name: "file", value: "again", file: true}), nil)
		}, 400, "more than one"},
		tc{"multipart no file part", func(e *env) resp { return e.multipart(flowParts(f.params(1), f.chunk(1))[:8], nil) }, 400, "no \"file\" part"},
		tc{"multipart file before fields", func(e *env) resp {
			ps := flowParts(f.params(1), f.chunk(1))
			return e.multipart(append([]part{ps[len(ps)-1]}, ps[:len(ps)-1]...), nil)
		}, 400, "missing"},
		tc{"multipart field twice", func(e *env) resp {
			return e.multipart(append([]part{{name: "flowChunkNumber", value: "2"}}, flowParts(f.params(1), f.chunk(1))...), nil)
		}, 400, "twice"},
		tc{"multipart field too long", func(e *env) resp {
			return e.multipart(append([]part{{name: "note", value: strings.Repeat("x", 5000)}}, flowParts(f.params(1), f.chunk(1))...), nil)
		}, 400, "too long"},
		tc{"multipart too many parts", func(e *env) resp {
			var ps []part
			for i := 0; i < 70; i++ {
				ps = append(ps, part{name: fmt.Sprintf("x%d", i), value: "1"})
			}
			return e.multipart(append(ps, flowParts(f.params(1), f.chunk(1))...), nil)
		}, 400, "too many"},
		// A body cut short is most likely a network problem: 408, which
		// both flow.js and Resumable.js retry.
		tc{"multipart cut off after the file", func(e *env) resp {
			ct, body := multipartBody(flowParts(f.params(1), f.chunk(1)))
			return e.raw(ct, body[:len(body)-10], nil)
		}, 408, "ended"},
		tc{"multipart cut off inside the file", func(e *env) resp {
			ct, body := multipartBody(flowParts(f.params(1), f.chunk(1)))
			return e.raw(ct, body[:len(body)-600], nil)
		}, 408, "ended"},
		tc{"multipart cut off inside a field", func(e *env) resp {
			ct, body := multipartBody(append([]part{{name: "note", value: strings.Repeat("x", 300)}}, flowParts(f.params(1), f.chunk(1))...))
			return e.raw(ct, body[:200], nil)
		}, 408, "ended"},
		tc{"multipart without boundary", func(e *env) resp { return e.raw("multipart/form-data", []byte("x"), f.params(1)) }, 400, "malformed"},
		tc{"multipart garbage", func(e *env) resp {
			return e.raw("multipart/form-data; boundary=zz", []byte("not multipart at all"), nil)
		}, 400, "malformed"},
		tc{"body over the request limit", func(e *env) resp {
			return e.octet(with(1, "flowCurrentChunkSize", "1000"), make([]byte, testLimits.MaxChunkSize+1<<20))
		}, 400, "bytes"},
		tc{"wrong method", func(e *env) resp {
			req, _ := http.NewRequest(http.MethodDelete, e.srv.URL+"/upload", nil)
			return e.do(req)
		}, 405, "POST"},
		tc{"unknown path", func(e *env) resp { return e.get("/uploads/../etc", nil) }, 404, "no such"},
		tc{"status without identifier", func(e *env) resp { return e.get("/upload/status", without(1, "flowIdentifier")) }, 400, "flowIdentifier"},
	)
	if len(cases) < 40 {
		t.Fatalf("only %d cases", len(cases))
	}
	e := newEnv(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantStatus(t, c.send(e), c.status, c.errMsg)
			for _, ns := range []string{httpapi.PublicNamespace} {
				if _, err := e.ledger.Get(context.Background(), f.key(ns)); err != upload.ErrNotFound {
					t.Fatalf("ledger has a record after a refused request: %v", err)
				}
			}
			if s := e.stagingFiles(); len(s) != 0 {
				t.Fatalf("refused request left staged bytes: %v", s)
			}
		})
	}
	// The server still takes a valid upload afterwards.
	wantStatus(t, e.octet(f.params(2), f.chunk(2)), 200, "")
	wantStatus(t, e.multipart(flowParts(f.params(1), f.chunk(1)), nil), 200, "")
	if got := e.finished(f); sum(got) != sum(f.data) {
		t.Fatal("content differs")
	}
	if err := filepath.Walk(e.dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && strings.Contains(info.Name(), "passwd") {
			t.Errorf("a client name became a file: %s", p)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func clip(s string) string {
	if len(s) > 20 {
		return s[:20]
	}
	return s
}

// TestRefusedChunkKeepsCountedBytes: a late duplicate with other bytes, or a
// broken one, never changes a chunk already acknowledged.
func TestRefusedChunkKeepsCountedBytes(t *testing.T) {
	e := newEnv(t)
	f := newFile(5, 3000, 1000, true)
	wantStatus(t, e.octet(f.params(2), f.chunk(2)), 200, "")
	other := bytes.Repeat([]byte{'Z'}, 1000)
	wantStatus(t, e.octet(f.params(2), other), 200, "")      // duplicate: taken, not stored
	wantStatus(t, e.octet(f.params(2), other[:10]), 400, "") // broken duplicate: refused
	wantStatus(t, e.multipart(append(flowParts(f.params(2), other), part{name: "file", value: "x", file: true}), nil), 400, "more than one")
	wantStatus(t, e.octet(f.params(1), f.chunk(1)), 200, "")
	wantStatus(t, e.octet(f.params(3), f.chunk(3)), 200, "")
	if got := e.finished(f); sum(got) != sum(f.data) {
		t.Fatal("an acknowledged chunk was overwritten")
	}
}

// TestFieldsAnyOrderExtraAndQuery: flow.js's `query` option adds fields; a
// client may order fields as it likes or put them in the query string.
func TestFieldsAnyOrderExtraAndQuery(t *testing.T) {
	e := newEnv(t)
	f := newFile(6, 2000, 1000, true)
	ps := flowParts(f.params(1), f.chunk(1))
	fields := ps[:len(ps)-1]
	rand.New(rand.NewSource(1)).Shuffle(len(fields), func(i, j int) { fields[i], fields[j] = fields[j], fields[i] })
	ps = append([]part{{name: "token", value: "abc"}}, fields...)
	ps = append(ps, part{name: "file", value: string(f.chunk(1)), file: true}, part{name: "after", value: "1"})
	wantStatus(t, e.multipart(ps, nil), 200, "")
	// Fields in the query string, only the file in the form.
	wantStatus(t, e.multipart([]part{{name: "file", value: string(f.chunk(2)), file: true}}, f.params(2)), 200, "")
	if got := e.finished(f); sum(got) != sum(f.data) {
		t.Fatal("content differs")
	}
}

// TestGeometryConflict: the same identifier with another geometry while the
// first upload is receiving gets 409; once it is complete, it is a new upload.
func TestGeometryConflict(t *testing.T) {
	e := newEnv(t)
	f := newFile(8, 3000, 1000, true)
	g := f
	g.chunkSize, g.total = 500, 6
	wantStatus(t, e.octet(f.params(1), f.chunk(1)), 200, "")
	wantStatus(t, e.get("/upload", g.params(1)), 409, "different")
	wantStatus(t, e.octet(g.params(1), g.chunk(1)), 409, "different")
	if len(e.stagingFiles()) != 1 {
		t.Fatalf("staging: %v", e.stagingFiles())
	}
	wantStatus(t, e.octet(f.params(2), f.chunk(2)), 200, "")
	wantStatus(t, e.octet(f.params(3), f.chunk(3)), 200, "")
	e.finished(f)
	for n := 1; n <= g.total; n++ {
		wantStatus(t, e.octet(g.params(n), g.chunk(n)), 200, "")
	}
	if got := e.finished(g); sum(got) != sum(g.data) {
		t.Fatal("content differs")
	}
}

// TestTestChunkAfterCompletion: every chunk of a finished upload is present,
// and sending one again stores nothing.
func TestTestChunkAfterCompletion(t *testing.T) {
	e := newEnv(t)
	f := newFile(9, 2000, 1000, true)
	wantStatus(t, e.octet(f.params(1), f.chunk(1)), 200, "")
	if st := e.status(f); st.State != upload.StateReceiving || st.Received != 1 || st.Total != 2 {
		t.Fatalf("status %+v", st)
	}
	wantStatus(t, e.octet(f.params(2), f.chunk(2)), 200, "")
	for n := 1; n <= 2; n++ {
		wantStatus(t, e.get("/upload", f.params(n)), 200, "")
	}
	wantStatus(t, e.octet(f.params(1), f.chunk(1)), 200, "")
	if s := e.stagingFiles(); len(s) != 0 {
		t.Fatalf("a chunk of a finished upload was staged again: %v", s)
	}
	st := e.status(f)
	if st.State != upload.StateComplete || st.Size == nil || *st.Size != 2000 || !strings.HasPrefix(st.Location, "files/") || !strings.HasSuffix(st.Location, "/"+f.name) {
		t.Fatalf("status %+v", st)
	}
}

func TestUnknownStatus(t *testing.T) {
	e := newEnv(t)
	st := e.status(newFile(10, 10, 1000, false))
	if st.State != upload.StateUnknown {
		t.Fatalf("state %q", st.State)
	}
}

// TestNamespaces: the same identifier in two namespaces is two uploads.
func TestNamespaces(t *testing.T) {
	e := newEnv(t, func(h *httpapi.Handler) { h.Namespace = httpapi.HeaderNamespace("X-User") })
	a := newFile(11, 3000, 1000, true)
	b := newFile(12, 3000, 1000, true)
	b.id, b.name = a.id, a.name
	wantStatus(t, e.get("/upload", a.params(1)), 401, "X-User")
	wantStatus(t, e.octet(a.params(1), a.chunk(1), "X-User", "a\u202e"), 401, "invalid")
	for n := 1; n <= 3; n++ {
		wantStatus(t, e.octet(a.params(n), a.chunk(n), "X-User", "alice"), 200, "")
		wantStatus(t, e.get("/upload", b.params(n), "X-User", "bob"), 204, "")
		wantStatus(t, e.octet(b.params(n), b.chunk(n), "X-User", "bob"), 200, "")
	}
	if got := e.finished(a, "X-User", "alice"); sum(got) != sum(a.data) {
		t.Fatal("alice's file mixed")
	}
	if got := e.finished(b, "X-User", "bob"); sum(got) != sum(b.data) {
		t.Fatal("bob's file mixed")
	}
	if st := e.status(a, "X-User", "carol"); st.State != upload.StateUnknown {
		t.Fatalf("carol sees alice's upload: %+v", st)
	}
}

func TestCORS(t *testing.T) {
	e := newEnv(t, func(h *httpapi.Handler) { h.CORS = httpapi.CORS{AllowedOrigins: []string{"https://site.example"}} })
	pre := func(origin string) resp {
		req, _ := http.NewRequest(http.MethodOptions, e.srv.URL+"/upload", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "content-type")
		return e.do(req)
	}
	r := pre("https://site.example")
	if r.status != 204 || r.header.Get("Access-Control-Allow-Origin") != "https://site.example" ||
		!strings.Contains(r.header.Get("Access-Control-Allow-Methods"), "POST") ||
		!strings.Contains(r.header.Get("Access-Control-Allow-Headers"), "Content-Type") {
		t.Fatalf("preflight: %d %v", r.status, r.header)
	}
	wantStatus(t, pre("https://evil.example"), 403, "origin")
	f := newFile(13, 10, 1000, false)
	wantStatus(t, e.octet(f.params(1), f.chunk(1), "Origin", "https://evil.example"), 403, "origin")
	if _, err := e.ledger.Get(context.Background(), f.key(httpapi.PublicNamespace)); err != upload.ErrNotFound {
		t.Fatal("a request from a refused origin was stored")
	}
	r = e.get("/upload", f.params(1), "Origin", "https://site.example")
	if r.status != 204 || r.header.Get("Access-Control-Allow-Origin") != "https://site.example" {
		t.Fatalf("simple request: %d %v", r.status, r.header)
	}
	// Any origin by default.
	e2 := newEnv(t)
	req, _ := http.NewRequest(http.MethodOptions, e2.srv.URL+"/upload/status", nil)
	req.Header.Set("Origin", "http://localhost:3000")
	if r := e2.do(req); r.status != 204 || r.header.Get("Access-Control-Allow-Origin") != "http://localhost:3000" {
		t.Fatalf("default preflight: %d %v", r.status, r.header)
	}
}
