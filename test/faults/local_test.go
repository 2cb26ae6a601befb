package faults

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/testkit/flowclient"
	"github.com/flowgate/flowgate/shared/boltledger"
	"github.com/flowgate/flowgate/shared/dirstore"
	"github.com/flowgate/flowgate/shared/httpapi"
	"github.com/flowgate/flowgate/shared/localserver"
	"github.com/flowgate/flowgate/shared/protocol"
	"github.com/flowgate/flowgate/shared/upload"
)

// TestLocalFaultsAtEveryCall runs the embedded stack (upload.Service,
// httpapi.Handler, the local Workers running upload.Pipeline, the sweeper's
// steps) on the real directory store and bbolt ledger, with every method of
// the store, the ledger and the publisher failing in turn: its 1st, 2nd
// and a late call, once each
//
//   - as an error (the call never happens),
//   - as a timeout (it hangs, then fails; it never happens),
//   - as a lost answer (it happens, then the caller sees a timeout), and
//   - as a crash right after it: the process is dead from then on, and a
//     new one starts on the same directory as the server does (the ledger
//     reopened, cut-off assemblies released, pending work queued).
//
// Four flow.js-like clients upload at once with shuffled, duplicate and
// cut-off chunks, retrying as flow.js does with maxChunkRetries and a user
// pressing resume; a fifth leaves its upload half done, for the sweeper.
//
// After every run: each finished file is complete with its exact bytes;
// each upload was made ready once, moved into place once (one rename, one
// file under files/) and recorded complete once, across restarts; its
// event was published (more than once only if the fault hit publishing
// itself); and once the sweeper has run nothing is left staged, not even
// the half-done upload, and no record but those whose event is not marked
// sent.
func TestLocalFaultsAtEveryCall(t *testing.T) {
	t.Parallel()
	clean := runStack(t, newInjector("", 0, pass))
	t.Logf("calls in a clean run: %v", clean)

	steps := []string{
		"store.PutChunk", "store.Discard", "store.Staged", "store.Assemble",
		"ledger.Lookup", "ledger.Count", "ledger.Get", "ledger.Claim", "ledger.Complete",
		"ledger.MarkPublished", "ledger.Idle", "ledger.Forget", "publisher.Publish",
	}
	for _, step := range steps {
		if clean[step] == 0 {
			t.Fatalf("a clean run never calls %s", step)
		}
	}
	// Read-only calls have no effect to lose; a Count whose answer is lost
	// breaks the ledger's contract (it must tell exactly one caller that
	// the upload became ready), which bbolt cannot do: its commit either
	// happens and returns, or fails and is rolled back.
	noLost := map[string]bool{"store.Staged": true, "ledger.Lookup": true, "ledger.Get": true, "ledger.Idle": true, "ledger.Count": true}
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	var firedMu sync.Mutex
	fired := map[string]int{}
	for _, step := range steps {
		n := clean[step]
		nths := []int{1}
		for _, x := range []int{2, n * 3 / 4} {
			if x > nths[len(nths)-1] && x <= n {
				nths = append(nths, x)
			}
		}
		for _, m := range []mode{fail, timeout, lost, crash} {
			if m == lost && noLost[step] {
				continue
			}
			for _, nth := range nths {
				// The runs wait on fsyncs and timeouts more than on the CPU:
				// four at a time, whatever -parallel says.
				sem <- struct{}{}
				wg.Go(func() {
					defer func() { <-sem }()
					t.Run(fmt.Sprintf("%s/%s/%d", step, m, nth), func(t *testing.T) {
						in := newInjector(step, nth, m)
						runStack(t, in)
						// Some steps (discarding a cut-off first chunk, say)
						// are taken more or less often depending on timing.
						calls, hits := in.snapshot()
						switch {
						case calls[step] < nth:
							t.Logf("%s was called only %d times this run: nothing injected", step, calls[step])
						case hits != 1:
							t.Errorf("the fault was injected %d times, want once", hits)
						}
						if hits == 1 {
							firedMu.Lock()
							fired[step+"/"+m.String()]++
							firedMu.Unlock()
						}
					})
				})
			}
		}
	}
	wg.Wait()
	for _, step := range steps {
		for _, m := range []mode{fail, timeout, lost, crash} {
			if !(m == lost && noLost[step]) && fired[step+"/"+m.String()] == 0 {
				t.Errorf("%s/%s: the fault never fired", step, m)
			}
		}
	}
	// ledger.Fail (only for uploads that can never be assembled) is not
	// called here; ledger.Pending only at a start, so a fault in it would
	// need a second one to matter: the crash runs call it on real work.
}

// upFile is one file a client sends.
type upFile struct {
	name string
	data []byte
	opts flowclient.Options
}

func (f upFile) size() int64 { return int64(len(f.data)) }

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 0xfa017))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

const faultChunk = 16 << 10

func workload() (files []upFile, abandoned upFile) {
	base := flowclient.Options{
		ChunkSize: faultChunk, TestChunks: true, Shuffle: true, Duplicates: 0.3, Simultaneous: 3,
		MaxRetries: 8, RetryInterval: 5 * time.Millisecond,
	}
	mk := func(name string, seed uint64, size int, edit func(*flowclient.Options)) upFile {
		o := base
		o.Seed = seed
		o.Identifier = name
		edit(&o)
		return upFile{name: name, data: randomBytes(seed, size), opts: o}
	}
	files = []upFile{
		mk("empty.bin", 1, 0, func(o *flowclient.Options) { o.Method = flowclient.Octet }),
		mk("one.bin", 2, 1, func(o *flowclient.Options) { o.Method = flowclient.Multipart }),
		mk("remainder.bin", 3, 3*faultChunk+5000, func(o *flowclient.Options) { o.Method = flowclient.Multipart; o.AbortFraction = 0.3 }),
		mk("forced.bin", 4, 5*faultChunk+1, func(o *flowclient.Options) {
			o.Method = flowclient.Octet
			o.ForceChunkSize = true
			o.AbortFraction = 0.3
		}),
	}
	abandoned = mk("abandoned.bin", 5, 4*faultChunk, func(o *flowclient.Options) { o.Chunks = []int{1, 3} })
	return files, abandoned
}

// process is one life of the embedded stack on the data directory: what
// localserver.New and Serve build, on the faulty store and ledger.
type process struct {
	dead    atomic.Bool
	bolt    *boltledger.Ledger
	store   *faultStore
	ledger  *faultLedger
	svc     *upload.Service
	handler http.Handler
	stop    context.CancelFunc
	workers sync.WaitGroup
}

// harness runs processes one after another on one directory behind one
// address, starting a new one whenever the injector crashes the current.
type harness struct {
	t    *testing.T
	root string
	in   *injector
	tl   *tally
	log  *slog.Logger

	mu       sync.Mutex
	cur      *process
	restarts int
}

// start opens the directory and the ledger (which releases assemblies cut
// off by the last death) and queues the work the last process left, as
// localserver.Serve does.
func (h *harness) start() *process {
	p := &process{}
	ds, err := dirstore.New(h.root)
	if err != nil {
		h.t.Fatal(err)
	}
	if p.bolt, err = boltledger.Open(filepath.Join(h.root, "ledger.db"), 0); err != nil {
		h.t.Fatal(err)
	}
	p.store = &faultStore{s: ds, root: h.root, in: h.in, dead: &p.dead, tl: h.tl}
	p.ledger = &faultLedger{l: p.bolt, in: h.in, dead: &p.dead, tl: h.tl}
	workers := localserver.NewWorkers(&upload.Pipeline{
		Ledger: p.ledger, Assembler: p.store, Publisher: &faultPublisher{in: h.in, dead: &p.dead, tl: h.tl},
		Owner: fmt.Sprintf("faults-%d", h.restarts), Lease: time.Minute, Log: h.log,
	}, 2, h.log)
	p.svc = &upload.Service{Store: p.store, Ledger: p.ledger, OnReady: workers.Enqueue}
	p.handler = &httpapi.Handler{
		Service: p.svc, Log: h.log,
		Limits: protocol.Limits{MaxFileSize: 1 << 30, MaxChunkSize: 1 << 20, MaxChunks: 1000},
	}
	ctx, stop := context.WithCancel(context.Background())
	p.stop = stop
	p.workers.Go(func() { workers.Run(ctx) })
	if pending, err := p.ledger.Pending(ctx); err == nil {
		for _, rec := range pending {
			workers.Enqueue(rec.Key)
		}
	}
	return p
}

// kill ends a dead process: its workers stop, its ledger closes.
func (p *process) kill() {
	p.dead.Store(true)
	p.stop()
	p.workers.Wait()
	p.bolt.Close()
}

func (h *harness) current() *process {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cur
}

// restarter replaces a crashed process with a new one until ctx ends.
func (h *harness) restarter(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.in.crashed:
		}
		old := h.current()
		old.kill()
		h.mu.Lock()
		h.restarts++
		h.mu.Unlock()
		next := h.start()
		h.mu.Lock()
		h.cur = next
		h.mu.Unlock()
	}
}

func (h *harness) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.current().handler.ServeHTTP(w, r)
}

// runStack runs the whole scenario with the injector and checks the end
// state; it returns the calls each step got.
func runStack(t *testing.T, in *injector) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h := &harness{t: t, root: filepath.Join(t.TempDir(), "data"), in: in, tl: newTally(), log: slog.New(slog.DiscardHandler)}
	h.cur = h.start()
	rctx, stopRestarter := context.WithCancel(ctx)
	restarted := make(chan struct{})
	go func() { defer close(restarted); h.restarter(rctx) }()
	defer func() {
		stopRestarter()
		<-restarted
		h.current().kill()
	}()
	srv := httptest.NewServer(h)
	defer srv.Close()

	client := &flowclient.Client{BaseURL: srv.URL}
	files, abandoned := workload()
	var mu sync.Mutex
	finished := map[string]flowclient.Status{}
	var cwg sync.WaitGroup
	for _, f := range append(slices.Clone(files), abandoned) {
		cwg.Go(func() {
			// As flow.js with maxChunkRetries, and a user who presses
			// resume if the upload still fails.
			var err error
			for try := 0; try < 4; try++ {
				if _, err = client.Upload(ctx, f.opts, bytes.NewReader(f.data), f.size(), f.name); err == nil {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err != nil {
				t.Errorf("%s: %v", f.name, err)
				return
			}
			if f.opts.Chunks != nil {
				return // abandoned
			}
			st, err := client.WaitComplete(ctx, f.opts, f.size(), f.name, 5*time.Millisecond)
			if err != nil {
				t.Errorf("%s: %v", f.name, err)
				return
			}
			mu.Lock()
			finished[f.name] = st
			mu.Unlock()
		})
	}
	cwg.Wait()
	if t.Failed() {
		return nil
	}

	keys := map[string]string{}
	for _, f := range append(slices.Clone(files), abandoned) {
		g, _ := flowclient.NewGeometry(f.opts, f.size(), f.name)
		keys[f.name] = upload.UploadKey(httpapi.PublicNamespace, g.Identifier, g.Size, g.ChunkSize, g.TotalChunks)
	}
	faultyPublish := in.target == "publisher.Publish" || in.target == "ledger.MarkPublished"
	for _, f := range files {
		st, key := finished[f.name], keys[f.name]
		got, err := os.ReadFile(filepath.Join(h.root, filepath.FromSlash(st.Location)))
		if err != nil || sha256.Sum256(got) != sha256.Sum256(f.data) {
			t.Errorf("%s: finished file %s: %d bytes (err %v), want %d with its sha256", f.name, st.Location, len(got), err, len(f.data))
		}
		// Published after its result was recorded (and counted here): wait
		// for it (bounded).
		for deadline := time.Now().Add(5 * time.Second); h.tl.get(h.tl.events, key) == 0 && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		if n := h.tl.get(h.tl.events, key); n < 1 || n > 1 && !faultyPublish {
			t.Errorf("%s: %d events, want 1", f.name, n)
		}
		for what, m := range map[string]map[string]int{"made ready": h.tl.readies, "moved into place": h.tl.renames, "recorded complete": h.tl.completes} {
			if n := h.tl.get(m, key); n != 1 {
				t.Errorf("%s: %s %d times, want once", f.name, what, n)
			}
		}
	}
	var final []string
	filepath.WalkDir(filepath.Join(h.root, "files"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			rel, _ := filepath.Rel(h.root, p)
			final = append(final, rel)
		}
		return nil
	})
	if len(final) != len(files) {
		t.Errorf("files/ holds %d files, want %d: %v", len(final), len(files), final)
	}

	// Everything published: the sweeper may now expire it all. A failed
	// sweep is tried again at the next interval.
	//
	// When marking an event published fails, the pipeline lets it be (the
	// event went out): the record stays complete-but-unpublished, so the
	// sweeper keeps it, and the next start publishes it again.
	p := h.current()
	for deadline := time.Now().Add(5 * time.Second); ; {
		pending, err := p.bolt.Pending(ctx)
		if in.target == "ledger.MarkPublished" && in.mode != crash {
			pending = slices.DeleteFunc(pending, func(r upload.Record) bool { return r.State == upload.StateComplete })
		}
		if err == nil && len(pending) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("work still pending: %v %v", pending, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	var sweepErr error
	for try := 0; try < 5; try++ {
		// A crash during the sweep is followed by a new process, whose
		// sweeper runs again.
		for h.current().dead.Load() {
			time.Sleep(time.Millisecond)
		}
		p := h.current()
		if sweepErr = sweepOnce(ctx, p.svc, p.ledger, p.store, time.Now().Add(time.Second)); sweepErr == nil {
			break
		}
	}
	if sweepErr != nil {
		t.Errorf("sweep: %v", sweepErr)
	}
	if left, _ := os.ReadDir(filepath.Join(h.root, "staging")); len(left) > 0 {
		var names []string
		for _, e := range left {
			names = append(names, e.Name())
		}
		t.Errorf("staged data left after the sweep: %v", names)
	}
	p = h.current()
	for _, f := range files {
		rec, err := p.bolt.Get(ctx, keys[f.name])
		if err == nil && !(in.target == "ledger.MarkPublished" && in.mode != crash) {
			t.Errorf("%s: record kept by the sweep although published: %+v", f.name, rec)
		}
	}
	if _, err := p.bolt.Get(ctx, keys[abandoned.name]); !errors.Is(err, upload.ErrNotFound) {
		t.Errorf("the abandoned upload's record survived the sweep: %v", err)
	}
	h.mu.Lock()
	restarts := h.restarts
	h.mu.Unlock()
	if _, hits := in.snapshot(); in.mode == crash && hits > 0 && restarts != 1 {
		t.Errorf("%d restarts after one crash", restarts)
	}
	calls, _ := in.snapshot()
	if t.Failed() {
		names := make([]string, 0, len(calls))
		for k := range calls {
			names = append(names, k)
		}
		sort.Strings(names)
		var b strings.Builder
		for _, k := range names {
			fmt.Fprintf(&b, " %s=%d", k, calls[k])
		}
		t.Logf("calls:%s", b.String())
	}
	return calls
}

// sweepOnce is what the embedded server's sweeper does each interval
// (localserver.Server.SweepOnce), on the faulty store and ledger: expire
// idle uploads, then discard staged data no record owns.
func sweepOnce(ctx context.Context, svc *upload.Service, l upload.Scanner, s upload.StagedLister, before time.Time) error {
	idle, err := l.Idle(ctx, before)
	if err != nil {
		return err
	}
	var errs []error
	for _, rec := range idle {
		if _, err := svc.Expire(ctx, rec, before); err != nil {
			errs = append(errs, err)
		}
	}
	staged, err := s.Staged(ctx)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, st := range staged {
		if st.Modified.Before(before) {
			if _, err := svc.DiscardOrphan(ctx, st.Key, st.Generation); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
