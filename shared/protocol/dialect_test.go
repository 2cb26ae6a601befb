package protocol

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/shared/upload"
)

var testLimits = Limits{MaxFileSize: 1 << 30, MaxChunkSize: 8 << 20, MaxChunks: 1000}

// flowQuery is what flow.js sends for chunk 2 of a 2,500,000-byte file in
// 1 MiB chunks (two chunks, the last carrying the rest).
func flowQuery() url.Values {
	return url.Values{
		"flowChunkNumber": {"2"}, "flowChunkSize": {"1048576"}, "flowCurrentChunkSize": {"1451424"},
		"flowTotalSize": {"2500000"}, "flowIdentifier": {"2500000-photosajpg"}, "flowFilename": {"a.jpg"},
		"flowRelativePath": {"photos/a.jpg"}, "flowTotalChunks": {"2"},
	}
}

// resumableQuery is what Resumable.js 1.1.0 sends for the same chunk, with
// its parameterNamespace option set to prefix.
func resumableQuery(prefix string) url.Values {
	q := url.Values{}
	for k, v := range flowQuery() {
		q[prefix+"resumable"+strings.TrimPrefix(k, "flow")] = v
	}
	q.Set(prefix+"resumableType", "image/jpeg")
	return q
}

func queryGet(q url.Values) Fields {
	return func(k string) (string, bool) {
		v, ok := q[k]
		if !ok || len(v) != 1 {
			return "", false
		}
		return v[0], true
	}
}

func keys(q url.Values) []string {
	var ks []string
	for k := range q {
		ks = append(ks, k)
	}
	return ks
}

func parse(t *testing.T, q url.Values) (Dialect, Chunk, error) {
	t.Helper()
	d, err := Detect(keys(q), queryGet(q))
	if err != nil {
		return d, Chunk{}, err
	}
	c, err := d.ParseChunk(queryGet(q), "ns", testLimits)
	return d, c, err
}

// TestResumableFieldsSameUpload: Resumable.js's fields, with or without a
// parameterNamespace, name the same upload, under the same key, as flow.js's
// fields for the same file: either library can resume what the other began.
func TestResumableFieldsSameUpload(t *testing.T) {
	_, want, err := parse(t, flowQuery())
	if err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{"", "upload_", "x[", "ünï-"} {
		d, got, err := parse(t, resumableQuery(prefix))
		if err != nil {
			t.Fatalf("prefix %q: %v", prefix, err)
		}
		if d != (Dialect{Library: ResumableJS, Prefix: prefix}) {
			t.Fatalf("prefix %q: dialect %+v", prefix, d)
		}
		got.ContentType = "" // resumableType: flow.js sends no type
		if got.Info != want.Info || got.Number != want.Number || got.Size != want.Size {
			t.Fatalf("prefix %q: chunk %+v, want %+v (the same as flow.js's)", prefix, got, want)
		}
	}
	// A status request (no chunk fields) too.
	q := resumableQuery("")
	q.Del("resumableChunkNumber")
	q.Del("resumableCurrentChunkSize")
	d, err := Detect(keys(q), queryGet(q))
	if err != nil {
		t.Fatal(err)
	}
	info, err := d.ParseUpload(queryGet(q), "ns", testLimits)
	if info.ContentType != "image/jpeg" {
		t.Errorf("resumableType gave the type %q, want image/jpeg", info.ContentType)
	}
	info.ContentType = ""
	if err != nil || info != want.Info {
		t.Fatalf("status fields: %+v %v, want %+v", info, err, want.Info)
	}
}

// TestDetect: which library a request is from, and the requests that mix
// the two or disagree with themselves, refused with a message naming the
// fields.
func TestDetect(t *testing.T) {
	both := flowQuery()
	for k, v := range resumableQuery("") {
		both[k] = v
	}
	cases := []struct {
		name    string
		q       url.Values
		want    Dialect
		errPart string
	}{
		{"flow.js", flowQuery(), Flow, ""},
		{"nothing", url.Values{"other": {"1"}}, Flow, ""},
		{"Resumable.js", resumableQuery(""), Dialect{Library: ResumableJS}, ""},
		{"Resumable.js with a namespace", resumableQuery("up_"), Dialect{Library: ResumableJS, Prefix: "up_"}, ""},
		{"Resumable.js with an extra field ending like one of its own", with(resumableQuery("up_"), "myresumableType", "x"), Dialect{Library: ResumableJS, Prefix: "up_"}, ""},
		{"both, agreeing", both, Dialect{Library: ResumableJS}, ""},
		{"both, the identifier differs", with(both, "resumableIdentifier", "other"), Flow, "flowIdentifier and resumableIdentifier differ"},
		{"both, a chunk number differs", with(both, "flowChunkNumber", "1"), Flow, "differ"},
		{"mixed: flow.js identifier, Resumable.js numbers", mix(flowQuery(), resumableQuery(""), "Identifier"), Flow, "mixes flow.js and Resumable.js"},
		{"mixed: one Resumable.js field among flow.js's", with(flowQuery(), "resumableChunkNumber", "2"), Flow, "mixes"},
		{"mixed: one flow.js field among Resumable.js's", with(resumableQuery(""), "flowChunkNumber", "2"), Flow, "mixes"},
		{"two namespaces", with(resumableQuery("a_"), "b_resumableIdentifier", "x"), Flow, "more than one parameterNamespace"},
		{"namespace too long", resumableQuery(strings.Repeat("p", MaxPrefixBytes+1)), Flow, "longer than"},
		{"namespace with a control character", resumableQuery("a\x00"), Flow, "control"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := Detect(keys(c.q), queryGet(c.q))
			if c.errPart != "" {
				wantRefusal(t, err, upload.BadInput, c.errPart)
				return
			}
			if err != nil || d != c.want {
				t.Fatalf("dialect %+v, %v; want %+v", d, err, c.want)
			}
		})
	}
}

// TestResumableMessages: what is wrong is said in the client's own names.
func TestResumableMessages(t *testing.T) {
	cases := []struct {
		q       url.Values
		kind    upload.Kind
		errPart string
	}{
		{without(resumableQuery("up_"), "up_resumableIdentifier"), upload.BadInput, "missing up_resumableIdentifier"},
		{without(resumableQuery(""), "resumableTotalChunks"), upload.BadInput, "missing resumableTotalChunks"},
		{with(resumableQuery(""), "resumableCurrentChunkSize", "5"), upload.BadInput, "resumableCurrentChunkSize is 5"},
		{with(resumableQuery(""), "resumableFilename", "../x"), upload.BadInput, "resumableFilename must be a name"},
		{with(resumableQuery(""), "resumableRelativePath", "../x"), upload.BadInput, "resumableRelativePath must not contain"},
		{with(resumableQuery(""), "resumableType", "image/\x01"), upload.BadInput, "resumableType must not contain control"},
		{with(resumableQuery(""), "resumableType", strings.Repeat("t", MaxTypeBytes+1)), upload.BadInput, "resumableType is longer"},
		{with(resumableQuery(""), "resumableTotalSize", "99999999999999"), upload.TooLarge, "over the limit"},
	}
	for _, c := range cases {
		_, _, err := parse(t, c.q)
		wantRefusal(t, err, c.kind, c.errPart)
	}
	// An empty type (a file the browser knows no type for) is fine.
	if _, _, err := parse(t, with(resumableQuery(""), "resumableType", "")); err != nil {
		t.Fatal(err)
	}
}

// TestFilePart: the part that carries the chunk, with and without
// Resumable.js's parameterNamespace.
func TestFilePart(t *testing.T) {
	has := func(names ...string) func(string) bool {
		return func(n string) bool {
			for _, x := range names {
				if x == n {
					return true
				}
			}
			return false
		}
	}
	for _, c := range []struct {
		part string
		has  func(string) bool
		want bool
	}{
		{"file", has(), true},
		{"up_file", has("up_resumableIdentifier"), true},
		{"up_file", has("resumableIdentifier"), false},
		{"profile", has("resumableIdentifier"), false},
		{"note", has("resumableIdentifier"), false},
	} {
		if got := FilePart(c.part, "file", c.has); got != c.want {
			t.Errorf("FilePart(%q) = %v, want %v", c.part, got, c.want)
		}
	}
}

func with(q url.Values, k, v string) url.Values {
	r := url.Values{}
	for k, v := range q {
		r[k] = v
	}
	r.Set(k, v)
	return r
}

func without(q url.Values, k string) url.Values {
	r := with(q, k, "")
	r.Del(k)
	return r
}

// mix takes the fields whose names contain part from b and the rest from a.
func mix(a, b url.Values, part string) url.Values {
	r := url.Values{}
	for k, v := range a {
		if !strings.Contains(k, part) {
			r[k] = v
		}
	}
	for k, v := range b {
		if strings.Contains(k, part) {
			r[k] = v
		}
	}
	return r
}

func wantRefusal(t *testing.T, err error, kind upload.Kind, part string) {
	t.Helper()
	var ie *upload.InputError
	if !errors.As(err, &ie) || ie.Kind != kind {
		t.Fatalf("error %v, want a %s InputError", err, kind)
	}
	if !strings.Contains(ie.Msg, part) {
		t.Fatalf("error %q does not say %q", ie.Msg, part)
	}
}
