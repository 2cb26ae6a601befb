// Package flowclient is a Go client that uploads files the way flow.js 2.14.1
// does: the same chunk geometry, the same request fields in the same order,
// both body methods (multipart and octet), test GETs before POSTs, and the
// same reading of status codes. It adds the faults a real network and real
// users produce, on demand and reproducibly: random chunk order, duplicate
// and concurrent duplicate chunks, and requests cut off mid-body.
//
// It streams: a chunk goes out through an io.SectionReader of the source, so
// memory stays small whatever the file or chunk size. It is used by the
// end-to-end tests and is meant for load benchmarks as well.
package flowclient

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Method is how a chunk POST carries its data (flow.js's `method` option).
type Method string

const (
	// Multipart is multipart/form-data: the fields, then a `file` part.
	Multipart Method = "multipart"
	// Octet is the raw chunk as the body, with the fields in the query string.
	Octet Method = "octet"
)

// Client sends requests to one flowgate server (or any flow.js backend).
type Client struct {
	// BaseURL is the server's root, e.g. "http://127.0.0.1:8080".
	BaseURL string
	// Target is the path of the upload endpoint (flow.js `target`), "/upload"
	// if empty. Status requests go to Target + "/status".
	Target string
	// HTTP sends the requests; a client with a pooled, proxy-less transport
	// if nil. Give it no Timeout: contexts bound every call.
	HTTP *http.Client
	// Header is added to every request (flow.js `headers`), e.g. an
	// Authorization or a namespace header.
	Header http.Header
}

// Options are the flow.js options that shape an upload, plus fault injection.
// The zero value means flow.js's defaults except for TestChunks (false here,
// true in flow.js) and Simultaneous (see below).
type Options struct {
	// ChunkSize in bytes; DefaultChunkSize if zero.
	ChunkSize int64
	// ForceChunkSize: every chunk is at most ChunkSize (the count rounds up);
	// without it the last chunk carries the remainder, up to 2*ChunkSize-1.
	ForceChunkSize bool
	// Simultaneous is how many chunks of this file are in flight at once
	// (flow.js simultaneousUploads); 3 if zero. A concurrent duplicate is an
	// extra request on top.
	Simultaneous int
	// TestChunks sends a GET for each chunk first and skips the POST when the
	// server says the chunk is there.
	TestChunks bool
	// Method is Multipart (default) or Octet.
	Method Method
	// Identifier is flowIdentifier; DefaultIdentifier(size, relative path) if empty.
	Identifier string
	// RelativePath is flowRelativePath; the file name if empty.
	RelativePath string
	// FileParameterName is the name of the multipart file part; "file" if empty.
	FileParameterName string
	// FileType is the file's MIME type (a browser's File.type). Empty, like an
	// unknown type in a browser, sends the multipart part as
	// application/octet-stream and an octet body without Content-Type.
	FileType string
	// ExtraFields are sent along with the flow fields, as form fields or query
	// parameters (flow.js `query`).
	ExtraFields map[string]string
	// ChunkSHA256 sends each chunk with the SHA-256 of its bytes
	// (checksumSha256, base64), as the demo page does; the chunk is read
	// once more to compute it.
	ChunkSHA256 bool

	// MaxRetries is how many times a chunk POST that failed with neither a
	// success nor a permanent status (a 503, a network error) is sent again
	// (flow.js maxChunkRetries, default 0: fail at once).
	MaxRetries int
	// RetryInterval is the pause before a retry (flow.js chunkRetryInterval).
	RetryInterval time.Duration

	// Chunks, if not nil, limits the upload to these chunk numbers (1-based),
	// for uploading part of a file now and the rest later.
	Chunks []int
	// Shuffle sends chunks in a random order instead of first to last.
	Shuffle bool
	// Duplicates is the fraction of chunks sent twice: half of them with both
	// requests in flight at the same time, half one after the other.
	Duplicates float64
	// AbortFraction is the fraction of chunks whose first POST is cut off
	// mid-body (the body ends early and the client shuts the connection)
	// before the chunk is sent properly. These injected faults go over a
	// connection of their own, not through HTTP, and do not count against
	// MaxRetries.
	AbortFraction float64
	// Seed makes Shuffle, Duplicates and AbortFraction reproducible.
	Seed uint64

	// Direct sends the chunks the way the demo page does on the direct
	// data path (direct.go): it asks the server for a URL per chunk
	// (POST /upload/urls, DirectBatch chunks at a time, each with its
	// CRC-64/NVME), then PUTs each chunk to its URL with the URL's headers;
	// a chunk the answer says is present is tested first, the others are
	// not (TestChunks then only applies to those). Method is ignored: a
	// PUT's body is the chunk (octet).
	Direct bool
	// DirectBatch is how many chunks one URL request asks for (16 if 0).
	DirectBatch int

	// OnAck, if set, is called once per chunk, from the goroutine that sent it,
	// when every request for the chunk has succeeded: posted is false when the
	// test GET found the chunk already there. Calls may be concurrent.
	OnAck func(chunk int, posted bool)
}

// ChunkError is a chunk request that failed for good: a permanent status
// (404, 413, 415, 500, 501), or retries used up.
type ChunkError struct {
	Chunk  int
	Method string // GET or POST
	Status int    // 0 when no response came back
	Body   string // the start of the response body
	Err    error  // the network error, when Status is 0
}

func (e *ChunkError) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("flowclient: %s chunk %d: %v", e.Method, e.Chunk, e.Err)
	}
	return fmt.Sprintf("flowclient: %s chunk %d: status %d: %s", e.Method, e.Chunk, e.Status, strings.TrimSpace(e.Body))
}

func (e *ChunkError) Unwrap() error { return e.Err }

// errInjectedAbort is what the body of a deliberately cut-off request fails with.
var errInjectedAbort = errors.New("flowclient: injected abort")

// flow.js's defaults for successStatuses and permanentErrors.
func isSuccess(code int) bool { return code == 200 || code == 201 || code == 202 }
func isPermanent(code int) bool {
	return code == 404 || code == 413 || code == 415 || code == 500 || code == 501
}

var defaultHTTP = &http.Client{Transport: &http.Transport{
	Proxy:               nil, // tests and benchmarks talk to 127.0.0.1; never via a proxy
	DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
	MaxIdleConns:        256,
	MaxIdleConnsPerHost: 64,
	IdleConnTimeout:     30 * time.Second,
}}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return defaultHTTP
}

func (c *Client) target() string {
	t := c.Target
	if t == "" {
		t = "/upload"
	}
	return strings.TrimRight(c.BaseURL, "/") + t
}

// chunkPlan is what will be done to one chunk, decided up front from the seed
// so that a run is reproducible however the goroutines interleave.
type chunkPlan struct {
	n             int
	dup           bool    // send twice
	dupConcurrent bool    // both sends in flight together
	abort         bool    // cut the first attempt off
	cut           float64 // where, as a fraction of the request body
}

// Upload sends the file src of size bytes, named name, as flow.js would. It
// returns when every chunk is acknowledged, when a chunk fails for good (a
// *ChunkError), or when ctx ends. The Stats are filled in either way, so a
// caller can tell which chunks the server acknowledged before a failure.
//
// A nil error means the server took every chunk, not that the file is
// assembled: use WaitComplete for that.
func (c *Client) Upload(ctx context.Context, opts Options, src io.ReaderAt, size int64, name string) (s Stats, err error) {
	st := newCollector()
	began := time.Now()
	defer func() { s.Duration = time.Since(began) }()

	g, err := NewGeometry(opts, size, name)
	if err != nil {
		return st.s, err
	}
	if opts.Method == "" {
		opts.Method = Multipart
	}
	if opts.Method != Multipart && opts.Method != Octet {
		return st.s, fmt.Errorf("flowclient: unknown method %q", opts.Method)
	}
	if opts.Simultaneous <= 0 {
		opts.Simultaneous = 3
	}
	if opts.FileParameterName == "" {
		opts.FileParameterName = "file"
	}
	if opts.Duplicates < 0 || opts.Duplicates > 1 || opts.AbortFraction < 0 || opts.AbortFraction > 1 {
		return st.s, errors.New("flowclient: Duplicates and AbortFraction must be between 0 and 1")
	}
	plans, err := makePlans(g, opts)
	if err != nil {
		return st.s, err
	}

	u := &uploader{c: c, opts: opts, g: g, src: src, st: st}
	if opts.Direct {
		u.direct = newURLCache(plans, opts.DirectBatch)
	}
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	queue := make(chan chunkPlan, len(plans))
	for _, p := range plans {
		queue <- p
	}
	close(queue)

	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
		done     atomic.Int64
	)
	for range min(opts.Simultaneous, len(plans)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range queue {
				if ctx.Err() != nil {
					return
				}
				if err := u.chunk(ctx, p); err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	st.finish()
	if firstErr != nil {
		return st.s, firstErr
	}
	if int(done.Load()) != len(plans) {
		// The caller's context ended between two chunks.
		return st.s, parent.Err()
	}
	return st.s, nil
}

func makePlans(g Geometry, opts Options) ([]chunkPlan, error) {
	nums := opts.Chunks
	if nums == nil {
		nums = make([]int, g.TotalChunks)
		for i := range nums {
			nums[i] = i + 1
		}
	}
	seen := make(map[int]bool, len(nums))
	for _, n := range nums {
		if n < 1 || n > g.TotalChunks {
			return nil, fmt.Errorf("flowclient: chunk %d is not between 1 and %d", n, g.TotalChunks)
		}
		if seen[n] {
			return nil, fmt.Errorf("flowclient: chunk %d listed twice", n)
		}
		seen[n] = true
	}
	rng := rand.New(rand.NewPCG(opts.Seed, 0x9e3779b97f4a7c15))
	plans := make([]chunkPlan, len(nums))
	for i, n := range nums {
		// Draw every number whether used or not, so that changing one
		// fraction does not reshuffle the other decisions.
		dup, conc, abort, cut := rng.Float64(), rng.IntN(2), rng.Float64(), rng.Float64()
		plans[i] = chunkPlan{
			n:             n,
			dup:           dup < opts.Duplicates,
			dupConcurrent: conc == 1,
			abort:         abort < opts.AbortFraction,
			cut:           cut,
		}
	}
	if opts.Shuffle {
		rng.Shuffle(len(plans), func(i, j int) { plans[i], plans[j] = plans[j], plans[i] })
	}
	return plans, nil
}

type uploader struct {
	c      *Client
	opts   Options
	g      Geometry
	src    io.ReaderAt
	st     *collector
	direct *urlCache // Options.Direct only
}

// chunk does everything for one chunk: the test GET, then the POST(s).
func (u *uploader) chunk(ctx context.Context, p chunkPlan) error {
	if u.direct != nil {
		return u.directChunk(ctx, p)
	}
	if u.opts.TestChunks {
		present, err := u.test(ctx, p.n)
		if err != nil {
			return err
		}
		if present {
			u.st.present(p.n)
			if u.opts.OnAck != nil {
				u.opts.OnAck(p.n, false)
			}
			return nil
		}
	}
	var err error
	switch {
	case p.dup && p.dupConcurrent:
		// Both copies in flight together: the server sees the same chunk
		// twice at once and must count it once.
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = u.send(ctx, p.n, p.abort && i == 0, p.cut)
			}()
		}
		wg.Wait()
		err = errors.Join(errs...)
	case p.dup:
		if err = u.send(ctx, p.n, p.abort, p.cut); err == nil {
			err = u.send(ctx, p.n, false, 0)
		}
	default:
		err = u.send(ctx, p.n, p.abort, p.cut)
	}
	if err != nil {
		return err
	}
	if u.opts.OnAck != nil {
		u.opts.OnAck(p.n, true)
	}
	return nil
}

// test is FlowChunk.test and testHandler: a success status means the chunk is
// there; a permanent error fails the upload; anything else, including no
// response at all, means "send it".
func (u *uploader) test(ctx context.Context, n int) (present bool, err error) {
	url := withQuery(u.c.target(), encodeQuery(withExtras(u.opts.ExtraFields, u.g.Params(n))))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, err
	}
	u.c.addHeaders(req)
	code, body, _, err := u.c.do(req)
	u.st.get(code)
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	switch {
	case err != nil:
		return false, nil
	case isSuccess(code):
		return true, nil
	case isPermanent(code):
		return false, &ChunkError{Chunk: n, Method: http.MethodGet, Status: code, Body: body}
	}
	return false, nil
}

// send POSTs chunk n until it succeeds, as FlowChunk.send and doneHandler do.
// If inject is set, a first attempt is cut off at fraction cut of its body.
func (u *uploader) send(ctx context.Context, n int, inject bool, cut float64) error {
	if inject {
		if err := u.abortedPost(ctx, n, cut); err != nil {
			return err
		}
	}
	_, size := u.chunkRange(n)
	for retries := 0; ; retries++ {
		req, _, err := u.newPost(ctx, n)
		if err != nil {
			return err
		}
		code, body, lat, err := u.c.do(req)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		u.st.post(code, err == nil, size, lat)
		switch {
		case err == nil && isSuccess(code):
			u.st.posted(n)
			return nil
		case err == nil && isPermanent(code):
			return &ChunkError{Chunk: n, Method: http.MethodPost, Status: code, Body: body}
		case retries >= u.opts.MaxRetries:
			return &ChunkError{Chunk: n, Method: http.MethodPost, Status: code, Body: body, Err: err}
		}
		u.st.retry()
		if u.opts.RetryInterval > 0 {
			t := time.NewTimer(u.opts.RetryInterval)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
	}
}

// abortedPost sends a POST whose body stops early: the request line, the
// headers and the first part of the body go out, then the client shuts its
// side of the connection, as a browser whose tab closed or whose network
// dropped would. The server is left with a body shorter than its
// Content-Length and must not take it as a chunk; whatever it answers is read
// back, so that a success (a server bug) shows in Stats.AbortAccepted.
func (u *uploader) abortedPost(ctx context.Context, n int, cut float64) error {
	req, length, err := u.newPost(ctx, n)
	if err != nil {
		return err
	}
	if length == 0 {
		// An empty octet body cannot be cut short; nothing to inject.
		return nil
	}
	at := min(int64(cut*float64(length)), length-1)
	code := u.c.cutOff(ctx, req, at)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	u.st.aborted(code, isSuccess(code))
	return nil
}

// cutOff writes req on a connection of its own with only the first at bytes
// of its body, half-closes the connection and returns the status the server
// answers with, or 0 if it answers nothing. A connection of its own because
// http.Transport buffers what it writes and drops the buffer when a body
// fails, so it could not say how much reached the server.
func (c *Client) cutOff(ctx context.Context, req *http.Request, at int64) int {
	host := req.URL.Host
	if req.URL.Port() == "" {
		port := "80"
		if req.URL.Scheme == "https" {
			port = "443"
		}
		host = net.JoinHostPort(req.URL.Hostname(), port)
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	raw, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return 0
	}
	defer raw.Close()
	// Whatever happens below ends when ctx does, or after a bounded time.
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	_ = raw.SetDeadline(time.Now().Add(30 * time.Second))

	conn := raw
	if req.URL.Scheme == "https" {
		var cfg *tls.Config
		if t, ok := c.http().Transport.(*http.Transport); ok && t.TLSClientConfig != nil {
			cfg = t.TLSClientConfig.Clone()
		} else {
			cfg = &tls.Config{}
		}
		if cfg.ServerName == "" {
			cfg.ServerName = req.URL.Hostname()
		}
		conn = tls.Client(raw, cfg)
	}

	req.Body = io.NopCloser(&cutReader{r: req.Body, left: at})
	// Request.Write uses a writer that is an io.ByteWriter as it is, so
	// everything it wrote before the body failed is in bw, and the Flush
	// below sends exactly the headers and the first at bytes of the body.
	bw := &byteWriter{w: conn}
	_ = req.Write(bw) // fails with errInjectedAbort, by design
	if bw.Flush() != nil {
		return 0
	}
	switch cw := conn.(type) {
	case *net.TCPConn:
		_ = cw.CloseWrite()
	case *tls.Conn:
		_ = cw.CloseWrite()
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	return resp.StatusCode
}

func (u *uploader) chunkRange(n int) (start, size int64) {
	s, e := u.g.Bounds(n)
	return s, e - s
}

// newPost builds the POST for chunk n, streaming the chunk from the source.
// It returns the length of the body, which is always known: browsers send a
// Content-Length, and so does this client.
func (u *uploader) newPost(ctx context.Context, n int) (*http.Request, int64, error) {
	start, size := u.chunkRange(n)
	data := io.NewSectionReader(u.src, start, size)
	fields := withExtras(u.opts.ExtraFields, u.g.Params(n))
	target := u.c.target()
	if u.opts.ChunkSHA256 {
		h := sha256.New()
		if _, err := io.Copy(h, io.NewSectionReader(u.src, start, size)); err != nil {
			return nil, 0, err
		}
		fields = append([]Field{{Name: "checksumSha256", Value: base64.StdEncoding.EncodeToString(h.Sum(nil))}}, fields...)
	}

	var (
		body        io.Reader
		length      int64
		contentType string
	)
	if u.opts.Method == Octet {
		target = withQuery(target, encodeQuery(fields))
		body, length, contentType = data, size, u.opts.FileType
	} else {
		prefix, suffix, ct, err := multipartFrame(fields, u.opts.FileParameterName, u.g.Filename, u.opts.FileType)
		if err != nil {
			return nil, 0, err
		}
		body = io.MultiReader(bytes.NewReader(prefix), data, bytes.NewReader(suffix))
		length = int64(len(prefix)) + size + int64(len(suffix))
		contentType = ct
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, body)
	if err != nil {
		return nil, 0, err
	}
	req.ContentLength = length
	if length == 0 {
		req.Body = http.NoBody
	}
	// No GetBody: a POST whose body went out must never be replayed behind
	// the caller's back; retries are this client's business, counted in Stats.
	req.GetBody = nil
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	u.c.addHeaders(req)
	return req, length, nil
}

// multipartFrame writes what goes around the chunk's bytes in a multipart
// body, as a browser's FormData does: each field as a part, then the file
// part's header (prefix); the closing boundary (suffix). mime/multipart writes
// both, so the framing is standard, and the chunk itself is never copied.
func multipartFrame(fields []Field, fileParam, filename, fileType string) (prefix, suffix []byte, contentType string, err error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, f := range fields {
		if err := mw.WriteField(f.Name, f.Value); err != nil {
			return nil, nil, "", err
		}
	}
	if fileType == "" {
		fileType = "application/octet-stream"
	}
	h := make(textproto.MIMEHeader)
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="%s"; filename="%s"`, escapeFormName(fileParam), escapeFormName(filename)))
	h.Set("Content-Type", fileType)
	if _, err := mw.CreatePart(h); err != nil {
		return nil, nil, "", err
	}
	prefix = bytes.Clone(buf.Bytes())
	buf.Reset()
	if err := mw.Close(); err != nil {
		return nil, nil, "", err
	}
	return prefix, bytes.Clone(buf.Bytes()), mw.FormDataContentType(), nil
}

// escapeFormName escapes a name in Content-Disposition as browsers do (the
// HTML form-data encoding): " as %22, CR as %0D, LF as %0A.
func escapeFormName(s string) string {
	return strings.NewReplacer(`"`, "%22", "\r", "%0D", "\n", "%0A").Replace(s)
}

func (c *Client) addHeaders(req *http.Request) {
	for k, vs := range c.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
}

// do sends req and reads the response: status code, the start of the body,
// and the time from sending to the end of the response.
func (c *Client) do(req *http.Request) (code int, body string, latency time.Duration, err error) {
	began := time.Now()
	resp, err := c.http().Do(req)
	if err != nil {
		return 0, "", time.Since(began), err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	// Drain the rest (bounded) so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b), time.Since(began), nil
}

// byteWriter buffers writes to w. Unlike a bufio.Writer it has no ReadFrom,
// so a failing source never leaves it with a sticky error: what was written
// before the failure can still be flushed.
type byteWriter struct {
	w   io.Writer
	buf []byte
}

func (b *byteWriter) Write(p []byte) (int, error) {
	b.buf = append(b.buf, p...)
	if len(b.buf) >= 32<<10 {
		return len(p), b.Flush()
	}
	return len(p), nil
}

func (b *byteWriter) WriteByte(c byte) error {
	_, err := b.Write([]byte{c})
	return err
}

func (b *byteWriter) Flush() error {
	_, err := b.w.Write(b.buf)
	b.buf = b.buf[:0]
	return err
}

// cutReader yields left bytes of r, then fails.
type cutReader struct {
	r    io.Reader
	left int64
}

func (c *cutReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, errInjectedAbort
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if err == io.EOF {
		// The whole body fit before the cut: still fail, or the request
		// would complete and not be an abort at all.
		err = errInjectedAbort
	}
	return n, err
}

// sortedUnique is used for the chunk lists in Stats.
func sortedUnique(s []int) []int {
	slices.Sort(s)
	return slices.Compact(s)
}
