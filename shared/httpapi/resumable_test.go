package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/shared/httpapi"
	"github.com/flowgate/flowgate/shared/metrics"
	"github.com/flowgate/flowgate/shared/upload"
)

// resumableParams are the fields Resumable.js 1.1.0 sends for chunk n, with
// its parameterNamespace option set to prefix: flow.js's fields under its
// names, and the file's MIME type.
func (f file) resumableParams(n int, prefix string) url.Values {
	q := url.Values{}
	for k, v := range f.params(n) {
		q[prefix+"resumable"+strings.TrimPrefix(k, "flow")] = v
	}
	q.Set(prefix+"resumableType", "application/x-test")
	return q
}

// resumableFields are the form fields of a Resumable.js multipart POST, in
// the order it appends them.
func resumableFields(q url.Values) []part {
	var ps []part
	for k, vs := range q {
		ps = append(ps, part{name: k, value: vs[0]})
	}
	return ps
}

// filePart appends the chunk, in a part named name, to the fields.
func filePart(data []byte, name string, fields []part) []part {
	return append(fields, part{name: name, value: string(data), file: true})
}

// resumablePost sends chunk n as Resumable.js does in method: the fields in
// the query string in both methods, and in the form too in multipart.
func (e *env) resumablePost(f file, n int, prefix, method string, hdr ...string) resp {
	q := f.resumableParams(n, prefix)
	if method == "octet" {
		return e.octet(q, f.chunk(n), hdr...)
	}
	return e.multipart(filePart(f.chunk(n), prefix+"file", resumableFields(q)), q, hdr...)
}

// TestResumableUploadModes: Resumable.js's fields, with and without a
// parameterNamespace, in both methods and both chunking modes, on every
// endpoint: files arrive byte-exact, and the status request takes its names.
func TestResumableUploadModes(t *testing.T) {
	e := newEnv(t)
	const cs = 64 << 10
	seed := int64(100)
	for _, prefix := range []string{"", "up_"} {
		for _, force := range []bool{false, true} {
			for _, method := range []string{"multipart", "octet"} {
				for _, size := range []int{0, 1, cs, 2*cs - 1, 3*cs + 7} {
					seed++
					f := newFile(seed, size, cs, force)
					t.Run(fmt.Sprintf("prefix=%q/force=%v/%s/%d", prefix, force, method, size), func(t *testing.T) {
						for _, i := range rand.New(rand.NewSource(seed)).Perm(f.total) {
							n := i + 1
							wantStatus(t, e.get("/upload", f.resumableParams(n, prefix)), 204, "")
							wantStatus(t, e.resumablePost(f, n, prefix, method), 200, "")
							wantStatus(t, e.get("/upload", f.resumableParams(n, prefix)), 200, "")
						}
						q := f.resumableParams(1, prefix)
						q.Del(prefix + "resumableChunkNumber")
						q.Del(prefix + "resumableCurrentChunkSize")
						r := e.get("/upload/status", q)
						wantStatus(t, r, 200, "")
						var st upload.Status
						if err := json.Unmarshal([]byte(r.body), &st); err != nil || st.State != upload.StateComplete {
							t.Fatalf("status %s (%v)", r.body, err)
						}
						if got := e.finished(f); sum(got) != sum(f.data) {
							t.Fatalf("finished file differs from the source")
						}
					})
				}
			}
		}
	}
}

// TestCrossLibraryResume: a file begun by flow.js is the same upload when
// Resumable.js goes on with it (and the other way round): the test GET in
// one library's names finds the chunks the other sent, and the file is
// complete once each chunk was sent by either.
func TestCrossLibraryResume(t *testing.T) {
	e := newEnv(t)
	for i, first := range []string{"flow.js", "Resumable.js"} {
		f := newFile(int64(200+i), 5*1000+17, 1000, false) // 5 chunks
		send := func(lib string, n int) resp {
			if lib == "flow.js" {
				return e.multipart(flowParts(f.params(n), f.chunk(n)), nil)
			}
			return e.resumablePost(f, n, "", "multipart")
		}
		test := func(lib string, n int) resp {
			if lib == "flow.js" {
				return e.get("/upload", f.params(n))
			}
			return e.get("/upload", f.resumableParams(n, ""))
		}
		second := map[string]string{"flow.js": "Resumable.js", "Resumable.js": "flow.js"}[first]
		for n := 1; n <= 2; n++ {
			wantStatus(t, send(first, n), 200, "")
		}
		for n := 1; n <= f.total; n++ {
			want := 204
			if n <= 2 {
				want = 200 // sent by the other library: present
			}
			wantStatus(t, test(second, n), want, "")
			if want == 204 {
				wantStatus(t, send(second, n), 200, "")
			}
		}
		if got := e.finished(f); sum(got) != sum(f.data) {
			t.Fatalf("%s then %s: finished file differs", first, second)
		}
	}
}

// TestMixedFieldsRefused: on every endpoint and in both methods, a request
// that mixes the two libraries' fields, or carries both with different
// values, is refused with 400 and a message that says so, and stores
// nothing; one that carries both, agreeing, is taken.
func TestMixedFieldsRefused(t *testing.T) {
	f := newFile(300, 2500, 1000, false)
	mixed := func(n int) url.Values { // flow.js's names but Resumable.js's identifier
		q := f.params(n)
		q.Del("flowIdentifier")
		q.Set("resumableIdentifier", f.id)
		return q
	}
	differ := func(n int) url.Values { // both, with another chunk number
		q := f.params(n)
		for k, v := range f.resumableParams(n, "") {
			q[k] = v
		}
		q.Set("resumableChunkNumber", "2")
		return q
	}
	status := func(q url.Values) url.Values {
		q.Del("flowChunkNumber")
		q.Del("flowCurrentChunkSize")
		return q
	}
	cases := []struct {
		name string
		send func(e *env) resp
		msg  string
	}{
		{"test GET, mixed", func(e *env) resp { return e.get("/upload", mixed(1)) }, "mixes flow.js and Resumable.js fields"},
		{"test GET, differing", func(e *env) resp { return e.get("/upload", differ(1)) }, "flowChunkNumber and resumableChunkNumber differ"},
		{"status, mixed", func(e *env) resp { return e.get("/upload/status", status(mixed(1))) }, "mixes"},
		{"octet, mixed", func(e *env) resp { return e.octet(mixed(1), f.chunk(1)) }, "mixes"},
		{"octet, differing", func(e *env) resp { return e.octet(differ(1), f.chunk(1)) }, "differ"},
		{"multipart, mixed", func(e *env) resp { return e.multipart(flowParts(mixed(1), f.chunk(1)), nil) }, "mixes"},
		{"multipart, differing", func(e *env) resp { return e.multipart(flowParts(differ(1), f.chunk(1)), nil) }, "differ"},
		{"multipart, flow.js form and Resumable.js query", func(e *env) resp {
			return e.multipart(flowParts(f.params(1), f.chunk(1)), url.Values{"resumableChunkNumber": {"2"}})
		}, "mixes"},
		{"multipart, Resumable.js field twice", func(e *env) resp {
			q := f.resumableParams(1, "")
			return e.multipart(filePart(f.chunk(1), "file", append(resumableFields(q), part{name: "resumableChunkNumber", value: "1"})), nil)
		}, "twice"},
		{"two parameterNamespaces", func(e *env) resp {
			q := f.resumableParams(1, "a_")
			q.Set("b_resumableIdentifier", f.id)
			return e.octet(q, f.chunk(1))
		}, "more than one parameterNamespace"},
	}
	e := newEnv(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantStatus(t, c.send(e), 400, c.msg)
			if _, err := e.ledger.Get(context.Background(), f.key(httpapi.PublicNamespace)); err != upload.ErrNotFound {
				t.Fatalf("ledger has a record after a refused request: %v", err)
			}
			if s := e.stagingFiles(); len(s) != 0 {
				t.Fatalf("refused request left staged bytes: %v", s)
			}
		})
	}
	// Both families, agreeing, in every field: taken.
	for n := 1; n <= f.total; n++ {
		q := f.params(n)
		for k, v := range f.resumableParams(n, "") {
			q[k] = v
		}
		wantStatus(t, e.octet(q, f.chunk(n)), 200, "")
	}
	if got := e.finished(f); sum(got) != sum(f.data) {
		t.Fatal("content differs")
	}
}

// TestResumableMessagesAndStatuses: a refusal says what is wrong in
// Resumable.js's names, and is answered with a status Resumable.js acts on
// as the API means it: a refusal no retry can mend (a limit, a conflicting
// upload) is 400, which Resumable.js gives up on, where flow.js gets 413 or
// 409, which it gives up on or retries as before; a body cut short is 408
// for both, which both retry.
func TestResumableMessagesAndStatuses(t *testing.T) {
	e := newEnv(t)
	f := newFile(400, 2500, 1000, false)
	over := func(q url.Values, prefix string) url.Values {
		q.Set(prefix+"TotalSize", fmt.Sprint(testLimits.MaxFileSize+1))
		return q
	}
	h := newFile(401, 2500, 1000, false)
	cut := func(q url.Values, fields []part, file string) resp {
		ct, body := multipartBody(filePart(h.chunk(1), file, fields))
		return e.raw(ct, body[:len(body)-300], q)
	}
	// Another upload under the same identifier, with another chunking, is
	// in progress: a conflict.
	g := f
	g.chunkSize, g.total = 500, 5
	wantStatus(t, e.octet(g.params(1), g.chunk(1)), 200, "")

	cases := []struct {
		name        string
		flow, resum func() resp
		flowStatus  int
		resumStatus int
		flowMsg     string
		resumMsg    string
	}{
		{"missing identifier",
			func() resp { q := f.params(1); q.Del("flowIdentifier"); return e.get("/upload", q) },
			func() resp { q := f.resumableParams(1, ""); q.Del("resumableIdentifier"); return e.get("/upload", q) },
			400, 400, "missing flowIdentifier", "missing resumableIdentifier"},
		{"octet body of another size",
			func() resp { return e.octet(f.params(1), f.chunk(1)[:10]) },
			func() resp { return e.octet(f.resumableParams(1, "up_"), f.chunk(1)[:10]) },
			400, 400, "flowCurrentChunkSize is 1000", "up_resumableCurrentChunkSize is 1000"},
		{"file over the limit, test GET",
			func() resp { return e.get("/upload", over(f.params(1), "flow")) },
			func() resp { return e.get("/upload", over(f.resumableParams(1, ""), "resumable")) },
			413, 400, "over the limit", "over the limit"},
		{"file over the limit, multipart",
			func() resp { q := over(f.params(1), "flow"); return e.multipart(flowParts(q, f.chunk(1)), nil) },
			func() resp {
				q := over(f.resumableParams(1, ""), "resumable")
				return e.multipart(filePart(f.chunk(1), "file", resumableFields(q)), q)
			},
			413, 400, "over the limit", "over the limit"},
		{"conflicting upload in progress",
			func() resp { return e.octet(f.params(1), f.chunk(1)) },
			func() resp { return e.resumablePost(f, 1, "", "octet") },
			409, 400, "different size or chunking", "different size or chunking"},
		{"body cut short",
			func() resp { return cut(nil, flowParts(h.params(1), nil)[:8], "file") },
			func() resp { q := h.resumableParams(1, "up_"); return cut(q, resumableFields(q), "up_file") },
			408, 408, "ended", "ended"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantStatus(t, c.flow(), c.flowStatus, c.flowMsg)
			wantStatus(t, c.resum(), c.resumStatus, c.resumMsg)
		})
	}
}

// TestResumableMetricsKeepTheReason: a refusal answered 400 to Resumable.js
// is still counted under the reason the API gives it.
func TestResumableMetricsKeepTheReason(t *testing.T) {
	m := metrics.New()
	e := newEnv(t, func(h *httpapi.Handler) { h.Metrics = m })
	f := newFile(500, 10, 10, false)
	q := f.resumableParams(1, "")
	q.Set("resumableTotalSize", fmt.Sprint(testLimits.MaxFileSize+1))
	wantStatus(t, e.get("/upload", q), http.StatusBadRequest, "over the limit")
	var buf bytes.Buffer
	m.WritePrometheus(&buf)
	if want := `flowgate_rejections_total{reason="limit_exceeded",status="400"} 1`; !strings.Contains(buf.String(), want) {
		t.Fatalf("metrics lack %q:\n%s", want, buf.String())
	}
}
