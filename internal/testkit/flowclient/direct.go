package flowclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/flowgate/flowgate/shared/checksum"
)

// The direct data path (Options.Direct), as the demo page in web/ drives
// flow.js 2.14.1 there: URLs asked for in batches (its preprocess option),
// each chunk PUT to its URL with the fields flow.js appends (method octet)
// and the URL's headers, 412 taken as success (the chunk is there), a URL
// that stopped working (403) asked for again before a retry, S3's 500 and
// 503 retried. The test GET still goes to the API.

// urlsAnswer is POST /upload/urls's answer.
type urlsAnswer struct {
	Resumed bool
	Chunks  []urlAnswer
}

// urlAnswer is one chunk of POST /upload/urls's answer.
type urlAnswer struct {
	Chunk   int               `json:"chunk"`
	Present bool              `json:"present"`
	URL     string            `json:"url"`
	Method  string            `json:"method"`
	Headers map[string]string `json:"headers"`
}

// urlCache fetches the URLs of a batch of chunks once, for every chunk of
// it, and again for one chunk whose URL stopped working.
type urlCache struct {
	mu      sync.Mutex
	batchOf map[int]int // chunk -> batch
	batches [][]int
	once    []sync.Once
	got     map[int]urlAnswer
	errs    []error
	resumed *bool // what the first answer said
}

func newURLCache(plans []chunkPlan, size int) *urlCache {
	if size <= 0 {
		size = 16
	}
	c := &urlCache{batchOf: map[int]int{}, got: map[int]urlAnswer{}}
	for i := 0; i < len(plans); i += size {
		var b []int
		for _, p := range plans[i:min(i+size, len(plans))] {
			c.batchOf[p.n] = len(c.batches)
			b = append(b, p.n)
		}
		c.batches = append(c.batches, b)
	}
	c.once = make([]sync.Once, len(c.batches))
	c.errs = make([]error, len(c.batches))
	return c
}

// url returns chunk n's answer, asking for its batch first if need be, or
// for n alone when fresh is set.
func (u *uploader) url(ctx context.Context, n int, fresh bool) (urlAnswer, error) {
	c := u.direct
	if fresh {
		got, err := u.askURLs(ctx, []int{n})
		if err != nil {
			return urlAnswer{}, err
		}
		c.mu.Lock()
		c.got[n] = got[n]
		c.mu.Unlock()
		return got[n], nil
	}
	b := c.batchOf[n]
	c.once[b].Do(func() {
		got, err := u.askURLs(ctx, c.batches[b])
		c.mu.Lock()
		defer c.mu.Unlock()
		c.errs[b] = err
		for k, v := range got {
			c.got[k] = v
		}
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.errs[b] != nil {
		return urlAnswer{}, c.errs[b]
	}
	a, ok := c.got[n]
	if !ok {
		return urlAnswer{}, fmt.Errorf("flowclient: no URL for chunk %d in the server's answer", n)
	}
	return a, nil
}

// askURLs is POST /upload/urls for chunks, each with its CRC-64/NVME.
func (u *uploader) askURLs(ctx context.Context, chunks []int) (map[int]urlAnswer, error) {
	shared := map[string]string{}
	for _, f := range u.g.Params(chunks[0]) {
		if f.Name != "flowChunkNumber" && f.Name != "flowCurrentChunkSize" {
			shared[f.Name] = f.Value
		}
	}
	var list []map[string]string
	for _, n := range chunks {
		start, size := u.chunkRange(n)
		h := checksum.NewCRC64NVME()
		if _, err := io.Copy(h, io.NewSectionReader(u.src, start, size)); err != nil {
			return nil, err
		}
		entry := map[string]string{"checksumCrc64nvme": checksum.Encode(h.Sum64())}
		for _, f := range u.g.Params(n) {
			if f.Name == "flowChunkNumber" || f.Name == "flowCurrentChunkSize" {
				entry[f.Name] = f.Value
			}
		}
		list = append(list, entry)
	}
	body, _ := json.Marshal(map[string]any{"fields": shared, "contentType": u.opts.FileType, "chunks": list})
	for retries := 0; ; retries++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.c.target()+"/urls", bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		u.c.addHeaders(req)
		resp, err := u.c.http().Do(req)
		code := 0
		var raw []byte
		if err == nil {
			code = resp.StatusCode
			raw, _ = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
		}
		u.st.urlRequest(code)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err == nil && code == http.StatusOK {
			var out urlsAnswer
			if err := json.Unmarshal(raw, &out); err != nil {
				return nil, fmt.Errorf("flowclient: URL answer: %w", err)
			}
			u.direct.mu.Lock()
			if u.direct.resumed == nil {
				u.direct.resumed = &out.Resumed
			}
			u.direct.mu.Unlock()
			got := map[int]urlAnswer{}
			for _, a := range out.Chunks {
				got[a.Chunk] = a
			}
			return got, nil
		}
		if (err == nil && code < 500 && code != 408 && code != 429) || retries >= u.opts.MaxRetries {
			return nil, &ChunkError{Chunk: chunks[0], Method: "URLS", Status: code, Body: string(raw), Err: err}
		}
		u.st.retry()
		if !u.pause(ctx) {
			return nil, ctx.Err()
		}
	}
}

func (u *uploader) pause(ctx context.Context) bool {
	if u.opts.RetryInterval <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(u.opts.RetryInterval)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// directChunk sends chunk n on the direct data path.
func (u *uploader) directChunk(ctx context.Context, p chunkPlan) error {
	a, err := u.url(ctx, p.n, false)
	if err != nil {
		return err
	}
	u.direct.mu.Lock()
	resumed := u.direct.resumed != nil && *u.direct.resumed
	u.direct.mu.Unlock()
	if (a.Present || resumed) && u.opts.TestChunks {
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
		if a.Present {
			if a, err = u.url(ctx, p.n, true); err != nil {
				return err
			}
		}
	}
	sends := 1
	if p.dup {
		sends = 2 // the second gets 412: taken as success, as by the page
	}
	for range sends {
		if err := u.put(ctx, p.n, a); err != nil {
			return err
		}
	}
	if u.opts.OnAck != nil {
		u.opts.OnAck(p.n, true)
	}
	return nil
}

// put PUTs chunk n with its URL until it succeeds.
func (u *uploader) put(ctx context.Context, n int, a urlAnswer) error {
	start, size := u.chunkRange(n)
	for retries := 0; ; retries++ {
		if a.URL == "" {
			return fmt.Errorf("flowclient: the server gave chunk %d no URL", n)
		}
		method := a.Method
		if method == "" {
			method = http.MethodPut
		}
		var body io.Reader = io.NewSectionReader(u.src, start, size)
		req, err := http.NewRequestWithContext(ctx, method, withQuery(a.URL, encodeQuery(withExtras(u.opts.ExtraFields, u.g.Params(n)))), body)
		if err != nil {
			return err
		}
		req.ContentLength = size
		if size == 0 {
			req.Body = http.NoBody
		}
		req.GetBody = nil
		for k, v := range a.Headers {
			req.Header.Set(k, v)
		}
		if u.opts.FileType != "" {
			req.Header.Set("Content-Type", u.opts.FileType)
		}
		code, body2, lat, err := u.c.do(req)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		u.st.post(code, err == nil, size, lat)
		switch {
		case err == nil && (isSuccess(code) || code == http.StatusPreconditionFailed):
			u.st.posted(n)
			return nil
		case err == nil && (code == 404 || code == 413 || code == 415 || code == 501):
			return &ChunkError{Chunk: n, Method: method, Status: code, Body: body2}
		case retries >= u.opts.MaxRetries:
			return &ChunkError{Chunk: n, Method: method, Status: code, Body: body2, Err: err}
		}
		u.st.retry()
		if !u.pause(ctx) {
			return ctx.Err()
		}
		if code == http.StatusForbidden {
			// The URL ran out (or its credentials did): a fresh one.
			if a, err = u.url(ctx, n, true); err != nil {
				return err
			}
		}
	}
}
