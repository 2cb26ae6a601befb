package upload_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/flowgate/flowgate/shared/boltledger"
	"github.com/flowgate/flowgate/shared/dirstore"
	"github.com/flowgate/flowgate/shared/upload"
)

// svcEnv is a Service on the embedded stores in a fresh directory.
type svcEnv struct {
	svc    *upload.Service
	store  *dirstore.Store
	ledger *boltledger.Ledger
	root   string
	puts   atomic.Int32 // PutChunk calls that reached the store
	ready  atomic.Int32 // OnReady calls
	mu     sync.Mutex
	readys []string
}

// svcCountingStore counts the PutChunk calls that reach the real store.
type svcCountingStore struct {
	*dirstore.Store
	n *atomic.Int32
}

func (c svcCountingStore) PutChunk(ctx context.Context, info upload.Info, gen string, n int, r io.Reader) error {
	c.n.Add(1)
	return c.Store.PutChunk(ctx, info, gen, n, r)
}

func newSvcEnv(t *testing.T) *svcEnv {
	t.Helper()
	root := t.TempDir()
	store, err := dirstore.New(root)
	if err != nil {
		t.Fatal(err)
	}
	l, err := boltledger.Open(filepath.Join(root, "ledger.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	e := &svcEnv{store: store, ledger: l, root: root}
	e.svc = &upload.Service{
		Store:  svcCountingStore{store, &e.puts},
		Ledger: l,
		OnReady: func(key string) {
			e.ready.Add(1)
			e.mu.Lock()
			e.readys = append(e.readys, key)
			e.mu.Unlock()
		},
	}
	return e
}

// info describes an upload of size bytes in chunks of chunkSize
// (forceChunkSize: true).
func svcInfo(id string, size, chunkSize int64) upload.Info {
	chunks := int(max((size+chunkSize-1)/chunkSize, 1))
	return upload.Info{
		Key:          upload.UploadKey("public", id, size, chunkSize, chunks),
		Namespace:    "public",
		Identifier:   id,
		FileName:     id + ".bin",
		RelativePath: id + ".bin",
		TotalSize:    size,
		ChunkSize:    chunkSize,
		TotalChunks:  chunks,
	}
}

func svcChunkOf(in upload.Info, data []byte, n int) []byte {
	off, size := in.ChunkBounds(n)
	return data[off : off+size]
}

func svcBody(b []byte) upload.Body { return upload.Body{Reader: bytes.NewReader(b)} }

// generation is the upload's record's generation.
func (e *svcEnv) generation(t *testing.T, key string) string {
	t.Helper()
	rec, err := e.ledger.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	return rec.Generation
}

func (e *svcEnv) counted(t *testing.T, in upload.Info, n int) bool {
	t.Helper()
	slot, err := e.ledger.Lookup(context.Background(), in, n)
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	return slot.Counted
}

// stagingPath is the staging file of the upload's generation, or a path
// that does not exist when nothing is staged for it.
func (e *svcEnv) stagingPath(key string) string {
	paths, _ := filepath.Glob(filepath.Join(e.root, "staging", key+"-*.part"))
	if len(paths) == 0 {
		return filepath.Join(e.root, "staging", key+"-none.part")
	}
	return paths[0]
}

// assemble claims and assembles a ready upload and returns the file's bytes.
func (e *svcEnv) assemble(t *testing.T, key string) []byte {
	t.Helper()
	ctx := context.Background()
	rec, err := e.ledger.Claim(ctx, key, "test", time.Minute)
	if err != nil {
		t.Fatalf("Claim: %v", err)
	}
	res, err := e.store.Assemble(ctx, rec)
	if err != nil {
		t.Fatalf("Assemble: %v", err)
	}
	if err := e.ledger.Complete(ctx, key, "test", res); err != nil {
		t.Fatalf("Complete: %v", err)
	}
	if err := e.ledger.MarkPublished(ctx, key); err != nil {
		t.Fatalf("MarkPublished: %v", err)
	}
	b, err := os.ReadFile(e.store.Path(res.Location))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func svcWantInputError(t *testing.T, err error, kind upload.Kind, what string) {
	t.Helper()
	var ie *upload.InputError
	if !errors.As(err, &ie) {
		t.Fatalf("%s: err %v, want *upload.InputError %s", what, err, kind)
	}
	if ie.Kind != kind {
		t.Fatalf("%s: kind %s (%s), want %s", what, ie.Kind, ie.Msg, kind)
	}
}

// svcReaderThenError yields data and then fails.
type svcReaderThenError struct {
	data []byte
	err  error
}

func (r *svcReaderThenError) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestPutBodyMustBeExact(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newSvcEnv(t)
	in := svcInfo("exact", 30, 10)
	chunk := bytes.Repeat([]byte("a"), 10)

	bad := []struct {
		name string
		r    io.Reader
		kind upload.Kind
	}{
		{"shorter", bytes.NewReader(chunk[:9]), upload.BadInput},
		{"shorter, one byte at a time", iotest.OneByteReader(bytes.NewReader(chunk[:9])), upload.BadInput},
		{"empty", bytes.NewReader(nil), upload.BadInput},
		{"longer by one", bytes.NewReader(append(chunk, 'x')), upload.BadInput},
		{"longer, one byte at a time", iotest.OneByteReader(bytes.NewReader(append(chunk, 'x', 'y'))), upload.BadInput},
		{"longer, EOF with data", iotest.DataErrReader(bytes.NewReader(append(chunk, 'x'))), upload.BadInput},
		// A body cut off in transit is worth a retry (the HTTP layer
		// answers 408, which flow.js and Resumable.js both retry).
		{"cut off mid-chunk", &svcReaderThenError{data: chunk[:5], err: io.ErrUnexpectedEOF}, upload.Interrupted},
		{"read error mid-chunk", &svcReaderThenError{data: chunk[:5], err: errors.New("connection reset")}, upload.BadInput},
		{"read error after the chunk", &svcReaderThenError{data: chunk, err: errors.New("connection reset")}, upload.BadInput},
		// A body that never ends nor sends more: given up on, not waited
		// for forever.
		{"(0, nil) forever after the chunk", &svcReaderThenError{data: chunk, err: nil}, upload.BadInput},
		{"(0, nil) forever mid-chunk", &svcReaderThenError{data: chunk[:5], err: nil}, upload.BadInput},
		// The reading layer's own refusal (its body-size limit) keeps its kind.
		{"over the body limit", &svcReaderThenError{data: chunk[:3], err: &upload.InputError{Kind: upload.TooLarge, Msg: "over"}}, upload.TooLarge},
	}
	for _, tc := range bad {
		ready, err := e.svc.Put(ctx, in, 1, upload.Body{Reader: tc.r})
		svcWantInputError(t, err, tc.kind, tc.name)
		if ready {
			t.Fatalf("%s: ready", tc.name)
		}
		if e.counted(t, in, 1) {
			t.Fatalf("%s: a refused body was counted", tc.name)
		}
		if _, err := e.ledger.Get(ctx, in.Key); !errors.Is(err, upload.ErrNotFound) {
			t.Fatalf("%s: a refused first chunk created a record: %v", tc.name, err)
		}
	}

	for _, r := range []io.Reader{
		iotest.DataErrReader(bytes.NewReader(chunk)), // the last byte comes with io.EOF
		iotest.OneByteReader(bytes.NewReader(chunk)),
		iotest.HalfReader(bytes.NewReader(chunk)),
	} {
		if _, err := e.svc.Put(ctx, in, 1, upload.Body{Reader: r}); err != nil {
			t.Fatalf("exact body: %v", err)
		}
		if !e.counted(t, in, 1) {
			t.Fatal("exact body not counted")
		}
	}

	// The last chunk has its own size.
	last := []byte("0123456789")
	if _, err := e.svc.Put(ctx, in, 3, svcBody(last[:9])); err == nil {
		t.Fatal("short last chunk accepted")
	}
	if _, err := e.svc.Put(ctx, in, 3, svcBody(last)); err != nil {
		t.Fatal(err)
	}
}

func TestPutEmptyFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newSvcEnv(t)
	in := svcInfo("empty", 0, 10)
	if in.TotalChunks != 1 {
		t.Fatalf("an empty file has %d chunks", in.TotalChunks)
	}
	_, err := e.svc.Put(ctx, in, 1, svcBody([]byte("x")))
	svcWantInputError(t, err, upload.BadInput, "a byte for an empty file")
	ready, err := e.svc.Put(ctx, in, 1, svcBody(nil))
	if err != nil || !ready {
		t.Fatalf("empty chunk of an empty file = %v, %v; want ready", ready, err)
	}
	if got := e.assemble(t, in.Key); len(got) != 0 {
		t.Fatalf("empty file assembled into %d bytes", len(got))
	}
}

// An acknowledged chunk is never overwritten by a later request for it,
// whatever that request carries.
func TestCountedChunkNeverOverwritten(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newSvcEnv(t)
	in := svcInfo("keep-a", 30, 10)
	a := []byte("AAAAAAAAAA")

	if _, err := e.svc.Put(ctx, in, 1, svcBody(a)); err != nil {
		t.Fatal(err)
	}
	if !e.counted(t, in, 1) {
		t.Fatal("chunk 1 not counted")
	}
	putsBefore := e.puts.Load()
	if ready, err := e.svc.Put(ctx, in, 1, svcBody([]byte("BBBBBBBBBB"))); err != nil || ready {
		t.Fatalf("duplicate of a counted chunk = %v, %v; want false, nil", ready, err)
	}
	_, err := e.svc.Put(ctx, in, 1, svcBody([]byte("CCCC")))
	svcWantInputError(t, err, upload.BadInput, "short duplicate")
	_, err = e.svc.Put(ctx, in, 1, svcBody([]byte("DDDDDDDDDDDD")))
	svcWantInputError(t, err, upload.BadInput, "long duplicate")
	_, err = e.svc.Put(ctx, in, 1, upload.Body{Reader: &svcReaderThenError{data: []byte("EEE"), err: errors.New("reset")}})
	svcWantInputError(t, err, upload.BadInput, "broken duplicate")
	if got := e.puts.Load(); got != putsBefore {
		t.Fatalf("duplicates of a counted chunk reached the store %d times", got-putsBefore)
	}

	// A chunk whose first attempt was cut off is taken whole on the retry.
	c2 := []byte("2222222222")
	_, err = e.svc.Put(ctx, in, 2, svcBody([]byte("XXXXX")))
	svcWantInputError(t, err, upload.BadInput, "cut-off chunk 2")
	_, err = e.svc.Put(ctx, in, 2, svcBody([]byte("YYYYYYYYYYY")))
	svcWantInputError(t, err, upload.BadInput, "overlong chunk 2")
	if e.counted(t, in, 2) {
		t.Fatal("a refused chunk 2 was counted")
	}
	if _, err := e.svc.Put(ctx, in, 2, svcBody(c2)); err != nil {
		t.Fatal(err)
	}
	c3 := []byte("3333333333")
	ready, err := e.svc.Put(ctx, in, 3, svcBody(c3))
	if err != nil || !ready {
		t.Fatalf("last chunk = %v, %v", ready, err)
	}
	// Past receiving, a duplicate is read, checked and dropped.
	if ready, err := e.svc.Put(ctx, in, 1, svcBody([]byte("ZZZZZZZZZZ"))); err != nil || ready {
		t.Fatalf("duplicate after ready = %v, %v", ready, err)
	}
	_, err = e.svc.Put(ctx, in, 1, svcBody([]byte("Z")))
	svcWantInputError(t, err, upload.BadInput, "short duplicate after ready")

	want := string(a) + string(c2) + string(c3)
	if got := string(e.assemble(t, in.Key)); got != want {
		t.Fatalf("assembled %q, want %q", got, want)
	}
}

func TestConcurrentDuplicatePuts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newSvcEnv(t)
	const size, cs, dups = 64 << 10, 8 << 10, 6
	in := svcInfo("concurrent", size, cs)
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 31 / 7)
	}

	var readies atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, in.TotalChunks*dups)
	start := make(chan struct{})
	for d := 0; d < dups; d++ {
		for n := 1; n <= in.TotalChunks; n++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				ready, err := e.svc.Put(ctx, in, n, upload.Body{Reader: iotest.HalfReader(bytes.NewReader(svcChunkOf(in, data, n)))})
				if err != nil {
					errs <- err
				}
				if ready {
					readies.Add(1)
				}
			}()
		}
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Put: %v", err)
	}
	if got := readies.Load(); got != 1 {
		t.Fatalf("ready returned %d times, want 1", got)
	}
	if got := e.ready.Load(); got != 1 || e.readys[0] != in.Key {
		t.Fatalf("OnReady called %d times (%v), want once with %s", got, e.readys, in.Key)
	}
	rec, err := e.ledger.Get(ctx, in.Key)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Received != in.TotalChunks || rec.State != upload.StateReady {
		t.Fatalf("record: received %d state %q", rec.Received, rec.State)
	}
	// Duplicates are taken one at a time and only the first is stored.
	if got := e.puts.Load(); got != int32(in.TotalChunks) {
		t.Fatalf("the store saw %d PutChunk calls for %d chunks", got, in.TotalChunks)
	}
	if got := e.assemble(t, in.Key); !bytes.Equal(got, data) {
		t.Fatal("assembled file differs from the data sent")
	}
}

func TestFinishErrorNotCounted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newSvcEnv(t)
	in := svcInfo("finish", 10, 10) // one chunk
	chunk := []byte("0123456789")

	finished := 0
	_, err := e.svc.Put(ctx, in, 1, upload.Body{Reader: bytes.NewReader(chunk), Finish: func() error {
		finished++
		return errors.New("a second file part")
	}})
	svcWantInputError(t, err, upload.BadInput, "Finish failing")
	if finished != 1 {
		t.Fatalf("Finish called %d times", finished)
	}
	if e.counted(t, in, 1) || e.ready.Load() != 0 {
		t.Fatal("a chunk whose request failed Finish was counted")
	}
	_, err = e.svc.Put(ctx, in, 1, upload.Body{Reader: bytes.NewReader(chunk), Finish: func() error {
		return &upload.InputError{Kind: upload.TooLarge, Msg: "too big"}
	}})
	svcWantInputError(t, err, upload.TooLarge, "Finish with its own InputError")
	if e.counted(t, in, 1) {
		t.Fatal("counted after a Finish error")
	}

	ready, err := e.svc.Put(ctx, in, 1, upload.Body{Reader: bytes.NewReader(chunk), Finish: func() error { return nil }})
	if err != nil || !ready {
		t.Fatalf("Put with Finish ok = %v, %v", ready, err)
	}
	if e.ready.Load() != 1 {
		t.Fatalf("OnReady called %d times", e.ready.Load())
	}
	// A duplicate after ready still has its request checked.
	_, err = e.svc.Put(ctx, in, 1, upload.Body{Reader: bytes.NewReader(chunk), Finish: func() error { return errors.New("bad tail") }})
	svcWantInputError(t, err, upload.BadInput, "Finish failing on a duplicate")
	if e.ready.Load() != 1 {
		t.Fatalf("OnReady called %d times after a duplicate", e.ready.Load())
	}
}

func TestConflictAndTest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newSvcEnv(t)
	in := svcInfo("same", 20, 10)
	other := svcInfo("same", 30, 10)

	if ok, err := e.svc.Test(ctx, in, 1); err != nil || ok {
		t.Fatalf("Test of an unknown upload = %v, %v", ok, err)
	}
	if _, err := e.svc.Put(ctx, in, 1, svcBody(make([]byte, 10))); err != nil {
		t.Fatal(err)
	}
	if ok, err := e.svc.Test(ctx, in, 1); err != nil || !ok {
		t.Fatalf("Test of a counted chunk = %v, %v", ok, err)
	}
	if ok, err := e.svc.Test(ctx, in, 2); err != nil || ok {
		t.Fatalf("Test of a missing chunk = %v, %v", ok, err)
	}
	_, err := e.svc.Put(ctx, other, 1, svcBody(make([]byte, 10)))
	svcWantInputError(t, err, upload.Conflict, "Put with another geometry")
	_, err = e.svc.Test(ctx, other, 1)
	svcWantInputError(t, err, upload.Conflict, "Test with another geometry")
	if _, err := e.ledger.Get(ctx, other.Key); !errors.Is(err, upload.ErrNotFound) {
		t.Fatalf("conflicting Put made a record: %v", err)
	}
	if _, err := os.Stat(e.stagingPath(other.Key)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("conflicting Put staged bytes: %v", err)
	}
}

// svcFailingLedger and svcFailingStore break one call.
type svcFailingLedger struct{ upload.Ledger }

func (svcFailingLedger) Lookup(context.Context, upload.Info, int) (upload.Slot, error) {
	return upload.Slot{}, errors.New("disk on fire")
}

type svcFailingStore struct{ upload.ChunkStore }

func (svcFailingStore) PutChunk(context.Context, upload.Info, string, int, io.Reader) error {
	return errors.New("disk full")
}

func TestInfrastructureErrorsAreUnavailable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newSvcEnv(t)
	in := svcInfo("infra", 10, 10)

	svc := &upload.Service{Store: e.store, Ledger: svcFailingLedger{e.ledger}}
	if _, err := svc.Put(ctx, in, 1, svcBody(make([]byte, 10))); !errors.Is(err, upload.ErrUnavailable) {
		t.Fatalf("Put with a failing ledger: %v, want ErrUnavailable", err)
	}
	if _, err := svc.Test(ctx, in, 1); !errors.Is(err, upload.ErrUnavailable) {
		t.Fatalf("Test with a failing ledger: %v, want ErrUnavailable", err)
	}
	svc = &upload.Service{Store: svcFailingStore{e.store}, Ledger: e.ledger}
	_, err := svc.Put(ctx, in, 1, svcBody(make([]byte, 10)))
	if !errors.Is(err, upload.ErrUnavailable) {
		t.Fatalf("Put with a failing store: %v, want ErrUnavailable", err)
	}
	var ie *upload.InputError
	if errors.As(err, &ie) {
		t.Fatalf("a storage failure blamed on the client: %v", err)
	}
	if e.counted(t, in, 1) {
		t.Fatal("counted a chunk the store failed to keep")
	}
}

func TestStatus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newSvcEnv(t)

	st, err := e.svc.Status(ctx, "00112233445566778899aabbccddeeff")
	if err != nil || st.State != upload.StateUnknown {
		t.Fatalf("Status of an unknown upload = %+v, %v", st, err)
	}

	in := svcInfo("status", 25, 10)
	if _, err := e.svc.Put(ctx, in, 2, svcBody(make([]byte, 10))); err != nil {
		t.Fatal(err)
	}
	st, err = e.svc.Status(ctx, in.Key)
	if err != nil || st.State != upload.StateReceiving || st.Received != 1 || st.Total != 3 || st.Location != "" {
		t.Fatalf("Status while receiving = %+v, %v", st, err)
	}
	for _, n := range []int{1, 3} {
		if _, err := e.svc.Put(ctx, in, n, svcBody(make([]byte, map[int]int{1: 10, 3: 5}[n]))); err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := e.svc.Status(ctx, in.Key); st.State != upload.StateReady || st.Received != 3 {
		t.Fatalf("Status when ready = %+v", st)
	}
	e.assemble(t, in.Key)
	st, err = e.svc.Status(ctx, in.Key)
	rec, _ := e.ledger.Get(ctx, in.Key)
	if err != nil || st.State != upload.StateComplete || st.Size == nil || *st.Size != 25 || st.Location == "" || st.Location != rec.Result.Location {
		t.Fatalf("Status when complete = %+v, %v", st, err)
	}

	failed := svcInfo("status-failed", 10, 10)
	if _, err := e.svc.Put(ctx, failed, 1, svcBody(make([]byte, 10))); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ledger.Claim(ctx, failed.Key, "o", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := e.ledger.Fail(ctx, failed.Key, "o", "bytes went missing"); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.svc.Status(ctx, failed.Key); st.State != upload.StateFailed || st.Error != "bytes went missing" {
		t.Fatalf("Status when failed = %+v", st)
	}
}

func TestExpire(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newSvcEnv(t)
	in := svcInfo("expire", 30, 10)
	if _, err := e.svc.Put(ctx, in, 1, svcBody(make([]byte, 10))); err != nil {
		t.Fatal(err)
	}
	rec, err := e.ledger.Get(ctx, in.Key)
	if err != nil {
		t.Fatal(err)
	}

	// Not idle since an hour ago: kept.
	gone, err := e.svc.Expire(ctx, rec, time.Now().Add(-time.Hour))
	if err != nil || gone {
		t.Fatalf("Expire of a busy upload = %v, %v", gone, err)
	}
	if _, err := e.ledger.Get(ctx, in.Key); err != nil {
		t.Fatalf("busy record removed: %v", err)
	}
	if _, err := os.Stat(e.stagingPath(in.Key)); err != nil {
		t.Fatalf("busy upload's staging file removed: %v", err)
	}

	// Idle: record and staging go.
	gone, err = e.svc.Expire(ctx, rec, time.Now().Add(time.Hour))
	if err != nil || !gone {
		t.Fatalf("Expire of an idle upload = %v, %v", gone, err)
	}
	if _, err := e.ledger.Get(ctx, in.Key); !errors.Is(err, upload.ErrNotFound) {
		t.Fatalf("record after Expire: %v", err)
	}
	if _, err := os.Stat(e.stagingPath(in.Key)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("staging file after Expire: %v", err)
	}
	if st, _ := e.svc.Status(ctx, in.Key); st.State != upload.StateUnknown {
		t.Fatalf("Status after Expire: %+v", st)
	}
	// The client can start over.
	if _, err := e.svc.Put(ctx, in, 1, svcBody(make([]byte, 10))); err != nil {
		t.Fatalf("Put after Expire: %v", err)
	}

	// A ready upload is never expired, nor its staged bytes touched.
	ready := svcInfo("expire-ready", 10, 10)
	if _, err := e.svc.Put(ctx, ready, 1, svcBody(make([]byte, 10))); err != nil {
		t.Fatal(err)
	}
	rrec, _ := e.ledger.Get(ctx, ready.Key)
	if gone, err := e.svc.Expire(ctx, rrec, time.Now().Add(time.Hour)); err != nil || gone {
		t.Fatalf("Expire of a ready upload = %v, %v", gone, err)
	}
	if _, err := os.Stat(e.stagingPath(ready.Key)); err != nil {
		t.Fatalf("ready upload's staging file removed: %v", err)
	}

	// A complete upload's record goes; its finished file stays.
	done := svcInfo("expire-done", 10, 10)
	if _, err := e.svc.Put(ctx, done, 1, svcBody([]byte("0123456789"))); err != nil {
		t.Fatal(err)
	}
	e.assemble(t, done.Key)
	drec, _ := e.ledger.Get(ctx, done.Key)
	if gone, err := e.svc.Expire(ctx, drec, time.Now().Add(time.Hour)); err != nil || !gone {
		t.Fatalf("Expire of a complete upload = %v, %v", gone, err)
	}
	if b, err := os.ReadFile(e.store.Path(drec.Result.Location)); err != nil || string(b) != "0123456789" {
		t.Fatalf("finished file after Expire: %q, %v", b, err)
	}
}

func TestDiscardOrphan(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newSvcEnv(t)

	// A live upload's staged bytes are not orphans.
	live := svcInfo("live", 20, 10)
	if _, err := e.svc.Put(ctx, live, 1, svcBody(make([]byte, 10))); err != nil {
		t.Fatal(err)
	}
	gone, err := e.svc.DiscardOrphan(ctx, live.Key, e.generation(t, live.Key))
	if err != nil || gone {
		t.Fatalf("DiscardOrphan of a live upload = %v, %v", gone, err)
	}
	if _, err := os.Stat(e.stagingPath(live.Key)); err != nil {
		t.Fatalf("live upload's staging file removed: %v", err)
	}
	if !e.counted(t, live, 1) {
		t.Fatal("live upload lost its count")
	}

	// Bytes staged without a count (a process that stopped between storing a
	// first chunk and counting it) are an orphan.
	orphan := svcInfo("orphan", 20, 10)
	const gen = "0123456789abcdef"
	if err := e.store.PutChunk(ctx, orphan, gen, 1, bytes.NewReader(make([]byte, 10))); err != nil {
		t.Fatal(err)
	}
	gone, err = e.svc.DiscardOrphan(ctx, orphan.Key, gen)
	if err != nil || !gone {
		t.Fatalf("DiscardOrphan of an orphan = %v, %v", gone, err)
	}
	if _, err := os.Stat(e.stagingPath(orphan.Key)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("orphan staging file still there: %v", err)
	}
	// Nor is an older generation of a live upload's chunks kept: only the
	// record's own generation is.
	if err := e.store.PutChunk(ctx, live, gen, 2, bytes.NewReader(make([]byte, 10))); err != nil {
		t.Fatal(err)
	}
	if gone, err := e.svc.DiscardOrphan(ctx, live.Key, gen); err != nil || !gone {
		t.Fatalf("DiscardOrphan of a live upload's other generation = %v, %v", gone, err)
	}
	if !e.counted(t, live, 1) {
		t.Fatal("live upload lost its count")
	}
	if _, err := e.svc.DiscardOrphan(ctx, strings.Repeat("0", 32), gen); err != nil {
		t.Fatalf("DiscardOrphan of nothing: %v", err)
	}
}

// A refused request that was the first an upload saw leaves nothing staged; a
// refused request for an upload with counted chunks leaves them alone.
func TestRefusedChunkStaging(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newSvcEnv(t)

	first := svcInfo("refused-first", 20, 10)
	_, err := e.svc.Put(ctx, first, 1, upload.Body{Reader: bytes.NewReader(make([]byte, 10)),
		Finish: func() error { return errors.New("malformed tail") }})
	svcWantInputError(t, err, upload.BadInput, "first chunk with a bad tail")
	_, err = e.svc.Put(ctx, first, 2, svcBody(make([]byte, 11)))
	svcWantInputError(t, err, upload.BadInput, "overlong first chunk")
	if _, err := os.Stat(e.stagingPath(first.Key)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a refused first chunk left a staging file: %v", err)
	}

	live := svcInfo("refused-live", 30, 10)
	c1 := []byte("1111111111")
	if _, err := e.svc.Put(ctx, live, 1, svcBody(c1)); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Put(ctx, live, 2, svcBody([]byte("22")))
	svcWantInputError(t, err, upload.BadInput, "short chunk of a live upload")
	if _, err := os.Stat(e.stagingPath(live.Key)); err != nil {
		t.Fatalf("a refused chunk removed a live upload's staging file: %v", err)
	}
	for n, b := range map[int]string{2: "2222222222", 3: "3333333333"} {
		if _, err := e.svc.Put(ctx, live, n, svcBody([]byte(b))); err != nil {
			t.Fatal(err)
		}
	}
	if got := string(e.assemble(t, live.Key)); got != "111111111122222222223333333333" {
		t.Fatalf("assembled %q", got)
	}
}

// Refused first requests racing good chunks of the same new upload never take
// away a counted chunk's bytes.
func TestRefusedFirstChunkRacingGoodChunks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newSvcEnv(t)
	for round := 0; round < 20; round++ {
		in := svcInfo("race-"+strings.Repeat("x", round), 40, 10)
		data := []byte("aaaaaaaaaabbbbbbbbbbccccccccccdddddddddd")
		var wg sync.WaitGroup
		start := make(chan struct{})
		for n := 1; n <= 4; n++ {
			for _, good := range []bool{false, true} {
				if n == 1 && good {
					continue // chunk 1 arrives only refused in this race
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					b := svcChunkOf(in, data, n)
					if !good {
						b = b[:3]
					}
					_, err := e.svc.Put(ctx, in, n, svcBody(b))
					if good && err != nil {
						t.Errorf("good chunk %d: %v", n, err)
					}
					if !good && err == nil {
						t.Errorf("short chunk %d accepted", n)
					}
				}()
			}
		}
		close(start)
		wg.Wait()
		if ready, err := e.svc.Put(ctx, in, 1, svcBody(svcChunkOf(in, data, 1))); err != nil || !ready {
			t.Fatalf("round %d: chunk 1 = %v, %v", round, ready, err)
		}
		if got := e.assemble(t, in.Key); !bytes.Equal(got, data) {
			t.Fatalf("round %d: assembled %q, want %q", round, got, data)
		}
	}
}

// TestChunkOutsideUploadRefused: the Service itself refuses chunk numbers
// outside 1..TotalChunks, whatever its caller checked, so no chunk that does
// not exist is ever counted (and no negative size reaches the reader).
func TestChunkOutsideUploadRefused(t *testing.T) {
	e := newSvcEnv(t)
	in := svcInfo("range", 30, 10)
	for _, n := range []int{0, -1, 4, 5, 100} {
		_, err := e.svc.Put(context.Background(), in, n, svcBody(make([]byte, 10)))
		svcWantInputError(t, err, upload.BadInput, "outside")
		_, err = e.svc.Test(context.Background(), in, n)
		svcWantInputError(t, err, upload.BadInput, "outside")
	}
	if e.puts.Load() != 0 {
		t.Fatalf("store called %d times for chunks outside the upload", e.puts.Load())
	}
	if _, err := e.ledger.Get(context.Background(), in.Key); err != upload.ErrNotFound {
		t.Fatalf("record created: %v", err)
	}
}

// barrierStore holds each PutChunk until n of them have arrived, and counts
// moves: two first chunks stored before either is counted.
type barrierStore struct {
	upload.ChunkStore
	arrived atomic.Int32
	n       int32
	moves   atomic.Int32
}

func (b *barrierStore) PutChunk(ctx context.Context, info upload.Info, gen string, n int, r io.Reader) error {
	b.arrived.Add(1)
	for b.arrived.Load() < b.n {
		time.Sleep(time.Millisecond)
	}
	return b.ChunkStore.PutChunk(ctx, info, gen, n, r)
}

func (b *barrierStore) MoveChunk(ctx context.Context, info upload.Info, n int, from, to string) error {
	b.moves.Add(1)
	return b.ChunkStore.MoveChunk(ctx, info, n, from, to)
}

// Two instances (services with locks of their own) take the first chunks of
// a new upload at once: each stores under a generation of its own, one
// creates the record, and the other's chunk is moved into that generation
// and counted there. Within one instance, concurrent first chunks share a
// generation and nothing moves.
func TestFirstChunksOnTwoInstances(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newSvcEnv(t)
	in := svcInfo("two-instances", 30, 10)
	data := []byte("0123456789abcdefghijABCDEFGHIJ")
	for _, tc := range []struct {
		name      string
		instances int
		moves     int32
	}{{"two instances", 2, 1}, {"one instance", 1, 0}} {
		store := &barrierStore{ChunkStore: e.store, n: 2}
		svcs := make([]*upload.Service, tc.instances)
		for i := range svcs {
			svcs[i] = &upload.Service{Store: store, Ledger: e.ledger}
		}
		var wg sync.WaitGroup
		for n := 1; n <= 2; n++ {
			wg.Go(func() {
				if _, err := svcs[n%tc.instances].Put(ctx, in, n, svcBody(svcChunkOf(in, data, n))); err != nil {
					t.Errorf("%s: chunk %d: %v", tc.name, n, err)
				}
			})
		}
		wg.Wait()
		if got := store.moves.Load(); got != tc.moves {
			t.Errorf("%s: %d chunks moved, want %d", tc.name, got, tc.moves)
		}
		if ready, err := svcs[0].Put(ctx, in, 3, svcBody(svcChunkOf(in, data, 3))); err != nil || !ready {
			t.Fatalf("%s: last chunk: %v %v", tc.name, ready, err)
		}
		if got := e.assemble(t, in.Key); !bytes.Equal(got, data) {
			t.Fatalf("%s: assembled %q, want %q", tc.name, got, data)
		}
		// The same upload again, from scratch (a new identifier).
		in = svcInfo("two-instances-"+tc.name, 30, 10)
	}
}
