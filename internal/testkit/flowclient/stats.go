package flowclient

import (
	"slices"
	"sync"
	"time"
)

// Stats is what an upload did on the wire.
type Stats struct {
	GETs  int // test GETs sent
	POSTs int // chunk POSTs (or, with Direct, PUTs) sent: retries, duplicates and injected aborts included
	// URLRequests counts the requests for chunk URLs (Direct).
	URLRequests int
	// BytesSent counts the chunk bytes of POSTs that got a response
	// (multipart framing and cut-off attempts left out).
	BytesSent int64
	// Latencies has one entry per successful chunk POST: from sending the
	// request to the end of the response.
	Latencies []time.Duration
	// Status counts the HTTP status codes of every response, GETs and POSTs.
	Status map[int]int
	// NetErrors counts requests that got no response (refused, reset...),
	// injected aborts left out.
	NetErrors int
	// Retries counts POSTs sent again after a failed attempt.
	Retries int
	// Aborted counts injected cut-off POSTs; AbortAccepted those of them the
	// server nevertheless answered with a success status (a server bug: it took
	// a truncated body for a chunk). AbortStatus counts what the server
	// answered to them (nothing at all is not counted); they are not in Status.
	Aborted, AbortAccepted int
	AbortStatus            map[int]int
	// Present lists the chunks the test GET reported as already there, which
	// were therefore not sent; Posted the chunks a POST was acknowledged for.
	// Both are sorted and without repeats.
	Present, Posted []int
	// Duration is the wall time of the Upload call.
	Duration time.Duration
}

// Percentile returns the p-th percentile (0 < p <= 100, nearest rank) of the
// chunk POST latencies, or 0 if there are none.
func (s Stats) Percentile(p float64) time.Duration {
	if len(s.Latencies) == 0 {
		return 0
	}
	l := slices.Clone(s.Latencies)
	slices.Sort(l)
	rank := int(p/100*float64(len(l))+0.999999999) - 1
	return l[min(max(rank, 0), len(l)-1)]
}

// Add merges o into s, for totals over many uploads. Durations add up too;
// a benchmark that runs uploads in parallel should time the whole run itself.
func (s *Stats) Add(o Stats) {
	s.GETs += o.GETs
	s.POSTs += o.POSTs
	s.URLRequests += o.URLRequests
	s.BytesSent += o.BytesSent
	s.Latencies = append(s.Latencies, o.Latencies...)
	if s.Status == nil {
		s.Status = make(map[int]int)
	}
	for k, v := range o.Status {
		s.Status[k] += v
	}
	s.NetErrors += o.NetErrors
	s.Retries += o.Retries
	s.Aborted += o.Aborted
	if s.AbortStatus == nil {
		s.AbortStatus = make(map[int]int)
	}
	for k, v := range o.AbortStatus {
		s.AbortStatus[k] += v
	}
	s.AbortAccepted += o.AbortAccepted
	s.Duration += o.Duration
	// Present and Posted are chunk numbers of one file: they do not add up
	// across files, so a merged Stats leaves them alone.
}

// collector fills a Stats from many goroutines.
type collector struct {
	mu sync.Mutex
	s  Stats
}

func newCollector() *collector {
	return &collector{s: Stats{Status: make(map[int]int), AbortStatus: make(map[int]int)}}
}

func (c *collector) get(code int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s.GETs++
	c.code(code)
}

func (c *collector) post(code int, responded bool, size int64, lat time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s.POSTs++
	c.code(code)
	if responded {
		c.s.BytesSent += size
		if isSuccess(code) {
			c.s.Latencies = append(c.s.Latencies, lat)
		}
	}
}

func (c *collector) aborted(code int, accepted bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s.POSTs++
	c.s.Aborted++
	if code != 0 {
		c.s.AbortStatus[code]++
	}
	if accepted {
		c.s.AbortAccepted++
	}
}

// code records a response status, or a network error as 0.
func (c *collector) code(code int) {
	if code == 0 {
		c.s.NetErrors++
		return
	}
	c.s.Status[code]++
}

func (c *collector) urlRequest(code int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s.URLRequests++
	c.code(code)
}

func (c *collector) retry() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s.Retries++
}

func (c *collector) present(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s.Present = append(c.s.Present, n)
}

func (c *collector) posted(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s.Posted = append(c.s.Posted, n)
}

// finish tidies the chunk lists once every goroutine is done.
func (c *collector) finish() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s.Present = sortedUnique(c.s.Present)
	c.s.Posted = sortedUnique(c.s.Posted)
}
