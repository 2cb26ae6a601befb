package httpapi_test

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowgate/flowgate/shared/httpapi"
	"github.com/flowgate/flowgate/shared/upload"
)

// clock is a settable time for the uploads tracker.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestUploadsPerNamespace: with at most two uploads in progress per
// namespace, a third new one is refused with 429, Retry-After and a JSON
// message, and stores nothing; chunks of uploads under way always pass;
// another namespace has its own count; a finished upload, one idle past the
// window and one whose only request was refused stop counting; an upload the
// server already knows passes even when the namespace is full.
func TestUploadsPerNamespace(t *testing.T) {
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	uploads := &httpapi.Uploads{Max: 2, Window: time.Minute, Now: clk.now}
	e := newEnv(t, func(h *httpapi.Handler) {
		h.Namespace = httpapi.HeaderNamespace("X-User")
		h.Service.Admission = uploads
	})
	alice := []string{"X-User", "alice"}
	file := func(seed int64) file { return newFile(seed, 3000, 1000, true) } // 3 chunks
	a, b, c, d := file(31), file(32), file(33), file(34)

	wantStatus(t, e.octet(a.params(1), a.chunk(1), alice...), 200, "")
	wantStatus(t, e.octet(b.params(1), b.chunk(1), alice...), 200, "")
	if n := uploads.InProgress(); n != 2 {
		t.Fatalf("in progress %d, want 2", n)
	}
	r := e.octet(c.params(1), c.chunk(1), alice...)
	wantStatus(t, r, 429, "2 uploads are already in progress")
	if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
		t.Fatalf("Retry-After %q, want 1..60 seconds", r.header.Get("Retry-After"))
	}
	if st := e.status(c, alice...); st.State != upload.StateUnknown {
		t.Fatalf("a refused upload was recorded: %+v", st)
	}
	// The test GET and status are never limited.
	wantStatus(t, e.get("/upload", c.params(1), alice...), 204, "")
	// Uploads under way go on.
	wantStatus(t, e.octet(a.params(2), a.chunk(2), alice...), 200, "")
	wantStatus(t, e.octet(b.params(2), b.chunk(2), alice...), 200, "")
	// Bob has a count of his own.
	wantStatus(t, e.octet(c.params(1), c.chunk(1), "X-User", "bob"), 200, "")

	// A finishes: its place is free.
	wantStatus(t, e.octet(a.params(3), a.chunk(3), alice...), 200, "")
	if n := uploads.InProgress(); n != 2 { // alice's b, bob's c
		t.Fatalf("in progress after a finished: %d, want 2", n)
	}
	// A refused first request does not take the place: d's body is short.
	wantStatus(t, e.octet(d.params(1), d.chunk(1)[:10], alice...), 400, "")
	wantStatus(t, e.octet(c.params(1), c.chunk(1), alice...), 200, "")
	wantStatus(t, e.octet(d.params(1), d.chunk(1), alice...), 429, "in progress")

	// B and C (alice's) go idle past the window: they no longer count...
	clk.add(61 * time.Second)
	if n := uploads.InProgress(); n != 0 {
		t.Fatalf("in progress after the window: %d, want 0", n)
	}
	wantStatus(t, e.octet(d.params(1), d.chunk(1), alice...), 200, "")
	e2 := newFile(35, 3000, 1000, true)
	wantStatus(t, e.octet(e2.params(1), e2.chunk(1), alice...), 200, "")
	wantStatus(t, e.octet(newFile(36, 3000, 1000, true).params(1), newFile(36, 3000, 1000, true).chunk(1), alice...), 429, "")
	// ...but resuming them passes even now that d and e2 fill the namespace:
	// the server knows them.
	wantStatus(t, e.octet(b.params(3), b.chunk(3), alice...), 200, "")
	wantStatus(t, e.octet(c.params(2), c.chunk(2), alice...), 200, "")
	if got := e.finished(b, alice...); sum(got) != sum(b.data) {
		t.Fatal("b's file differs")
	}
	// A late duplicate of a finished upload passes and does not count.
	before := uploads.InProgress()
	wantStatus(t, e.octet(a.params(1), a.chunk(1), alice...), 200, "")
	if n := uploads.InProgress(); n != before {
		t.Fatalf("a duplicate of a finished upload counts: %d, want %d", n, before)
	}
}

// TestUploadsNoLimit: Max 0 only counts.
func TestUploadsNoLimit(t *testing.T) {
	uploads := &httpapi.Uploads{}
	e := newEnv(t, func(h *httpapi.Handler) { h.Service.Admission = uploads })
	for i := range 5 {
		f := newFile(int64(40+i), 2000, 1000, true)
		wantStatus(t, e.octet(f.params(1), f.chunk(1)), 200, "")
	}
	if n := uploads.InProgress(); n != 5 {
		t.Fatalf("in progress %d, want 5", n)
	}
}

// TestConcurrentNewUploads: many new uploads racing for two places get
// exactly two.
func TestConcurrentNewUploads(t *testing.T) {
	uploads := &httpapi.Uploads{Max: 2}
	e := newEnv(t, func(h *httpapi.Handler) { h.Service.Admission = uploads })
	var wg sync.WaitGroup
	codes := make([]int, 12)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := newFile(int64(50+i), 2000, 1000, true)
			codes[i] = e.octet(f.params(1), f.chunk(1)).status
		}()
	}
	wg.Wait()
	ok, refused := 0, 0
	for _, c := range codes {
		switch c {
		case 200:
			ok++
		case 429:
			refused++
		}
	}
	if ok != 2 || refused != 10 {
		t.Fatalf("codes %v: %d taken, %d refused; want 2 and 10", codes, ok, refused)
	}
}

// TestFieldLimitsConfigurable: MaxFieldBytes and MaxParts replace the
// defaults; over either is a 400 that names the problem, under is fine.
func TestFieldLimitsConfigurable(t *testing.T) {
	e := newEnv(t, func(h *httpapi.Handler) { h.MaxFieldBytes, h.MaxParts = 2000, 12 })
	f := newFile(60, 1000, 1000, true)
	withField := func(v string) []part {
		return append([]part{{name: "note", value: v}}, flowParts(f.params(1), f.chunk(1))...)
	}
	wantStatus(t, e.multipart(withField(strings.Repeat("x", 2001)), nil), 400, "too long")
	var many []part
	for i := range 5 { // 5 + 8 flow fields + file = 14 parts
		many = append(many, part{name: fmt.Sprintf("x%d", i), value: "1"})
	}
	wantStatus(t, e.multipart(append(many, flowParts(f.params(1), f.chunk(1))...), nil), 400, "too many")
	wantStatus(t, e.multipart(withField(strings.Repeat("x", 2000)), nil), 200, "")

	// Larger than the defaults works when configured.
	big := newEnv(t, func(h *httpapi.Handler) { h.MaxFieldBytes = 16 << 10 })
	g := newFile(61, 1000, 1000, true)
	wantStatus(t, big.multipart(append([]part{{name: "meta", value: strings.Repeat("m", 10<<10)}}, flowParts(g.params(1), g.chunk(1))...), nil), 200, "")
}
