package upload

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/flowgate/flowgate/shared/logctx"
)

// The Service's part of the direct data path (see the contracts): the
// record begun before any URL is handed out, a chunk counted once the store
// has it, whoever noticed first (the store's notification, the client's
// test GET, or the re-drive's check), and the check itself.

// DirectCheckDelay is how long after its URLs ran out an upload is checked
// for chunks stored but never counted (at most; as long as a URL lives if
// that is less): the time a notification normally takes (seconds), with a
// wide margin.
const DirectCheckDelay = 5 * time.Minute

// DirectRecheck is how often an upload still receiving is checked again
// once its first check is done: its client may send chunks with URLs
// still alive, or may come back; the idle expiry ends it.
const DirectRecheck = time.Hour

// Stored is what CountStored did with a chunk object.
type Stored int

const (
	// StoredCounted: the chunk is counted (now, or it was already).
	StoredCounted Stored = iota
	// StoredMissing: nothing is stored there (any more).
	StoredMissing
	// StoredRefused: the object is not a chunk of the upload (its number,
	// size or checksum is wrong): it was removed, and nothing counted.
	StoredRefused
	// StoredStale: the object belongs to a generation that is not the
	// record's (or there is no record): it was left alone. Either the
	// request that stored it follows the upload itself (the proxy path
	// moves its chunk), or its generation is dead and its chunks go with
	// it (the assembler discards them when TTL removes the record, the
	// bucket's lifecycle rule in the end).
	StoredStale
	// StoredDone: the upload is past receiving: every chunk counts as
	// present, and this one is not touched (the assembler may be reading
	// it).
	StoredDone
)

func (s Stored) String() string {
	return [...]string{"counted", "missing", "refused", "stale", "done"}[s]
}

func (s *Service) direct() (DirectStore, Beginner, error) {
	ds, ok := s.Store.(DirectStore)
	if !ok {
		return nil, nil, errors.New("upload: the chunk store cannot serve the direct data path")
	}
	b, ok := s.Ledger.(Beginner)
	if !ok {
		return nil, nil, errors.New("upload: the ledger cannot serve the direct data path")
	}
	return ds, b, nil
}

// Begin makes sure the upload has a live record before the client is
// given URLs to store chunks with (Beginner.Begin), and tells which of
// chunks need not be sent. urlLife is how long the URLs will be good for:
// the upload is checked for chunks stored but not counted once they have
// all run out (and DirectCheckDelay, or urlLife if less, later), unless
// another Begin comes first.
func (s *Service) Begin(ctx context.Context, info Info, chunks []int, urlLife time.Duration) (Begun, error) {
	for _, n := range chunks {
		if err := checkChunk(info, n); err != nil {
			return Begun{}, err
		}
	}
	_, ledger, err := s.direct()
	if err != nil {
		return Begun{}, err
	}
	b, err := ledger.Begin(ctx, info, chunks, time.Now().Add(urlLife+min(DirectCheckDelay, urlLife)))
	if err != nil {
		return Begun{}, ledgerErr(err)
	}
	if b.Replaced != "" {
		// The dead generation's chunks are garbage now, as when a first
		// chunk replaces it on the proxy path.
		s.discard(ctx, info.Key, b.Replaced, "replaced")
	}
	return b, nil
}

// SignChunk returns the URL with which the client stores chunk n of
// generation gen itself (DirectStore.SignChunk).
func (s *Service) SignChunk(ctx context.Context, info Info, gen string, n int, fields []Field, crc64 string, life time.Duration) (ChunkURL, error) {
	store, _, err := s.direct()
	if err != nil {
		return ChunkURL{}, err
	}
	u, err := store.SignChunk(ctx, info, gen, n, fields, crc64, life)
	if err != nil {
		return ChunkURL{}, fmt.Errorf("%w: sign a chunk URL: %w", ErrUnavailable, err)
	}
	return u, nil
}

// CountStored counts chunk n of generation gen of the upload, which a
// client stored itself, once the store holds it with the chunk's size and a
// checksum: what the counting function does for each object the store
// reports, the test GET for a chunk not yet counted, and the re-drive's
// check for each object it finds. It is idempotent. An object that cannot
// be the chunk is removed (only that object); one of another generation is
// left alone (see StoredStale). An error is a failure worth a retry.
func (s *Service) CountStored(ctx context.Context, key, gen string, n int) (Stored, error) {
	store, ledger, err := s.direct()
	if err != nil {
		return 0, err
	}
	if !ValidName(key) || !ValidName(gen) {
		return 0, fmt.Errorf("upload: invalid upload key or generation")
	}
	rec, err := ledger.Peek(ctx, key)
	switch {
	case errors.Is(err, ErrNotFound):
		return StoredStale, nil
	case err != nil:
		return 0, fmt.Errorf("%w: ledger: %w", ErrUnavailable, err)
	case rec.Generation != gen:
		return StoredStale, nil
	case rec.State.PastReceiving():
		return StoredDone, nil
	}
	return s.countStored(ctx, store, rec.Info, gen, n)
}

// countStored is CountStored for the upload info, receiving in generation
// gen (as last read).
func (s *Service) countStored(ctx context.Context, store DirectStore, info Info, gen string, n int) (Stored, error) {
	log := logctx.From(ctx, nil).With("upload", info.Key, "generation", gen, "chunk", n)
	got, err := store.StatChunk(ctx, info.Key, gen, n)
	if errors.Is(err, ErrNotFound) {
		return StoredMissing, nil
	}
	if err != nil {
		return 0, fmt.Errorf("%w: look at a stored chunk: %w", ErrUnavailable, err)
	}
	if why := misfit(info, n, got); why != "" {
		log.WarnContext(ctx, "a stored object is not a chunk of its upload; removed", "why", why)
		if err := store.RemoveChunk(ctx, info.Key, gen, n); err != nil {
			return 0, fmt.Errorf("%w: remove a misfit chunk: %w", ErrUnavailable, err)
		}
		return StoredRefused, nil
	}
	ready, err := s.Ledger.Count(ctx, info, n, Slot{State: StateReceiving, Generation: gen})
	var stale *StaleSlotError
	switch {
	case errors.As(err, &stale):
		// The record moved on between the read and the count.
		if stale.Current.State.PastReceiving() {
			return StoredDone, nil
		}
		return StoredStale, nil
	case err != nil:
		return 0, ledgerErr(err)
	}
	log.DebugContext(ctx, "stored chunk counted", "bytes", got.Size)
	if ready {
		log.InfoContext(ctx, "upload ready", "chunks", info.TotalChunks, "size", info.TotalSize)
		if s.OnReady != nil {
			s.OnReady(info.Key)
		}
	}
	return StoredCounted, nil
}

// misfit says why a stored object cannot be chunk n of the upload, or "".
// A chunk carries a CRC-64/NVME (the URL it was stored with made the store
// check the client's, and keep it): without one, the finished file's
// checksum could not be proved from its chunks'.
func misfit(info Info, n int, got StoredChunk) string {
	if n < 1 || n > info.TotalChunks {
		return fmt.Sprintf("chunk %d is outside 1..%d", n, info.TotalChunks)
	}
	if _, size := info.ChunkBounds(n); got.Size != size {
		return fmt.Sprintf("%d bytes, expected %d", got.Size, size)
	}
	if got.CRC64NVME == "" {
		return "no CRC-64/NVME checksum"
	}
	return ""
}

// testStored is the direct data path's test GET for a chunk the ledger has
// not counted: if the store has it (its notification has not come yet, or
// never will), it is counted now, and reported present.
//
// slot is what Lookup said of the chunk: a live receiving record's
// generation (a chunk of any other, or of none, must be sent afresh).
func (s *Service) testStored(ctx context.Context, info Info, slot Slot, n int) (bool, error) {
	store, _, err := s.direct()
	if err != nil {
		return false, err
	}
	got, err := s.countStored(ctx, store, info, slot.Generation, n)
	switch {
	case err != nil:
		return false, err
	case got == StoredDone:
		return true, nil
	}
	return got == StoredCounted, nil
}

// CheckReport is what one CheckStored run did.
type CheckReport struct {
	Checked   int `json:"checked"`   // uploads whose stored chunks were listed
	Recounted int `json:"recounted"` // chunks counted that no notification had counted
	Refused   int `json:"refused"`   // objects removed: not chunks of their upload
}

// CheckStored checks the uploads due for it (Beginner.CheckDue): for each
// one still receiving and live, it lists the chunks its generation holds
// and counts those the ledger has not, then makes it due again
// DirectRecheck later; for any other, it ends the checks. This is how a
// chunk stored without its notification ever being handled (S3 did not
// send it, or the counting function gave up on it) is counted all the
// same, and its upload assembled. An upload that fails is left due and
// counted in the error.
func (s *Service) CheckStored(ctx context.Context, now time.Time, limit int) (CheckReport, error) {
	var rep CheckReport
	store, ledger, err := s.direct()
	if err != nil {
		return rep, err
	}
	keys, err := ledger.CheckDue(ctx, now, limit)
	if err != nil {
		return rep, err
	}
	var errs []error
	for _, key := range keys {
		if ctx.Err() != nil {
			break
		}
		if err := s.checkOne(ctx, store, ledger, key, now, &rep); err != nil {
			errs = append(errs, fmt.Errorf("upload %s: %w", key, err))
		}
	}
	return rep, errors.Join(errs...)
}

func (s *Service) checkOne(ctx context.Context, store DirectStore, ledger Beginner, key string, now time.Time, rep *CheckReport) error {
	rec, counted, live, err := ledger.Counted(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return nil // removed by TTL meanwhile: it left the index with it
	}
	if err != nil {
		return err
	}
	if !live {
		// Ready (the index entry has moved on already), or dead: nothing
		// stored for it will be counted any more.
		return ledger.Checked(ctx, key, rec.Generation, time.Time{})
	}
	objs, err := store.ListChunks(ctx, key, rec.Generation)
	if err != nil {
		return err
	}
	rep.Checked++
	for _, o := range objs {
		if _, ok := slices.BinarySearch(counted, o.N); ok {
			continue
		}
		got, err := s.countStored(ctx, store, rec.Info, rec.Generation, o.N)
		if err != nil {
			return err
		}
		switch got {
		case StoredCounted:
			rep.Recounted++
		case StoredRefused:
			rep.Refused++
		}
	}
	return ledger.Checked(ctx, key, rec.Generation, now.Add(DirectRecheck))
}
