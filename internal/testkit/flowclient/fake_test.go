package flowclient

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
)

// fakeServer is a minimal, strict flow.js backend for the client's own tests.
// It checks every request against the geometry rule of the server contract
// (every chunk ChunkSize long except the last, which runs to the end), so a
// client that cut chunks differently from flow.js would fail here.
type fakeServer struct {
	t  *testing.T
	mu sync.Mutex
	// files holds the stored chunks of each identifier.
	files map[string]map[int][]byte
	// truncated counts POSTs whose body ended before its Content-Length.
	truncated int
	// postFail, if set, can answer a POST for chunk n with a status of its
	// choice instead of storing it; 0 means "go on normally".
	postFail func(n, attempt int) int
	attempts map[int]int
	// getStatus, if set, overrides the answer to a test GET; 0 means normal.
	getStatus func(n int) int
	// forms records, for each multipart POST, the part names in order.
	forms [][]string
	// fileHeaders records the headers of the multipart file parts.
	fileHeaders []map[string]string
	// rawQueries records the query strings of octet POSTs and GETs.
	rawQueries []string
	// statusQueries records the query strings of status requests.
	statusQueries []string
	// headers records a header of interest from every request.
	headers []string
	// statusSeq, if set, answers status requests in turn (then repeats the last).
	statusSeq []Status
}

func newFake(t *testing.T) (*fakeServer, *httptest.Server) {
	f := &fakeServer{t: t, files: map[string]map[int][]byte{}, attempts: map[int]int{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

type fakeGeom struct {
	id                 string
	n, total           int
	chunkSize, size    int64
	current            int64
	filename, relative string
}

func parseGeom(get func(string) string, needChunk bool) (fakeGeom, error) {
	var g fakeGeom
	var err error
	num := func(name string) int64 {
		if err != nil {
			return 0
		}
		v, e := strconv.ParseInt(get(name), 10, 64)
		if e != nil {
			err = fmt.Errorf("%s: %v", name, e)
		}
		return v
	}
	g.id = get(FieldIdentifier)
	g.size = num(FieldTotalSize)
	g.chunkSize = num(FieldChunkSize)
	g.total = int(num(FieldTotalChunks))
	g.filename = get(FieldFilename)
	g.relative = get(FieldRelativePath)
	if needChunk {
		g.n = int(num(FieldChunkNumber))
		g.current = num(FieldCurrentChunkSize)
	}
	if err != nil {
		return g, err
	}
	if g.id == "" || g.filename == "" || g.chunkSize < 1 {
		return g, fmt.Errorf("missing fields")
	}
	floor := max(g.size/g.chunkSize, 1)
	ceil := max((g.size+g.chunkSize-1)/g.chunkSize, 1)
	if int64(g.total) != floor && int64(g.total) != ceil {
		return g, fmt.Errorf("bad total chunks %d", g.total)
	}
	if needChunk {
		if g.n < 1 || g.n > g.total {
			return g, fmt.Errorf("bad chunk number %d", g.n)
		}
		off := int64(g.n-1) * g.chunkSize
		want := g.chunkSize
		if g.n == g.total {
			want = g.size - off
		}
		if g.current != want {
			return g, fmt.Errorf("chunk %d: current size %d, want %d", g.n, g.current, want)
		}
	}
	return g, nil
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.headers = append(f.headers, r.Header.Get("X-Test"))
	f.mu.Unlock()
	switch {
	case r.URL.Path == "/upload/status" && r.Method == http.MethodGet:
		f.status(w, r)
	case r.URL.Path == "/upload" && r.Method == http.MethodGet:
		f.test(w, r)
	case r.URL.Path == "/upload" && r.Method == http.MethodPost:
		f.post(w, r)
	default:
		http.Error(w, "no", http.StatusMethodNotAllowed)
	}
}

func (f *fakeServer) test(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.rawQueries = append(f.rawQueries, r.URL.RawQuery)
	f.mu.Unlock()
	q := r.URL.Query()
	g, err := parseGeom(q.Get, true)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if f.getStatus != nil {
		if code := f.getStatus(g.n); code != 0 {
			w.WriteHeader(code)
			return
		}
	}
	f.mu.Lock()
	_, ok := f.files[g.id][g.n]
	f.mu.Unlock()
	if ok {
		w.WriteHeader(http.StatusOK)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (f *fakeServer) post(w http.ResponseWriter, r *http.Request) {
	var (
		fields = map[string]string{}
		data   []byte
		err    error
	)
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "multipart/form-data" {
		data, err = f.readMultipart(r, fields)
	} else {
		f.mu.Lock()
		f.rawQueries = append(f.rawQueries, r.URL.RawQuery)
		f.mu.Unlock()
		for k, v := range r.URL.Query() {
			fields[k] = v[0]
		}
		data, err = io.ReadAll(r.Body)
	}
	if err != nil {
		f.mu.Lock()
		f.truncated++
		f.mu.Unlock()
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	g, err := parseGeom(func(k string) string { return fields[k] }, true)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if int64(len(data)) != g.current {
		http.Error(w, "body size differs from flowCurrentChunkSize", http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.attempts[g.n]++
	attempt := f.attempts[g.n]
	f.mu.Unlock()
	if f.postFail != nil {
		if code := f.postFail(g.n, attempt); code != 0 {
			w.WriteHeader(code)
			return
		}
	}
	f.mu.Lock()
	if f.files[g.id] == nil {
		f.files[g.id] = map[int][]byte{}
	}
	f.files[g.id][g.n] = data
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"ok":true}`)
}

// readMultipart reads the parts in order, records their names and returns the
// file part's bytes. The file part must come last, as flow.js sends it.
func (f *fakeServer) readMultipart(r *http.Request, fields map[string]string) ([]byte, error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, err
	}
	var (
		names []string
		data  []byte
		file  bool
	)
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if file {
			return nil, fmt.Errorf("part after the file part")
		}
		names = append(names, p.FormName())
		b, err := io.ReadAll(p)
		if err != nil {
			return nil, err
		}
		if p.FileName() != "" || p.FormName() == "file" {
			file = true
			data = b
			f.mu.Lock()
			f.fileHeaders = append(f.fileHeaders, map[string]string{
				"filename":     p.FileName(),
				"disposition":  p.Header.Get("Content-Disposition"),
				"content-type": p.Header.Get("Content-Type"),
			})
			f.mu.Unlock()
			continue
		}
		fields[p.FormName()] = string(b)
	}
	if !file {
		return nil, fmt.Errorf("no file part")
	}
	f.mu.Lock()
	f.forms = append(f.forms, names)
	f.mu.Unlock()
	return data, nil
}

func (f *fakeServer) status(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.statusQueries = append(f.statusQueries, r.URL.RawQuery)
	seq := f.statusSeq
	if len(seq) > 1 {
		f.statusSeq = seq[1:]
	}
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if len(seq) > 0 {
		_ = json.NewEncoder(w).Encode(seq[0])
		return
	}
	g, err := parseGeom(r.URL.Query().Get, false)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
		return
	}
	f.mu.Lock()
	got := len(f.files[g.id])
	f.mu.Unlock()
	st := Status{State: "receiving", Received: got, Total: g.total}
	if got == 0 {
		st = Status{State: "unknown"}
	} else if got == g.total {
		st = Status{State: "complete", Received: got, Total: g.total, Size: g.size, Location: "files/x/" + g.filename}
	}
	_ = json.NewEncoder(w).Encode(st)
}

// assembled joins the stored chunks of id in order, or fails the test if one
// is missing.
func (f *fakeServer) assembled(id string, total int) []byte {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []byte
	for n := 1; n <= total; n++ {
		c, ok := f.files[id][n]
		if !ok {
			f.t.Fatalf("chunk %d of %s never stored", n, id)
		}
		out = append(out, c...)
	}
	return out
}
