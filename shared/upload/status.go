// Telling where an upload is (Status), and removing what an upload left behind
// (Expire, DiscardOrphan).

package upload

import (
	"context"
	"errors"
	"time"
)

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
