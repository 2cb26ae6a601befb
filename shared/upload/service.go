package upload

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/flowgate/flowgate/shared/exactlen"
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
	// Admission, if set, is asked before a chunk is stored whether this
	// process takes it (the local server's limit on the uploads in
	// progress per namespace).
	Admission Admission

	locks keyedLocks
}

// Admission decides whether chunks are taken, and hears how each went.
type Admission interface {
	// Admit is asked before chunk bytes of info are stored, with the
	// upload's state as the ledger tells it (StateUnknown: no live record,
	// a new upload). An error refuses the chunk and is Put's answer;
	// otherwise done is called once Put is over, with whether the chunk was
	// taken and whether it made the upload ready.
	Admit(ctx context.Context, info Info, state State) (done func(taken, ready bool), err error)
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
	exact := exactlen.NewReader(body.Reader, size)
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
	if s.Admission != nil {
		done, refused := s.Admission.Admit(ctx, info, slot.State)
		if refused != nil {
			return false, Slot{}, refused
		}
		defer func() { done(err == nil, ready) }() // put's own err and ready
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
		if err := exact.Err(); err != nil {
			return false, slot, bodyErr(err)
		}
		if verify != nil && verify.err != nil {
			return false, slot, verify.err
		}
		return false, slot, fmt.Errorf("%w: store chunk: %w", ErrUnavailable, err)
	}
	// A store may stop reading at the declared size without seeing the end
	// of the body (an HTTP client sending a known length does); make sure
	// nothing more was sent.
	if err := exact.End(); err != nil {
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
		return &InputError{Kind: BadInput, Msg: fmt.Sprintf("chunk %d is outside 1..%d", n, info.TotalChunks)}
	}
	return nil
}
