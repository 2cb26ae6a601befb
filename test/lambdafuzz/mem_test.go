package lambdafuzz

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/flowgate/flowgate/shared/upload"
)

// memLedger is an in-memory upload.Ledger and upload.Scanner with the
// semantics of the real ones (see boltledger), for fuzzing at speed.
type memLedger struct {
	mu     sync.Mutex
	recs   map[string]*upload.Record
	chunks map[string]map[int]bool
	ids    map[string]string // identity key -> upload key
	gen    int
}

func newMemLedger() *memLedger {
	return &memLedger{recs: map[string]*upload.Record{}, chunks: map[string]map[int]bool{}, ids: map[string]string{}}
}

func (l *memLedger) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs, l.chunks, l.ids = map[string]*upload.Record{}, map[string]map[int]bool{}, map[string]string{}
}

func (l *memLedger) conflict(info upload.Info) error {
	other, ok := l.ids[upload.IdentityKey(info.Namespace, info.Identifier)]
	if !ok || other == info.Key {
		return nil
	}
	if r := l.recs[other]; r != nil && r.State == upload.StateReceiving {
		return upload.ErrConflict
	}
	return nil
}

func (l *memLedger) Lookup(ctx context.Context, info upload.Info, n int) (upload.State, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.conflict(info); err != nil {
		return "", false, err
	}
	r := l.recs[info.Key]
	if r == nil {
		return upload.StateUnknown, false, nil
	}
	return r.State, l.chunks[info.Key][n], nil
}

func (l *memLedger) Count(ctx context.Context, info upload.Info, n int) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.conflict(info); err != nil {
		return false, err
	}
	r := l.recs[info.Key]
	if r == nil {
		l.gen++
		now := time.Now()
		r = &upload.Record{Info: info, Generation: fmt.Sprintf("%016x", l.gen), State: upload.StateReceiving, CreatedAt: now, UpdatedAt: now}
		l.recs[info.Key] = r
		l.chunks[info.Key] = map[int]bool{}
	}
	if r.State != upload.StateReceiving || l.chunks[info.Key][n] {
		return false, nil
	}
	l.chunks[info.Key][n] = true
	r.Received++
	r.UpdatedAt = time.Now()
	l.ids[upload.IdentityKey(info.Namespace, info.Identifier)] = info.Key
	if r.Received >= r.TotalChunks {
		r.State = upload.StateReady
		return true, nil
	}
	return false, nil
}

func (l *memLedger) Get(ctx context.Context, key string) (upload.Record, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.recs[key]
	if r == nil {
		return upload.Record{}, upload.ErrNotFound
	}
	return *r, nil
}

func (l *memLedger) Claim(ctx context.Context, key, owner string, lease time.Duration) (upload.Record, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.recs[key]
	if r == nil {
		return upload.Record{}, upload.ErrNotFound
	}
	now := time.Now()
	if r.State == upload.StateReady || r.State == upload.StateAssembling && (r.Owner == owner || now.After(r.LeaseUntil)) {
		r.State, r.Owner, r.LeaseUntil = upload.StateAssembling, owner, now.Add(lease)
		return *r, nil
	}
	return *r, upload.ErrNotClaimable
}

func (l *memLedger) Complete(ctx context.Context, key, owner string, res upload.Result) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.recs[key]
	switch {
	case r == nil:
		return upload.ErrNotFound
	case r.State == upload.StateComplete && r.Owner == owner:
		return nil
	case r.State != upload.StateAssembling || r.Owner != owner:
		return upload.ErrLeaseLost
	}
	r.State, r.Result, r.LeaseUntil, r.UpdatedAt = upload.StateComplete, &res, time.Time{}, time.Now()
	return nil
}

func (l *memLedger) Fail(ctx context.Context, key, owner, reason string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.recs[key]
	switch {
	case r == nil:
		return upload.ErrNotFound
	case r.State != upload.StateAssembling || r.Owner != owner:
		return upload.ErrLeaseLost
	}
	r.State, r.Error, r.Owner, r.LeaseUntil = upload.StateFailed, reason, "", time.Time{}
	return nil
}

func (l *memLedger) MarkPublished(ctx context.Context, key string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.recs[key]
	if r == nil {
		return upload.ErrNotFound
	}
	r.Published = true
	return nil
}

func (l *memLedger) Pending(ctx context.Context) ([]upload.Record, error) {
	return l.scan(func(r *upload.Record) bool {
		return r.State == upload.StateReady || r.State == upload.StateAssembling || r.State == upload.StateComplete && !r.Published
	}), nil
}

func (l *memLedger) Idle(ctx context.Context, before time.Time) ([]upload.Record, error) {
	return l.scan(func(r *upload.Record) bool { return r.UpdatedAt.Before(before) }), nil
}

func (l *memLedger) Forget(ctx context.Context, key string, before time.Time) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.recs[key]
	if r == nil || !r.UpdatedAt.Before(before) {
		return false, nil
	}
	delete(l.recs, key)
	delete(l.chunks, key)
	return true, nil
}

func (l *memLedger) scan(keep func(*upload.Record) bool) []upload.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []upload.Record
	for _, r := range l.recs {
		if keep(r) {
			out = append(out, *r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// counted reports whether any upload has chunk n counted.
func (l *memLedger) counted(n int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.chunks {
		if c[n] {
			return true
		}
	}
	return false
}

// memStore is an in-memory upload.ChunkStore and upload.Assembler.
type memStore struct {
	mu        sync.Mutex
	staged    map[string]map[int][]byte
	final     map[string][]byte
	assembled map[string]int
	discarded []string
	bytes     int
}

func newMemStore() *memStore {
	return &memStore{staged: map[string]map[int][]byte{}, final: map[string][]byte{}, assembled: map[string]int{}}
}

func (s *memStore) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.staged, s.final, s.assembled, s.discarded, s.bytes = map[string]map[int][]byte{}, map[string][]byte{}, map[string]int{}, nil, 0
}

func (s *memStore) PutChunk(ctx context.Context, info upload.Info, n int, r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if _, size := info.ChunkBounds(n); int64(len(b)) != size {
		return fmt.Errorf("memstore: chunk %d has %d bytes, want %d", n, len(b), size)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.staged[info.Key] == nil {
		s.staged[info.Key] = map[int][]byte{}
	}
	s.staged[info.Key][n] = b
	s.bytes += len(b)
	return nil
}

func (s *memStore) Discard(ctx context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.staged, key)
	s.discarded = append(s.discarded, key)
	return nil
}

func (s *memStore) Assemble(ctx context.Context, rec upload.Record) (upload.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	loc := "mem://" + rec.Key + "-" + rec.Generation
	if b, ok := s.final[rec.Key]; ok && int64(len(b)) == rec.TotalSize {
		return upload.Result{Location: loc, Size: rec.TotalSize}, nil
	}
	var buf bytes.Buffer
	for n := 1; n <= rec.TotalChunks; n++ {
		c, ok := s.staged[rec.Key][n]
		if !ok {
			return upload.Result{}, &upload.PermanentError{Reason: fmt.Sprintf("chunk %d missing", n)}
		}
		buf.Write(c)
	}
	if int64(buf.Len()) != rec.TotalSize {
		return upload.Result{}, &upload.PermanentError{Reason: "size differs"}
	}
	s.final[rec.Key] = buf.Bytes()
	s.assembled[rec.Key]++
	delete(s.staged, rec.Key)
	return upload.Result{Location: loc, Size: rec.TotalSize}, nil
}

// stagedKeys lists the uploads with staged bytes.
func (s *memStore) stagedKeys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.staged {
		out = append(out, k)
	}
	return out
}

// memPublisher records events.
type memPublisher struct {
	mu     sync.Mutex
	events []upload.Event
}

func (p *memPublisher) Publish(ctx context.Context, ev upload.Event) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, ev)
	return nil
}
