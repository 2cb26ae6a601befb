package localserver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowgate/flowgate/shared/boltledger"
	"github.com/flowgate/flowgate/shared/config"
	"github.com/flowgate/flowgate/shared/dirstore"
	"github.com/flowgate/flowgate/shared/upload"
)

// srvHookSink counts the completion events the server posts, by upload key.
type srvHookSink struct {
	srv    *httptest.Server
	mu     sync.Mutex
	events map[string][]upload.Event
}

func srvNewHookSink(t *testing.T) *srvHookSink {
	t.Helper()
	w := &srvHookSink{events: map[string][]upload.Event{}}
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var body struct {
			DetailType string       `json:"detail-type"`
			Detail     upload.Event `json:"detail"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		w.mu.Lock()
		w.events[body.Detail.UploadKey] = append(w.events[body.Detail.UploadKey], body.Detail)
		w.mu.Unlock()
	}))
	t.Cleanup(w.srv.Close)
	return w
}

func (w *srvHookSink) get(key string) []upload.Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]upload.Event(nil), w.events[key]...)
}

// srvUnderTest is a running Server on a loopback port.
type srvUnderTest struct {
	*Server
	url  string
	dir  string
	stop func()
}

// srvStart builds a Server on dataDir through the real configuration
// loader and serves it until the test ends (or stop is called).
func srvStart(t *testing.T, dataDir string, hook *srvHookSink) *srvUnderTest {
	t.Helper()
	env := map[string]string{
		"FLOWGATE_DATA_DIR":         dataDir,
		"FLOWGATE_WEB_DIR":          t.TempDir(),
		"FLOWGATE_SWEEP_INTERVAL":   "1h",
		"FLOWGATE_EXPIRY":           "24h",
		"FLOWGATE_ASSEMBLY_WORKERS": "2",
		"FLOWGATE_SHUTDOWN_TIMEOUT": "5s",
		"FLOWGATE_MAX_CHUNK_SIZE":   "1MiB",
	}
	if hook != nil {
		env["FLOWGATE_WEBHOOK_URL"] = hook.srv.URL
	}
	cfg, err := config.LoadLocal(func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("LoadLocal: %v", err)
	}
	if cfg.DataDir != dataDir {
		t.Fatalf("DataDir = %q, want %q", cfg.DataDir, dataDir)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := New(cfg, log)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	var once sync.Once
	ts := &srvUnderTest{Server: s, url: "http://" + ln.Addr().String(), dir: dataDir}
	ts.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Errorf("Serve did not stop")
			}
		})
	}
	t.Cleanup(ts.stop)
	// Serve's start-up (re-queueing work, discarding what a dead process
	// left staged) is over once it answers.
	for i := 0; ; i++ {
		if resp, err := http.Get(ts.url + "/healthz"); err == nil {
			resp.Body.Close()
			break
		} else if i == 500 {
			t.Fatalf("server not answering: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return ts
}

// srvFile is an upload as flow.js would cut it, with forceChunkSize: true.
type srvFile struct {
	id, name  string
	data      []byte
	chunkSize int64
}

func (f srvFile) chunks() int { return int(max((int64(len(f.data))+f.chunkSize-1)/f.chunkSize, 1)) }

func (f srvFile) info() upload.Info {
	size := int64(len(f.data))
	return upload.Info{
		Key:          upload.UploadKey("public", f.id, size, f.chunkSize, f.chunks()),
		Namespace:    "public",
		Identifier:   f.id,
		FileName:     f.name,
		RelativePath: f.name,
		TotalSize:    size,
		ChunkSize:    f.chunkSize,
		TotalChunks:  f.chunks(),
	}
}

func (f srvFile) chunk(n int) []byte {
	off, size := f.info().ChunkBounds(n)
	return f.data[off : off+size]
}

func (f srvFile) query(n int) url.Values {
	q := url.Values{
		"flowChunkSize":    {strconv.FormatInt(f.chunkSize, 10)},
		"flowTotalSize":    {strconv.Itoa(len(f.data))},
		"flowIdentifier":   {f.id},
		"flowFilename":     {f.name},
		"flowRelativePath": {f.name},
		"flowTotalChunks":  {strconv.Itoa(f.chunks())},
	}
	if n > 0 {
		q.Set("flowChunkNumber", strconv.Itoa(n))
		q.Set("flowCurrentChunkSize", strconv.Itoa(len(f.chunk(n))))
	}
	return q
}

func srvTestData(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

// post sends chunk n as flow.js's method: 'octet' does.
func (ts *srvUnderTest) post(t *testing.T, f srvFile, n int) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, ts.url+"/upload?"+f.query(n).Encode(), bytes.NewReader(f.chunk(n)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// testChunk sends flow.js's test GET.
func (ts *srvUnderTest) testChunk(t *testing.T, f srvFile, n int) int {
	t.Helper()
	resp, err := http.Get(ts.url + "/upload?" + f.query(n).Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (ts *srvUnderTest) status(t *testing.T, f srvFile) upload.Status {
	t.Helper()
	resp, err := http.Get(ts.url + "/upload/status?" + f.query(0).Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status: %d %s", resp.StatusCode, b)
	}
	var st upload.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// waitState polls the status endpoint until the upload reaches want.
func (ts *srvUnderTest) waitState(t *testing.T, f srvFile, want upload.State) upload.Status {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := ts.status(t, f)
		if st.State == want {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("upload %s: state %q (%+v), want %q", f.id, st.State, st, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// upload sends every chunk, in the order given (all, in order, if none).
func (ts *srvUnderTest) upload(t *testing.T, f srvFile, order ...int) {
	t.Helper()
	if len(order) == 0 {
		for n := 1; n <= f.chunks(); n++ {
			order = append(order, n)
		}
	}
	for _, n := range order {
		if code, body := ts.post(t, f, n); code != http.StatusOK {
			t.Fatalf("POST chunk %d of %s: %d %s", n, f.id, code, body)
		}
	}
}

// srvCheckFile checks that the finished file at location has f's bytes, inside DataDir/files.
func srvCheckFile(t *testing.T, dataDir, location string, f srvFile) {
	t.Helper()
	if location == "" {
		t.Fatal("no location")
	}
	p := filepath.Join(dataDir, filepath.FromSlash(location))
	rel, err := filepath.Rel(filepath.Join(dataDir, "files"), p)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		t.Fatalf("location %q is not under DataDir/files", location)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("finished file: %v", err)
	}
	if sha256.Sum256(b) != sha256.Sum256(f.data) {
		t.Fatalf("finished file %s: %d bytes with another sha256 than the %d sent", p, len(b), len(f.data))
	}
}

func srvWaitEvents(t *testing.T, hook *srvHookSink, key string, want int) []upload.Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs := hook.get(key)
		if len(evs) >= want {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d webhook events for %s, want %d", len(evs), key, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// srvStagingFile is the staging file of the upload's (only) generation, or,
// when none is staged, the name of one a test may create.
func srvStagingFile(dataDir, key string) string {
	if paths, _ := filepath.Glob(filepath.Join(dataDir, "staging", key+"-*.part")); len(paths) > 0 {
		return paths[0]
	}
	return filepath.Join(dataDir, "staging", key+"-0123456789abcdef.part")
}

func TestUploadOverHTTP(t *testing.T) {
	t.Parallel()
	hook := srvNewHookSink(t)
	dir := t.TempDir()
	ts := srvStart(t, dir, hook)
	f := srvFile{id: "2500-report.pdf", name: "report.pdf", data: srvTestData(2500, 1), chunkSize: 1000}
	if f.chunks() != 3 {
		t.Fatalf("bad test: %d chunks", f.chunks())
	}

	if resp, err := http.Get(ts.url + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	if st := ts.status(t, f); st.State != upload.StateUnknown {
		t.Fatalf("status before upload: %+v", st)
	}
	if code := ts.testChunk(t, f, 2); code != http.StatusNoContent {
		t.Fatalf("test GET of a missing chunk: %d, want 204", code)
	}
	ts.upload(t, f, 3, 1)
	if code := ts.testChunk(t, f, 1); code != http.StatusOK {
		t.Fatalf("test GET of a sent chunk: %d, want 200", code)
	}
	if st := ts.status(t, f); st.State != upload.StateReceiving || st.Received != 2 || st.Total != 3 {
		t.Fatalf("status while receiving: %+v", st)
	}
	// A duplicate of a counted chunk is taken but changes nothing.
	ts.upload(t, f, 1)
	ts.upload(t, f, 2)

	st := ts.waitState(t, f, upload.StateComplete)
	if st.Size == nil || *st.Size != 2500 || st.Received != 3 {
		t.Fatalf("complete status: %+v", st)
	}
	srvCheckFile(t, dir, st.Location, f)
	if filepath.Base(st.Location) != "report.pdf" {
		t.Fatalf("finished file name: %q", st.Location)
	}
	if _, err := os.Stat(srvStagingFile(dir, f.info().Key)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("staging file after assembly: %v", err)
	}
	for n := 1; n <= 3; n++ {
		if code := ts.testChunk(t, f, n); code != http.StatusOK {
			t.Fatalf("test GET of chunk %d after completion: %d", n, code)
		}
	}
	// A late duplicate after completion is harmless.
	ts.upload(t, f, 2)
	evs := srvWaitEvents(t, hook, f.info().Key, 1)
	if evs[0].Location != st.Location || evs[0].Size != 2500 || evs[0].FileName != "report.pdf" {
		t.Fatalf("event: %+v", evs[0])
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(hook.get(f.info().Key)); n != 1 {
		t.Fatalf("%d completion events, want 1", n)
	}
	srvCheckFile(t, dir, st.Location, f)
}

func TestSweepExpiresIdleUploads(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ts := srvStart(t, dir, nil)
	ctx := context.Background()

	done := srvFile{id: "done", name: "done.bin", data: srvTestData(3000, 2), chunkSize: 1000}
	ts.upload(t, done)
	st := ts.waitState(t, done, upload.StateComplete)

	idle := srvFile{id: "idle", name: "idle.bin", data: srvTestData(3000, 3), chunkSize: 1000}
	ts.upload(t, idle, 1)
	if _, err := os.Stat(srvStagingFile(dir, idle.info().Key)); err != nil {
		t.Fatalf("staging file of the idle upload: %v", err)
	}

	// Nothing is idle since an hour ago.
	n, err := ts.SweepOnce(ctx, time.Now().Add(-time.Hour))
	if err != nil || n != 0 {
		t.Fatalf("SweepOnce(an hour ago) = %d, %v; want 0", n, err)
	}
	if got := ts.status(t, idle); got.State != upload.StateReceiving {
		t.Fatalf("busy upload swept: %+v", got)
	}

	// Everything is idle since an hour from now.
	n, err = ts.SweepOnce(ctx, time.Now().Add(time.Hour))
	if err != nil || n < 1 {
		t.Fatalf("SweepOnce(in an hour) = %d, %v", n, err)
	}
	if got := ts.status(t, idle); got.State != upload.StateUnknown {
		t.Fatalf("idle upload after the sweep: %+v, want unknown", got)
	}
	if _, err := ts.ledger.Get(ctx, idle.info().Key); !errors.Is(err, upload.ErrNotFound) {
		t.Fatalf("idle upload's record after the sweep: %v", err)
	}
	if _, err := os.Stat(srvStagingFile(dir, idle.info().Key)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("idle upload's staging file after the sweep: %v", err)
	}
	if code := ts.testChunk(t, idle, 1); code != http.StatusNoContent {
		t.Fatalf("test GET of a swept chunk: %d, want 204", code)
	}
	// The finished file stays.
	srvCheckFile(t, dir, st.Location, done)

	// The client can send the swept upload again from the start.
	ts.upload(t, idle)
	st = ts.waitState(t, idle, upload.StateComplete)
	srvCheckFile(t, dir, st.Location, idle)
}

func TestSweepRemovesOrphanStaging(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ts := srvStart(t, dir, nil)
	ctx := context.Background()
	old := time.Now().Add(-2 * time.Hour)

	oldOrphan := srvStagingFile(dir, "0123456789abcdef0123456789abcdef")
	newOrphan := srvStagingFile(dir, "fedcba9876543210fedcba9876543210")
	for _, p := range []string{oldOrphan, newOrphan} {
		if err := os.WriteFile(p, []byte("left behind"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chtimes(oldOrphan, old, old); err != nil {
		t.Fatal(err)
	}
	// A live upload whose staging file happens to be old keeps it: its record
	// was updated recently.
	live := srvFile{id: "live", name: "live.bin", data: srvTestData(2000, 4), chunkSize: 1000}
	ts.upload(t, live, 1)
	liveStaging := srvStagingFile(dir, live.info().Key)
	if err := os.Chtimes(liveStaging, old, old); err != nil {
		t.Fatal(err)
	}

	n, err := ts.SweepOnce(ctx, time.Now().Add(-time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("SweepOnce = %d, %v; want 1 (the old orphan)", n, err)
	}
	if _, err := os.Stat(oldOrphan); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("old orphan after the sweep: %v", err)
	}
	if _, err := os.Stat(newOrphan); err != nil {
		t.Fatalf("recent orphan removed: %v", err)
	}
	if _, err := os.Stat(liveStaging); err != nil {
		t.Fatalf("live upload's staging file removed: %v", err)
	}
	if st := ts.status(t, live); st.State != upload.StateReceiving || st.Received != 1 {
		t.Fatalf("live upload after the sweep: %+v", st)
	}
	ts.upload(t, live, 2)
	st := ts.waitState(t, live, upload.StateComplete)
	srvCheckFile(t, dir, st.Location, live)
}

func TestRestartAssemblesLeftoverWork(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	hook := srvNewHookSink(t)

	ready := srvFile{id: "was-ready", name: "ready.bin", data: srvTestData(3500, 5), chunkSize: 1000}
	claimed := srvFile{id: "was-assembling", name: "claimed.bin", data: srvTestData(2000, 6), chunkSize: 1000}
	unpublished := srvFile{id: "was-unpublished", name: "unpublished.bin", data: srvTestData(1500, 7), chunkSize: 1000}
	receiving := srvFile{id: "was-receiving", name: "receiving.bin", data: srvTestData(3000, 8), chunkSize: 1000}

	// The last process: chunks stored and counted, then it stopped at
	// various points.
	store, err := dirstore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	ledger, err := boltledger.Open(filepath.Join(dir, "ledger.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []srvFile{ready, claimed, unpublished, receiving} {
		in := f.info()
		last := in.TotalChunks
		if f.id == receiving.id {
			last = 1
		}
		for n := 1; n <= last; n++ {
			slot, err := ledger.Lookup(ctx, in, n)
			if err != nil {
				t.Fatal(err)
			}
			if err := store.PutChunk(ctx, in, slot.Generation, n, bytes.NewReader(f.chunk(n))); err != nil {
				t.Fatal(err)
			}
			if _, err := ledger.Count(ctx, in, n, slot); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, f := range []srvFile{claimed, unpublished} {
		if _, err := ledger.Claim(ctx, f.info().Key, "dead-process", time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	rec, err := ledger.Get(ctx, unpublished.info().Key)
	if err != nil {
		t.Fatal(err)
	}
	res, err := store.Assemble(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := ledger.Complete(ctx, rec.Key, "dead-process", res); err != nil {
		t.Fatal(err)
	}
	if err := ledger.Close(); err != nil {
		t.Fatal(err)
	}

	ts := srvStart(t, dir, hook)
	for _, f := range []srvFile{ready, claimed} {
		st := ts.waitState(t, f, upload.StateComplete)
		srvCheckFile(t, dir, st.Location, f)
		evs := srvWaitEvents(t, hook, f.info().Key, 1)
		if evs[0].Location != st.Location {
			t.Fatalf("event for %s: %+v", f.id, evs[0])
		}
	}
	// The result recorded before the restart is announced, not rebuilt.
	evs := srvWaitEvents(t, hook, unpublished.info().Key, 1)
	if evs[0].Location != res.Location || evs[0].Size != 1500 {
		t.Fatalf("event for the unpublished upload: %+v", evs[0])
	}
	srvCheckFile(t, dir, res.Location, unpublished)
	// A receiving upload stays as it was, and can be finished.
	if st := ts.status(t, receiving); st.State != upload.StateReceiving || st.Received != 1 {
		t.Fatalf("receiving upload after restart: %+v", st)
	}
	ts.upload(t, receiving, 2, 3)
	st := ts.waitState(t, receiving, upload.StateComplete)
	srvCheckFile(t, dir, st.Location, receiving)
	srvWaitEvents(t, hook, receiving.info().Key, 1)

	ts.stop()
	// Everything was marked published: a second restart announces nothing again.
	before := map[string]int{}
	for _, f := range []srvFile{ready, claimed, unpublished, receiving} {
		before[f.id] = len(hook.get(f.info().Key))
		if before[f.id] != 1 {
			t.Fatalf("%s: %d events, want 1", f.id, before[f.id])
		}
	}
	ts = srvStart(t, dir, hook)
	st = ts.waitState(t, ready, upload.StateComplete)
	srvCheckFile(t, dir, st.Location, ready)
	time.Sleep(200 * time.Millisecond)
	for _, f := range []srvFile{ready, claimed, unpublished, receiving} {
		if n := len(hook.get(f.info().Key)); n != before[f.id] {
			t.Fatalf("%s: %d events after a second restart, want %d", f.id, n, before[f.id])
		}
	}
}

// Started by a person at a terminal, the server says where its page is,
// where files land and who may upload.
func TestBanner(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.LoadLocal(func(k string) string {
		return map[string]string{"FLOWGATE_DATA_DIR": dir, "FLOWGATE_WEB_DIR": t.TempDir()}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	var banner syncBuffer
	s, err := New(cfg, slog.New(slog.DiscardHandler), WithBanner(&banner))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()
	addr := ln.Addr().String()
	for i := 0; !strings.Contains(banner.String(), "Ctrl-C"); i++ {
		if i == 500 {
			t.Fatalf("no banner: %q", banner.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, want := range []string{"http://" + addr + "/\n", "http://" + addr + "/upload", dir, filepath.Join(dir, "files"), "one public namespace"} {
		if !strings.Contains(banner.String(), want) {
			t.Errorf("banner %q lacks %q", banner.String(), want)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
