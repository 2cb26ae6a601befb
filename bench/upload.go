package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/flowgate/flowgate/internal/testkit/flowclient"
	"github.com/flowgate/flowgate/shared/upload"
)

// benchFile is one file a scenario uploads.
type benchFile struct {
	Index int
	Name  string
	ID    string // flowIdentifier, unique per run
	Src   *source
	Sum   [32]byte
}

// makeFiles makes the scenario's files. run makes identifiers unique to
// this run, so that nothing from an earlier run (or an earlier scenario on
// the same ledger) is mistaken for this one's.
func makeFiles(sc Scenario, run string) []*benchFile {
	files := make([]*benchFile, sc.Files)
	for i := range files {
		files[i] = &benchFile{
			Index: i,
			Name:  fmt.Sprintf("file-%04d.bin", i),
			ID:    fmt.Sprintf("%s-%s-%d", sc.ID, run, i),
			Src:   newSource(sc.FileSize, i),
		}
	}
	return files
}

// sums computes every file's SHA-256 (before anything is timed). A file
// is the same bytes whatever the scenario (its size and index make it), so
// each sum is computed once per run.
func sums(files []*benchFile) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for _, f := range files {
		k := sumKey{f.Src.Size, f.Index}
		sumMu.Lock()
		sum, ok := sumCache[k]
		sumMu.Unlock()
		if ok {
			f.Sum = sum
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			f.Sum = f.Src.Sum()
			sumMu.Lock()
			sumCache[k] = f.Sum
			sumMu.Unlock()
		})
	}
	wg.Wait()
}

type sumKey struct {
	size  int64
	index int
}

var (
	sumMu    sync.Mutex
	sumCache = map[sumKey][32]byte{}
)

// uploadRun is what the client saw of one scenario's uploads.
type uploadRun struct {
	Stats flowclient.Stats // merged over files; Duration is the wall time below
	Start time.Time
	End   time.Time // when the last file's last chunk was acknowledged
	// LastAck is, per file, when its last chunk's response came back.
	LastAck []time.Time
}

// Wall is the ingest time: first request to last acknowledgement.
func (u uploadRun) Wall() time.Duration { return u.End.Sub(u.Start) }

// uploadAll uploads the files to baseURL as the scenario says: Parallel
// files at once, each with Simultaneous chunk requests in flight.
func uploadAll(ctx context.Context, baseURL string, sc Scenario, files []*benchFile) (uploadRun, error) {
	// A transport of its own, configured as flowclient's default one, whose
	// connections are closed at the end: a connection dialed but never used
	// would otherwise hold up the server's graceful shutdown for 5 seconds.
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
	}
	defer tr.CloseIdleConnections()
	c := &flowclient.Client{BaseURL: baseURL, HTTP: &http.Client{Transport: tr}}
	return uploadWith(ctx, c, sc, files, false)
}

// uploadWith uploads the files with c, Parallel at once, each as flow.js
// would (direct: with URLs from POST /upload/urls and a PUT per chunk),
// and notes when each file's last acknowledgement came back.
func uploadWith(ctx context.Context, c *flowclient.Client, sc Scenario, files []*benchFile, direct bool) (uploadRun, error) {
	run := uploadRun{LastAck: make([]time.Time, len(files))}
	var (
		mu       sync.Mutex
		firstErr error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	queue := make(chan *benchFile, len(files))
	for _, f := range files {
		queue <- f
	}
	close(queue)

	run.Start = time.Now()
	var wg sync.WaitGroup
	for range min(sc.Parallel, len(files)) {
		wg.Go(func() {
			for f := range queue {
				if ctx.Err() != nil {
					return
				}
				opts := sc.options(f.Index, f.ID)
				opts.Direct = direct
				var ackMu sync.Mutex // a file's chunks are acknowledged in parallel
				var last time.Time
				opts.OnAck = func(int, bool) {
					now := time.Now()
					ackMu.Lock()
					if now.After(last) {
						last = now
					}
					ackMu.Unlock()
				}
				st, err := c.Upload(ctx, opts, f.Src, f.Src.Size, f.Name)
				mu.Lock()
				run.Stats.Add(st)
				run.LastAck[f.Index] = last
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("upload %s: %w", f.Name, err)
					cancel()
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return run, firstErr
	}
	if err := ctx.Err(); err != nil {
		return run, err
	}
	run.End = slices.MaxFunc(run.LastAck, func(a, b time.Time) int { return a.Compare(b) })
	run.Stats.Duration = run.Wall()
	return run, nil
}

// completions receives the servers' "Upload Completed" events (the local
// server's FLOWGATE_WEBHOOK_URL; the S3 server role posts them the same
// way). An event carries completedAt, the server's clock when the result
// was recorded: the moment GET /upload/status starts answering "complete".
// Server and benchmark share the machine's clock.
type completions struct {
	URL string
	srv *http.Server

	mu      sync.Mutex
	events  map[string]upload.Event // by identifier; the first delivery wins
	arrived map[string]time.Time
	changed chan struct{} // closed and replaced at every new event
}

func startCompletions() (*completions, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c := &completions{
		URL:     "http://" + ln.Addr().String() + "/events",
		events:  map[string]upload.Event{},
		arrived: map[string]time.Time{},
		changed: make(chan struct{}),
	}
	c.srv = &http.Server{Handler: http.HandlerFunc(c.receive), ReadHeaderTimeout: 10 * time.Second}
	go c.srv.Serve(ln)
	return c, nil
}

func (c *completions) receive(w http.ResponseWriter, r *http.Request) {
	var body struct {
		DetailType string       `json:"detail-type"`
		Detail     upload.Event `json:"detail"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	now := time.Now()
	c.mu.Lock()
	if _, seen := c.events[body.Detail.Identifier]; !seen {
		c.events[body.Detail.Identifier] = body.Detail
		c.arrived[body.Detail.Identifier] = now
		close(c.changed)
		c.changed = make(chan struct{})
	}
	c.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// wait returns the events of the files once all have arrived, or fails
// when ctx ends or timeout passes without a new one.
func (c *completions) wait(ctx context.Context, files []*benchFile, idle time.Duration) ([]upload.Event, error) {
	for {
		c.mu.Lock()
		missing := 0
		out := make([]upload.Event, len(files))
		for i, f := range files {
			ev, ok := c.events[f.ID]
			if !ok {
				missing++
			}
			out[i] = ev
		}
		changed := c.changed
		c.mu.Unlock()
		if missing == 0 {
			return out, nil
		}
		t := time.NewTimer(idle)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
			return nil, fmt.Errorf("%d of %d files never completed (no event for %s)", missing, len(files), idle)
		case <-changed:
			t.Stop()
		}
	}
}

func (c *completions) close() { c.srv.Close() }

// toComplete is, per file, the time from its last chunk's response to its
// completion being recorded.
func toComplete(run uploadRun, evs []upload.Event) []time.Duration {
	out := make([]time.Duration, len(evs))
	for i, ev := range evs {
		out[i] = ev.CompletedAt.Sub(run.LastAck[i])
	}
	return out
}
