package lambdafuzz

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

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

func (l *memLedger) newGen() string {
	l.gen++
	return fmt.Sprintf("%016x", l.gen)
}

func (l *memLedger) Lookup(ctx context.Context, info upload.Info, n int) (upload.Slot, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.conflict(info); err != nil {
		return upload.Slot{}, err
	}
	return l.slot(info.Key, n), nil
}

// slot is where chunk n stands: a new generation where there is no record
// or a failed one, else the record's.
func (l *memLedger) slot(key string, n int) upload.Slot {
	r := l.recs[key]
	switch {
	case r == nil:
		return upload.Slot{State: upload.StateUnknown, New: true, Generation: l.newGen()}
	case r.State == upload.StateFailed:
		return upload.Slot{State: upload.StateUnknown, New: true, Generation: l.newGen(), Replaces: r.Generation}
	}
	return upload.Slot{State: r.State, Generation: r.Generation, Counted: r.State.PastReceiving() || l.chunks[key][n]}
}

func (l *memLedger) Count(ctx context.Context, info upload.Info, n int, slot upload.Slot) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.conflict(info); err != nil {
		return false, err
	}
	r := l.recs[info.Key]
	switch {
	case r != nil && r.Generation == slot.Generation:
	case slot.New && (r == nil || r.State == upload.StateFailed && r.Generation == slot.Replaces):
		now := time.Now()
		r = &upload.Record{Info: info, Generation: slot.Generation, State: upload.StateReceiving, CreatedAt: now, UpdatedAt: now}
		l.recs[info.Key] = r
		l.chunks[info.Key] = map[int]bool{}
	default:
		return false, &upload.StaleSlotError{Current: l.slot(info.Key, n)}
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
		r.Attempts++
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

func (l *memLedger) Postpone(ctx context.Context, key, owner, reason string, until time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.recs[key]
	switch {
	case r == nil:
		return upload.ErrNotFound
	case r.State != upload.StateAssembling || r.Owner != owner:
		return upload.ErrLeaseLost
	}
	r.LastError, r.LeaseUntil = reason, until
	return nil
}

// Restore puts back a removed record as ready, as the DynamoDB ledger does,
// unless the key has a record.
func (l *memLedger) Restore(ctx context.Context, old map[string]types.AttributeValue) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	str := func(k string) string {
		v, _ := old[k].(*types.AttributeValueMemberS)
		if v == nil {
			return ""
		}
		return v.Value
	}
	key := str("key")
	if l.recs[key] != nil {
		return false, nil
	}
	now := time.Now()
	l.recs[key] = &upload.Record{Info: upload.Info{Key: key}, Generation: str("gen"), State: upload.StateReady, CreatedAt: now, UpdatedAt: now}
	l.chunks[key] = map[int]bool{}
	return true, nil
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

// memStore is an in-memory upload.ChunkStore and upload.Assembler. Chunks
// are kept per generation, under "<key>/<generation>".
type memStore struct {
	mu        sync.Mutex
	staged    map[string]map[int][]byte
	final     map[string][]byte
	assembled map[string]int
	discarded [][2]string // key, generation
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

func place(key, gen string) string { return key + "/" + gen }

func (s *memStore) PutChunk(ctx context.Context, info upload.Info, gen string, n int, r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if _, size := info.ChunkBounds(n); int64(len(b)) != size {
		return fmt.Errorf("memstore: chunk %d has %d bytes, want %d", n, len(b), size)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := place(info.Key, gen)
	if s.staged[p] == nil {
		s.staged[p] = map[int][]byte{}
	}
	s.staged[p][n] = b
	s.bytes += len(b)
	return nil
}

func (s *memStore) MoveChunk(ctx context.Context, info upload.Info, n int, from, to string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.staged[place(info.Key, from)][n]
	if !ok {
		return fmt.Errorf("memstore: chunk %d is not staged under %s", n, from)
	}
	p := place(info.Key, to)
	if s.staged[p] == nil {
		s.staged[p] = map[int][]byte{}
	}
	s.staged[p][n] = b
	delete(s.staged[place(info.Key, from)], n)
	return nil
}

func (s *memStore) Discard(ctx context.Context, key, gen string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.staged, place(key, gen))
	s.discarded = append(s.discarded, [2]string{key, gen})
	return nil
}

func (s *memStore) Assemble(ctx context.Context, rec upload.Record) (upload.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := place(rec.Key, rec.Generation)
	loc := "mem://" + rec.Key + "-" + rec.Generation
	if b, ok := s.final[p]; ok && int64(len(b)) == rec.TotalSize {
		return upload.Result{Location: loc, Size: rec.TotalSize}, nil
	}
	var buf bytes.Buffer
	for n := 1; n <= rec.TotalChunks; n++ {
		c, ok := s.staged[p][n]
		if !ok {
			return upload.Result{}, &upload.PermanentError{Reason: fmt.Sprintf("chunk %d missing", n)}
		}
		buf.Write(c)
	}
	if int64(buf.Len()) != rec.TotalSize {
		return upload.Result{}, &upload.PermanentError{Reason: "size differs"}
	}
	s.final[p] = buf.Bytes()
	s.assembled[rec.Key]++
	delete(s.staged, p)
	return upload.Result{Location: loc, Size: rec.TotalSize}, nil
}

// stagedPlaces lists the (upload key, generation) pairs with staged bytes.
func (s *memStore) stagedPlaces() [][2]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out [][2]string
	for p := range s.staged {
		key, gen, _ := strings.Cut(p, "/")
		out = append(out, [2]string{key, gen})
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
