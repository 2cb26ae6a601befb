package flowclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestTotalChunks(t *testing.T) {
	const cs = 10
	for _, tc := range []struct {
		size         int64
		floor, force int
	}{
		{0, 1, 1}, {1, 1, 1}, {9, 1, 1}, {10, 1, 1}, {11, 1, 2}, {19, 1, 2},
		{20, 2, 2}, {21, 2, 3}, {25, 2, 3}, {29, 2, 3}, {30, 3, 3}, {1001, 100, 101},
	} {
		if got := TotalChunks(tc.size, cs, false); got != tc.floor {
			t.Errorf("TotalChunks(%d, %d, false) = %d, want %d", tc.size, cs, got, tc.floor)
		}
		if got := TotalChunks(tc.size, cs, true); got != tc.force {
			t.Errorf("TotalChunks(%d, %d, true) = %d, want %d", tc.size, cs, got, tc.force)
		}
	}
}

// TestBoundsCoverFile checks, for many sizes, that the chunks tile the file
// exactly and obey flow.js's rules, and agree with the server contract's rule
// (offset (n-1)*chunkSize; the last chunk runs to the end).
func TestBoundsCoverFile(t *testing.T) {
	for _, cs := range []int64{1, 3, 10, 64} {
		for size := int64(0); size <= 5*cs+3; size++ {
			for _, force := range []bool{false, true} {
				g, err := NewGeometry(Options{ChunkSize: cs, ForceChunkSize: force}, size, "f")
				if err != nil {
					t.Fatal(err)
				}
				var next int64
				for n := 1; n <= g.TotalChunks; n++ {
					start, end := g.Bounds(n)
					if start != next {
						t.Fatalf("cs=%d size=%d force=%v chunk %d starts at %d, want %d", cs, size, force, n, start, next)
					}
					if start != int64(n-1)*cs {
						t.Fatalf("chunk %d starts at %d", n, start)
					}
					l := end - start
					last := n == g.TotalChunks
					switch {
					case !last && l != cs:
						t.Fatalf("cs=%d size=%d force=%v: chunk %d has %d bytes", cs, size, force, n, l)
					case last && force && (l > cs || (size > 0 && l < 1)):
						t.Fatalf("cs=%d size=%d force: last chunk has %d bytes", cs, size, l)
					case last && !force && (l > 2*cs-1 || (size >= cs && l < cs)):
						t.Fatalf("cs=%d size=%d: last chunk has %d bytes", cs, size, l)
					}
					next = end
				}
				if next != size {
					t.Fatalf("cs=%d size=%d force=%v: chunks end at %d", cs, size, force, next)
				}
			}
		}
	}
}

func TestBoundsExamples(t *testing.T) {
	g, _ := NewGeometry(Options{ChunkSize: 100}, 250, "f")
	if g.TotalChunks != 2 {
		t.Fatalf("total %d", g.TotalChunks)
	}
	if s, e := g.Bounds(2); s != 100 || e != 250 {
		t.Errorf("last chunk [%d,%d), want [100,250)", s, e)
	}
	g, _ = NewGeometry(Options{ChunkSize: 100, ForceChunkSize: true}, 250, "f")
	if g.TotalChunks != 3 {
		t.Fatalf("total %d", g.TotalChunks)
	}
	if s, e := g.Bounds(3); s != 200 || e != 250 {
		t.Errorf("last chunk [%d,%d), want [200,250)", s, e)
	}
	g, _ = NewGeometry(Options{ChunkSize: 100}, 0, "empty")
	if s, e := g.Bounds(1); g.TotalChunks != 1 || s != 0 || e != 0 {
		t.Errorf("empty file: %d chunks, [%d,%d)", g.TotalChunks, s, e)
	}
	g, _ = NewGeometry(Options{}, 5, "f")
	if g.ChunkSize != DefaultChunkSize {
		t.Errorf("default chunk size %d", g.ChunkSize)
	}
}

func TestDefaultIdentifier(t *testing.T) {
	for _, tc := range []struct {
		size int64
		name string
		want string
	}{
		{123, "photo (1).jpg", "123-photo1jpg"},
		{0, "résumé.pdf", "0-rsumpdf"},
		{7, "a/b c_d-e.txt", "7-abc_d-etxt"},
	} {
		if got := DefaultIdentifier(tc.size, tc.name); got != tc.want {
			t.Errorf("DefaultIdentifier(%d, %q) = %q, want %q", tc.size, tc.name, got, tc.want)
		}
	}
	// The relative path, when given, names the upload, as in flow.js.
	g, _ := NewGeometry(Options{RelativePath: "dir/x.bin"}, 9, "x.bin")
	if g.Identifier != "9-dirxbin" || g.RelativePath != "dir/x.bin" || g.Filename != "x.bin" {
		t.Errorf("geometry %+v", g)
	}
	g, _ = NewGeometry(Options{}, 9, "x.bin")
	if g.RelativePath != "x.bin" {
		t.Errorf("relative path defaults to %q", g.RelativePath)
	}
	g, _ = NewGeometry(Options{Identifier: "mine"}, 9, "x.bin")
	if g.Identifier != "mine" {
		t.Errorf("identifier %q", g.Identifier)
	}
}

func TestParams(t *testing.T) {
	g, _ := NewGeometry(Options{ChunkSize: 4}, 10, "a b.txt")
	got := g.Params(2)
	want := []Field{
		{"flowChunkNumber", "2"}, {"flowChunkSize", "4"}, {"flowCurrentChunkSize", "6"},
		{"flowTotalSize", "10"}, {"flowIdentifier", "10-abtxt"}, {"flowFilename", "a b.txt"},
		{"flowRelativePath", "a b.txt"}, {"flowTotalChunks", "2"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Params(2) =\n%v\nwant\n%v", got, want)
	}
	st := g.StatusParams()
	for _, f := range st {
		if f.Name == FieldChunkNumber || f.Name == FieldCurrentChunkSize {
			t.Errorf("status params carry %s", f.Name)
		}
	}
	if len(st) != 6 {
		t.Errorf("status params %v", st)
	}
}

func TestEncodeQuery(t *testing.T) {
	if got, want := encodeURIComponent("a b/ü'(*)~!.-_+&="), "a%20b%2F%C3%BC'(*)~!.-_%2B%26%3D"; got != want {
		t.Errorf("encodeURIComponent = %q, want %q", got, want)
	}
	fields := withExtras(map[string]string{"z": "1", "a": "2", FieldFilename: "ignored"},
		[]Field{{FieldChunkNumber, "1"}, {FieldFilename, "real"}})
	want := []Field{{"a", "2"}, {FieldFilename, "real"}, {"z", "1"}, {FieldChunkNumber, "1"}}
	if !slices.Equal(fields, want) {
		t.Errorf("withExtras = %v, want %v", fields, want)
	}
	if got := encodeQuery(want); got != "a=2&flowFilename=real&z=1&flowChunkNumber=1" {
		t.Errorf("encodeQuery = %q", got)
	}
	if withQuery("/u?x=1", "a=b") != "/u?x=1&a=b" || withQuery("/u", "a=b") != "/u?a=b" {
		t.Error("withQuery")
	}
}

func TestPercentile(t *testing.T) {
	var s Stats
	if s.Percentile(50) != 0 {
		t.Error("empty")
	}
	for i := 100; i >= 1; i-- {
		s.Latencies = append(s.Latencies, time.Duration(i)*time.Millisecond)
	}
	if p := s.Percentile(50); p != 50*time.Millisecond {
		t.Errorf("p50 = %v", p)
	}
	if p := s.Percentile(99); p != 99*time.Millisecond {
		t.Errorf("p99 = %v", p)
	}
	if p := s.Percentile(100); p != 100*time.Millisecond {
		t.Errorf("p100 = %v", p)
	}
	var total Stats
	total.Add(s)
	total.Add(Stats{POSTs: 2, Status: map[int]int{200: 2}})
	if total.POSTs != 2 || total.Status[200] != 2 || len(total.Latencies) != 100 {
		t.Errorf("Add: %+v", total)
	}
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestUploadRoundTrip sends files of awkward sizes through the strict fake
// server in both methods and both chunk modes, with every fault turned on,
// and checks that the server ends up with exactly the file.
func TestUploadRoundTrip(t *testing.T) {
	const cs = 1000
	sizes := []int{0, 1, cs - 1, cs, cs + 1, 2*cs - 1, 2 * cs, 7*cs + 123}
	for _, method := range []Method{Multipart, Octet} {
		for _, force := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/force=%v", method, force), func(t *testing.T) {
				t.Parallel()
				f, srv := newFake(t)
				c := &Client{BaseURL: srv.URL}
				for i, size := range sizes {
					data := randomBytes(uint64(i), size)
					opts := Options{
						ChunkSize: cs, ForceChunkSize: force, Method: method,
						TestChunks: i%2 == 0, Shuffle: true, Duplicates: 0.4, AbortFraction: 0.4,
						Seed: uint64(i), Simultaneous: 4,
						ExtraFields: map[string]string{"note": "x y"},
					}
					name := fmt.Sprintf("file %d.bin", i)
					st, err := c.Upload(context.Background(), opts, bytes.NewReader(data), int64(size), name)
					if err != nil {
						t.Fatalf("size %d: %v", size, err)
					}
					g, _ := NewGeometry(opts, int64(size), name)
					if got := f.assembled(g.Identifier, g.TotalChunks); !bytes.Equal(got, data) {
						t.Fatalf("size %d: server holds %d bytes that differ from the file", size, len(got))
					}
					all := make([]int, g.TotalChunks)
					for n := range all {
						all[n] = n + 1
					}
					if !slices.Equal(st.Posted, all) {
						t.Errorf("size %d: posted %v", size, st.Posted)
					}
					if st.AbortAccepted != 0 || st.Retries != 0 || st.NetErrors != 0 {
						t.Errorf("size %d: stats %+v", size, st)
					}
					// The fake answers a truncated body with 400, and the
					// client reads that answer back.
					if st.AbortStatus[400] != st.Aborted || len(st.AbortStatus) > 1 {
						t.Errorf("size %d: %d aborted, answers %v", size, st.Aborted, st.AbortStatus)
					}
					if opts.TestChunks && st.GETs != g.TotalChunks {
						t.Errorf("size %d: %d GETs for %d chunks", size, st.GETs, g.TotalChunks)
					}
					if st.POSTs < g.TotalChunks+st.Aborted || len(st.Latencies) != st.POSTs-st.Aborted {
						t.Errorf("size %d: %d POSTs, %d aborted, %d latencies", size, st.POSTs, st.Aborted, len(st.Latencies))
					}
				}
				// Every injected abort reached the server as a body cut short
				// (an empty octet body cannot be cut, so none is injected).
				var aborted int
				for i, size := range sizes {
					opts := Options{ChunkSize: cs, ForceChunkSize: force, Method: method, AbortFraction: 0.4, Duplicates: 0.4, Seed: uint64(i), Shuffle: true}
					g, _ := NewGeometry(opts, int64(size), "x")
					plans, _ := makePlans(g, opts)
					for _, p := range plans {
						if s, e := g.Bounds(p.n); p.abort && (method == Multipart || e > s) {
							aborted++
						}
					}
				}
				if f.truncated != aborted || aborted == 0 {
					t.Errorf("server saw %d truncated bodies, client injected %d", f.truncated, aborted)
				}
			})
		}
	}
}

func TestMultipartFraming(t *testing.T) {
	f, srv := newFake(t)
	c := &Client{BaseURL: srv.URL, Header: http.Header{"X-Test": {"h"}}}
	data := randomBytes(9, 2500)
	opts := Options{ChunkSize: 1000, ExtraFields: map[string]string{"zeta": "1", "alpha": "2"}}
	if _, err := c.Upload(context.Background(), opts, bytes.NewReader(data), 2500, `we"ird.bin`); err != nil {
		t.Fatal(err)
	}
	want := []string{"alpha", "zeta", "flowChunkNumber", "flowChunkSize", "flowCurrentChunkSize", "flowTotalSize",
		"flowIdentifier", "flowFilename", "flowRelativePath", "flowTotalChunks", "file"}
	if len(f.forms) != 2 {
		t.Fatalf("%d multipart POSTs", len(f.forms))
	}
	for _, names := range f.forms {
		if !slices.Equal(names, want) {
			t.Errorf("parts %v, want %v", names, want)
		}
	}
	for _, h := range f.fileHeaders {
		if h["content-type"] != "application/octet-stream" || !strings.Contains(h["disposition"], `filename="we%22ird.bin"`) {
			t.Errorf("file part headers %v", h)
		}
	}
	for _, h := range f.headers {
		if h != "h" {
			t.Errorf("request without the client's header")
		}
	}
}

func TestOctetQuery(t *testing.T) {
	f, srv := newFake(t)
	c := &Client{BaseURL: srv.URL}
	opts := Options{ChunkSize: 10, Method: Octet, TestChunks: true, ExtraFields: map[string]string{"k": "a b"}}
	if _, err := c.Upload(context.Background(), opts, bytes.NewReader(randomBytes(1, 5)), 5, "x y.txt"); err != nil {
		t.Fatal(err)
	}
	want := "k=a%20b&flowChunkNumber=1&flowChunkSize=10&flowCurrentChunkSize=5&flowTotalSize=5" +
		"&flowIdentifier=5-xytxt&flowFilename=x%20y.txt&flowRelativePath=x%20y.txt&flowTotalChunks=1"
	if len(f.rawQueries) != 2 { // the test GET, then the POST
		t.Fatalf("queries %v", f.rawQueries)
	}
	for _, q := range f.rawQueries {
		if q != want {
			t.Errorf("query\n%s\nwant\n%s", q, want)
		}
	}
}

func TestTestChunksSkipsPresent(t *testing.T) {
	f, srv := newFake(t)
	c := &Client{BaseURL: srv.URL}
	data := randomBytes(3, 5000)
	opts := Options{ChunkSize: 1000, TestChunks: true}
	if _, err := c.Upload(context.Background(), Options{ChunkSize: 1000, Chunks: []int{1, 3}}, bytes.NewReader(data), 5000, "d"); err != nil {
		t.Fatal(err)
	}
	st, err := c.Upload(context.Background(), opts, bytes.NewReader(data), 5000, "d")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(st.Present, []int{1, 3}) || !slices.Equal(st.Posted, []int{2, 4, 5}) || st.POSTs != 3 || st.GETs != 5 {
		t.Errorf("stats %+v", st)
	}
	if !bytes.Equal(f.assembled("5000-d", 5), data) {
		t.Error("content differs")
	}
}

func TestStatusCodes(t *testing.T) {
	data := randomBytes(4, 3000)
	run := func(t *testing.T, opts Options, getStatus func(int) int, postFail func(n, attempt int) int) (Stats, error) {
		f, srv := newFake(t)
		f.getStatus, f.postFail = getStatus, postFail
		c := &Client{BaseURL: srv.URL}
		opts.ChunkSize = 1000
		return c.Upload(context.Background(), opts, bytes.NewReader(data), 3000, "s")
	}
	t.Run("transient POST retried", func(t *testing.T) {
		st, err := run(t, Options{MaxRetries: 2, RetryInterval: time.Millisecond}, nil, func(n, a int) int {
			if n == 2 && a <= 2 {
				return 503
			}
			return 0
		})
		if err != nil || st.Retries != 2 || st.Status[503] != 2 || st.POSTs != 5 {
			t.Errorf("err %v, stats %+v", err, st)
		}
	})
	t.Run("retries used up", func(t *testing.T) {
		_, err := run(t, Options{MaxRetries: 1}, nil, func(n, a int) int {
			if n == 2 {
				return 503
			}
			return 0
		})
		var ce *ChunkError
		if !errors.As(err, &ce) || ce.Status != 503 || ce.Chunk != 2 {
			t.Errorf("err %v", err)
		}
	})
	for _, code := range []int{404, 413, 415, 500, 501} {
		t.Run(fmt.Sprintf("permanent %d", code), func(t *testing.T) {
			st, err := run(t, Options{MaxRetries: 5}, nil, func(n, a int) int {
				if n == 1 {
					return code
				}
				return 0
			})
			var ce *ChunkError
			if !errors.As(err, &ce) || ce.Status != code || st.Retries != 0 {
				t.Errorf("err %v, stats %+v", err, st)
			}
		})
	}
	t.Run("test GET permanent error fails like flow.js", func(t *testing.T) {
		st, err := run(t, Options{TestChunks: true, Simultaneous: 1}, func(int) int { return 500 }, nil)
		var ce *ChunkError
		if !errors.As(err, &ce) || ce.Method != http.MethodGet || st.POSTs != 0 {
			t.Errorf("err %v, stats %+v", err, st)
		}
	})
	t.Run("test GET other status means send", func(t *testing.T) {
		st, err := run(t, Options{TestChunks: true}, func(n int) int { return []int{204, 503, 302}[n-1] }, nil)
		if err != nil || st.POSTs != 3 || len(st.Present) != 0 {
			t.Errorf("err %v, stats %+v", err, st)
		}
	})
	t.Run("test GET 201 and 202 mean present", func(t *testing.T) {
		st, err := run(t, Options{TestChunks: true}, func(n int) int { return []int{201, 202, 0}[n-1] }, nil)
		if err != nil || st.POSTs != 1 || !slices.Equal(st.Present, []int{1, 2}) {
			t.Errorf("err %v, stats %+v", err, st)
		}
	})
}

func TestUploadCancelled(t *testing.T) {
	_, srv := newFake(t)
	c := &Client{BaseURL: srv.URL}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var acks atomic.Int32
	opts := Options{ChunkSize: 100, Simultaneous: 1, OnAck: func(int, bool) {
		if acks.Add(1) == 3 {
			cancel()
		}
	}}
	st, err := c.Upload(ctx, opts, bytes.NewReader(randomBytes(5, 2000)), 2000, "c")
	if !errors.Is(err, context.Canceled) || !slices.Equal(st.Posted, []int{1, 2, 3}) {
		t.Errorf("err %v, posted %v", err, st.Posted)
	}
}

func TestStatusAndWaitComplete(t *testing.T) {
	f, srv := newFake(t)
	c := &Client{BaseURL: srv.URL}
	opts := Options{ChunkSize: 10}
	st, err := c.Status(context.Background(), opts, 25, "w.bin")
	if err != nil || st.State != "unknown" {
		t.Fatalf("status %+v, %v", st, err)
	}
	if len(f.statusQueries) != 1 || strings.Contains(f.statusQueries[0], FieldChunkNumber) ||
		!strings.Contains(f.statusQueries[0], "flowIdentifier=25-wbin") {
		t.Errorf("status query %v", f.statusQueries)
	}
	f.statusSeq = []Status{{State: "receiving"}, {State: "assembling"}, {State: "complete", Location: "files/a/w.bin", Size: 25}}
	st, err = c.WaitComplete(context.Background(), opts, 25, "w.bin", time.Millisecond)
	if err != nil || st.State != "complete" || st.Location != "files/a/w.bin" || st.Size != 25 {
		t.Errorf("wait %+v, %v", st, err)
	}
	f.statusSeq = []Status{{State: "failed", Error: "boom"}}
	if _, err = c.WaitComplete(context.Background(), opts, 25, "w.bin", time.Millisecond); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("failed upload: %v", err)
	}
	f.statusSeq = []Status{{State: "receiving", Received: 1, Total: 2}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err = c.WaitComplete(ctx, opts, 25, "w.bin", time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("wait past deadline: %v", err)
	}
}

func TestBadOptions(t *testing.T) {
	c := &Client{BaseURL: "http://127.0.0.1:1"}
	for _, opts := range []Options{
		{Method: "form"}, {Duplicates: 2}, {AbortFraction: -1}, {Chunks: []int{0}}, {Chunks: []int{1, 1}}, {ChunkSize: -1},
	} {
		if _, err := c.Upload(context.Background(), opts, bytes.NewReader(nil), 10, "x"); err == nil {
			t.Errorf("options %+v accepted", opts)
		}
	}
}
