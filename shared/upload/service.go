package upload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/flowgate/flowgate/shared/logctx"
)

// Service is the flow.js protocol's behaviour, free of HTTP: test a chunk,
// take a chunk, tell an upload's status. The same Service runs in the
// embedded server and in the upload Lambda; only its Store and Ledger differ.
type Service struct {
	Store  ChunkStore
	Ledger Ledger
	// OnReady, if set, is told the key of an upload the moment it becomes
	// ready. The embedded server queues it for its workers; on AWS it is nil
	// because the DynamoDB stream does the telling.
	OnReady func(key string)
	// Direct: clients store chunks themselves (the direct data path, see
	// direct.go), so a chunk the ledger has not counted may be in the
	// store all the same: the test GET looks there before it says "send
	// it", and counts what it finds.
	Direct bool

	locks keyedLocks
}

// Body is a chunk's bytes as they arrive.
type Body struct {
	// Reader yields the bytes the client sent for the chunk; the Service
	// checks that they are exactly as many as declared.
	io.Reader
	// Finish, if set, is called once the bytes have been stored and before the
	// chunk is counted. It checks the rest of the request (what follows the
	// file part of a multipart body, say), so that a chunk from a request
	// that turns out malformed is never counted.
	Finish func() error
	// Digests are the checksums the client sent for the chunk, if any: the
	// chunk is taken only if its bytes match every one (see verifier).
	Digests Digests
}

// Test answers flow.js's test GET: is chunk n already stored and counted?
// Every chunk of an upload past receiving counts as present.
func (s *Service) Test(ctx context.Context, info Info, n int) (bool, error) {
	if err := checkChunk(info, n); err != nil {
		return false, err
	}
	slot, err := s.Ledger.Lookup(ctx, info, n)
	if err != nil {
		return false, ledgerErr(err)
	}
	present := slot.Counted || slot.State.PastReceiving()
	if !present && s.Direct && !slot.New {
		return s.testStored(ctx, info, slot, n)
	}
	return present, nil
}

// Put takes chunk n of an upload: it stores the bytes, checks the request,
// then counts the chunk. ready reports that this chunk completed the upload.
//
// A chunk already counted, or one of an upload past receiving, is read and
// checked but not stored again, so a late duplicate can never overwrite
// acknowledged bytes. Chunks of one upload with the same number are taken one
// at a time in this process: a store that writes in place (the directory
// store) must not see two writers of the same bytes.
func (s *Service) Put(ctx context.Context, info Info, n int, body Body) (ready bool, err error) {
	if err := checkChunk(info, n); err != nil {
		return false, err
	}
	ready, slot, err := s.put(ctx, info, n, body)
	if err != nil && slot.New {
		// The request failed, and it was for a generation that has no
		// record yet: take away whatever bytes it left, so that a refused
		// request stores nothing and a failed one leaves no garbage. The
		// generation is this process's own (see newSlot), so no other
		// instance has stored anything under it; DiscardOrphan waits for
		// this process's other writers of the upload and keeps the chunks
		// if one of them has created the record meanwhile.
		if _, derr := s.DiscardOrphan(context.WithoutCancel(ctx), info.Key, slot.Generation); derr != nil {
			logctx.From(ctx, nil).WarnContext(ctx, "could not discard the bytes of a failed first chunk; the sweeper or lifecycle rule will", "err", derr)
		}
	}
	return ready, err
}

// put does Put's work under the chunk's lock, and returns the slot the
// chunk was stored in.
func (s *Service) put(ctx context.Context, info Info, n int, body Body) (ready bool, slot Slot, err error) {
	unlock := s.locks.chunk(info.Key, n)
	defer unlock()

	_, size := info.ChunkBounds(n)
	exact := &exactReader{r: body.Reader, left: size}
	var src io.Reader = exact
	var verify *verifier
	if !body.Digests.Empty() {
		verify = newVerifier(exact, body.Digests, n)
		src = verify
	}

	slot, err = s.Ledger.Lookup(ctx, info, n)
	if err != nil {
		return false, Slot{}, ledgerErr(err)
	}
	if slot.Counted || slot.State.PastReceiving() {
		if _, err := io.Copy(io.Discard, exact); err != nil {
			return false, Slot{}, bodyErr(err)
		}
		return false, Slot{}, finish(body)
	}
	if size == 0 && verify != nil {
		// Nothing will stream: compare before anything is stored.
		if err := verify.finish(); err != nil {
			return false, Slot{}, bodyErr(err)
		}
	}
	slot = s.locks.newSlot(info.Key, slot)

	if err := s.Store.PutChunk(ctx, info, slot.Generation, n, src); err != nil {
		if exact.err != nil {
			return false, slot, bodyErr(exact.err)
		}
		if verify != nil && verify.err != nil {
			return false, slot, verify.err
		}
		return false, slot, fmt.Errorf("%w: store chunk: %w", ErrUnavailable, err)
	}
	// A store may stop reading at the declared size without seeing the end
	// of the body (an HTTP client sending a known length does); make sure
	// nothing more was sent.
	if err := exact.end(); err != nil {
		return false, slot, bodyErr(err)
	}
	if verify != nil {
		if err := verify.finish(); err != nil {
			return false, slot, bodyErr(err)
		}
	}
	if err := finish(body); err != nil {
		return false, slot, err
	}
	ready, err = s.count(ctx, info, n, slot)
	if err != nil {
		return false, slot, err
	}
	log := logctx.From(ctx, nil)
	log.DebugContext(ctx, "chunk counted", "chunk", n, "bytes", size)
	if ready {
		log.InfoContext(ctx, "upload ready", "chunks", info.TotalChunks, "size", info.TotalSize)
		if s.OnReady != nil {
			s.OnReady(info.Key)
		}
	}
	return ready, slot, nil
}

// count counts chunk n, stored under slot, following the upload to its
// current generation if it changed meanwhile (the chunk is moved there).
func (s *Service) count(ctx context.Context, info Info, n int, slot Slot) (bool, error) {
	stored := slot
	for range 4 {
		ready, err := s.Ledger.Count(ctx, info, n, slot)
		var stale *StaleSlotError
		if !errors.As(err, &stale) {
			if err != nil {
				return false, ledgerErr(err)
			}
			if slot.New {
				s.locks.created(info.Key, slot.Generation)
			}
			if slot.Replaces != "" {
				// This generation replaced a dead one: its chunks are
				// garbage now (anyone storing more of them will find the
				// generation stale and move their chunk first).
				s.discard(ctx, info.Key, slot.Replaces, "replaced")
			}
			return ready, nil
		}
		next := stale.Current
		if next.Counted || next.State.PastReceiving() {
			// Counted in the current generation by another request
			// meanwhile: ours is a spare copy.
			if stored.New {
				s.discard(ctx, info.Key, stored.Generation, "spare")
			}
			return false, nil
		}
		next = s.locks.newSlot(info.Key, next)
		if err := s.Store.MoveChunk(ctx, info, n, slot.Generation, next.Generation); err != nil {
			return false, fmt.Errorf("%w: move chunk to the upload's current generation: %w", ErrUnavailable, err)
		}
		slot = next
	}
	return false, fmt.Errorf("%w: the upload's generation keeps changing", ErrUnavailable)
}

// discard removes a generation's staged bytes that nothing will count any
// more. It is tidying, not correctness: what it misses, expiry removes.
func (s *Service) discard(ctx context.Context, key, gen, why string) {
	if err := s.Store.Discard(context.WithoutCancel(ctx), key, gen); err != nil {
		logctx.From(ctx, nil).WarnContext(ctx, "could not discard the chunks of a "+why+" generation", "generation", gen, "err", err)
	}
}

// checkChunk guards the Service's own callers (the HTTP layer checks this
// already): a chunk number outside the upload would count a chunk that does
// not exist.
func checkChunk(info Info, n int) error {
	if n < 1 || n > info.TotalChunks {
		return &InputError{Status: http.StatusBadRequest, Msg: fmt.Sprintf("chunk %d is outside 1..%d", n, info.TotalChunks)}
	}
	return nil
}

// Status is what GET /upload/status answers.
type Status struct {
	State    State `json:"state"`
	Received int   `json:"received"`
	Total    int   `json:"total"`
	// Size is set once complete (a pointer, so that 0 bytes still shows).
	Size     *int64 `json:"size,omitempty"`
	Location string `json:"location,omitempty"`
	// CRC64NVME, ContentType and ContentDisposition are the finished
	// file's (see Result), once complete.
	CRC64NVME          string `json:"crc64nvme,omitempty"`
	ContentType        string `json:"contentType,omitempty"`
	ContentDisposition string `json:"contentDisposition,omitempty"`
	Error              string `json:"error,omitempty"`
}

// Status tells where an upload is. An unknown upload is not an error.
func (s *Service) Status(ctx context.Context, key string) (Status, error) {
	rec, err := s.Ledger.Get(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return Status{State: StateUnknown}, nil
	}
	if err != nil {
		return Status{}, ledgerErr(err)
	}
	st := Status{State: rec.State, Received: rec.Received, Total: rec.TotalChunks}
	switch rec.State {
	case StateAssembling:
		// An assembly failed for now and will be tried again.
		st.Error = rec.LastError
	case StateComplete:
		if rec.Result != nil {
			size := rec.Result.Size
			st.Size, st.Location = &size, rec.Result.Location
			st.CRC64NVME, st.ContentType, st.ContentDisposition = rec.Result.CRC64NVME, rec.Result.ContentType, rec.Result.ContentDisposition
		}
	case StateFailed:
		st.Error = rec.Error
	}
	return st, nil
}

// Expire removes an upload that has been idle since before: its record and
// whatever is staged for it (a finished file stays). It takes the upload's
// lock, so no chunk of it is being stored meanwhile.
func (s *Service) Expire(ctx context.Context, rec Record, before time.Time) (bool, error) {
	sc, ok := s.Ledger.(Scanner)
	if !ok {
		return false, errors.New("ledger cannot expire uploads")
	}
	unlock := s.locks.upload(rec.Key)
	defer unlock()
	gone, err := sc.Forget(ctx, rec.Key, before)
	if err != nil || !gone {
		return false, err
	}
	if rec.State != StateComplete {
		if err := s.Store.Discard(ctx, rec.Key, rec.Generation); err != nil {
			return true, err
		}
	}
	return true, nil
}

// DiscardOrphan removes the staged data of generation gen of an upload when
// no ledger record has that generation, such as the bytes of a first chunk
// whose request was refused.
func (s *Service) DiscardOrphan(ctx context.Context, key, gen string) (bool, error) {
	unlock := s.locks.upload(key)
	defer unlock()
	rec, err := s.Ledger.Get(ctx, key)
	switch {
	case err == nil && rec.Generation == gen:
		return false, nil
	case err != nil && !errors.Is(err, ErrNotFound):
		return false, err
	}
	return true, s.Store.Discard(ctx, key, gen)
}

// ErrUnavailable marks a failure of storage or the ledger: not the client's
// fault, worth a retry. The HTTP layer answers it with 503, which flow.js
// retries instead of failing the file.
var ErrUnavailable = errors.New("storage unavailable")

func ledgerErr(err error) error {
	if errors.Is(err, ErrConflict) {
		return &InputError{Status: http.StatusConflict, Msg: ErrConflict.Error()}
	}
	var ie *InputError
	if errors.As(err, &ie) {
		return err
	}
	return fmt.Errorf("%w: ledger: %w", ErrUnavailable, err)
}

func finish(b Body) error {
	if b.Finish == nil {
		return nil
	}
	if err := b.Finish(); err != nil {
		return bodyErr(err)
	}
	return nil
}

// bodyErr turns a problem reading the request into the answer for it. An
// *InputError or a body-size limit from the HTTP layer keeps its meaning.
func bodyErr(err error) error {
	var ie *InputError
	if errors.As(err, &ie) {
		return err
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &InputError{Status: http.StatusRequestEntityTooLarge, Msg: "request body is over the size limit"}
	}
	if errors.Is(err, errTooLong) || errors.Is(err, errTooShort) {
		return &InputError{Status: http.StatusBadRequest, Msg: err.Error()}
	}
	// A body cut off is most likely a network problem: 408, which flow.js
	// and Resumable.js both retry (Resumable.js gives up on a 400).
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return &InputError{Status: http.StatusRequestTimeout, Msg: "the request body ended before the chunk did (cut off or malformed)"}
	}
	return &InputError{Status: http.StatusBadRequest, Msg: "could not read the chunk: " + err.Error()}
}

var (
	errTooShort = errors.New("chunk body is shorter than flowCurrentChunkSize")
	errTooLong  = errors.New("chunk body is longer than flowCurrentChunkSize")
)

// exactReader passes on exactly left bytes and fails if the source has fewer
// or more. The check for "more" happens when the last byte is delivered, so a
// store that reads to EOF learns of it before it commits anything.
type exactReader struct {
	r    io.Reader
	left int64
	err  error
	done bool
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if e.left == 0 {
		if err := e.end(); err != nil {
			return 0, err
		}
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF {
		if e.left > 0 {
			e.err = errTooShort
			return n, e.err
		}
		e.done = true
		err = nil
	}
	if err != nil {
		e.err = err
		return n, err
	}
	if e.left == 0 {
		if err := e.end(); err != nil {
			return n, err
		}
	}
	return n, nil
}

// end checks that the source has nothing after the declared bytes.
func (e *exactReader) end() error {
	if e.err != nil || e.done {
		return e.err
	}
	if e.left > 0 {
		e.err = errTooShort
		return e.err
	}
	var one [1]byte
	for {
		n, err := e.r.Read(one[:])
		if n > 0 {
			e.err = errTooLong
			return e.err
		}
		if err == io.EOF {
			e.done = true
			return nil
		}
		if err != nil {
			e.err = err
			return err
		}
	}
}

// keyedLocks hands out a lock per upload (shared by chunk writers, exclusive
// for expiry) and a lock per chunk, kept only while someone holds them.
type keyedLocks struct {
	mu      sync.Mutex
	uploads map[string]*uploadLock
}

type uploadLock struct {
	refs   int
	rw     sync.RWMutex
	chunks map[int]*chunkLock
	// newGen is the generation the requests of this process store a new
	// generation's chunks under while it has no record, and newFor the dead
	// generation it replaces (see newSlot).
	newGen, newFor string
}

type chunkLock struct {
	refs int
	mu   sync.Mutex
}

func (k *keyedLocks) acquire(key string) *uploadLock {
	if k.uploads == nil {
		k.uploads = make(map[string]*uploadLock)
	}
	u := k.uploads[key]
	if u == nil {
		u = &uploadLock{chunks: make(map[int]*chunkLock)}
		k.uploads[key] = u
	}
	u.refs++
	return u
}

func (k *keyedLocks) release(key string, u *uploadLock) {
	if u.refs--; u.refs == 0 {
		delete(k.uploads, key)
	}
}

// chunk locks chunk n of an upload for writing and returns the unlock.
func (k *keyedLocks) chunk(key string, n int) func() {
	k.mu.Lock()
	u := k.acquire(key)
	c := u.chunks[n]
	if c == nil {
		c = &chunkLock{}
		u.chunks[n] = c
	}
	c.refs++
	k.mu.Unlock()

	u.rw.RLock()
	c.mu.Lock()
	return func() {
		c.mu.Unlock()
		u.rw.RUnlock()
		k.mu.Lock()
		if c.refs--; c.refs == 0 {
			delete(u.chunks, n)
		}
		k.release(key, u)
		k.mu.Unlock()
	}
}

// upload locks a whole upload, waiting for its chunk writers to finish.
func (k *keyedLocks) upload(key string) func() {
	k.mu.Lock()
	u := k.acquire(key)
	k.mu.Unlock()
	u.rw.Lock()
	return func() {
		u.rw.Unlock()
		k.mu.Lock()
		k.release(key, u)
		k.mu.Unlock()
	}
}

// newSlot makes the requests of this process that find no live record for
// an upload agree on the new generation to store its chunks under: the first
// one's. Without it, concurrent first chunks would each store under a
// generation of their own, and all but the one whose count creates the
// record would have to move their chunk. The choice is shared only within
// the process, whose locks order a refused request's clean-up (which removes
// the new generation's bytes, see Put) after the other writers of the
// upload; another process never stores under it.
//
// The caller holds a chunk lock of the upload, which keeps the entry alive.
func (k *keyedLocks) newSlot(key string, slot Slot) Slot {
	if !slot.New {
		return slot
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	u := k.uploads[key]
	if u == nil {
		return slot
	}
	if u.newGen == "" || u.newFor != slot.Replaces {
		u.newGen, u.newFor = slot.Generation, slot.Replaces
	}
	slot.Generation = u.newGen
	return slot
}

// created forgets the shared new generation once a record has it: from then
// on Lookup reports it, and a later New slot (the record gone again) must
// get a generation of its own.
func (k *keyedLocks) created(key, gen string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if u := k.uploads[key]; u != nil && u.newGen == gen {
		u.newGen, u.newFor = "", ""
	}
}
