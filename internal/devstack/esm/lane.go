package esm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
)

// maxPayload is Lambda's limit on a synchronous invocation's event.
const maxPayload = 6 * 1024 * 1024

// recentBatches is how many of a lane's last batches a duplicate may repeat.
const recentBatches = 3

// lane is one of a shard's ParallelizationFactor sequences of batches: it
// invokes one batch at a time, in order, and moves on only when the batch
// was taken or given up.
type lane struct {
	m     *Mapping
	shard string

	mu      sync.Mutex
	queue   []*record
	firstAt time.Time // when the oldest queued record arrived (mapping clock)
	closed  bool
	wake    chan struct{}

	recent [][]*record
}

func newLane(m *Mapping, shard string) *lane {
	return &lane{m: m, shard: shard, wake: make(chan struct{}, 1)}
}

func (l *lane) push(recs ...*record) {
	l.mu.Lock()
	if len(l.queue) == 0 {
		l.firstAt = l.m.opt.Now()
	}
	l.queue = append(l.queue, recs...)
	l.mu.Unlock()
	l.signal()
}

func (l *lane) close() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.signal()
}

func (l *lane) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *lane) run(ctx context.Context) {
	for {
		batch := l.next(ctx)
		if batch == nil {
			return
		}
		l.m.process(ctx, l.shard, batch)
		l.maybeDuplicate(ctx, batch)
		l.m.count(func(s *Stats) { s.Pending -= len(batch) })
	}
}

// next waits for a batch: BatchSize records, or fewer once the batching
// window has passed since the oldest arrived (at once with no window), and
// never more than the 6 MB payload. Nil when the lane is closed and empty,
// or ctx ends.
func (l *lane) next(ctx context.Context) []*record {
	cfg := l.m.cfg
	for {
		l.mu.Lock()
		if n := len(l.queue); n > 0 {
			if n >= cfg.BatchSize || l.closed || !l.m.opt.Now().Before(l.firstAt.Add(cfg.MaximumBatchingWindow)) {
				size, take := len(`{"Records":[]}`), 0
				for take < n && take < cfg.BatchSize && (take == 0 || size+len(l.queue[take].raw)+1 <= maxPayload) {
					size += len(l.queue[take].raw) + 1
					take++
				}
				batch := append([]*record(nil), l.queue[:take]...)
				l.queue = append(l.queue[:0], l.queue[take:]...)
				l.firstAt = l.m.opt.Now()
				l.mu.Unlock()
				return batch
			}
		} else if l.closed {
			l.mu.Unlock()
			return nil
		}
		l.mu.Unlock()
		t := time.NewTimer(l.m.opt.PollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-l.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// maybeDuplicate delivers one of the lane's last batches again, with the
// configured probability: what a lost checkpoint does on AWS.
func (l *lane) maybeDuplicate(ctx context.Context, batch []*record) {
	l.recent = append(l.recent, batch)
	if len(l.recent) > recentBatches {
		l.recent = l.recent[1:]
	}
	p := l.m.opt.DuplicateProbability
	if p <= 0 {
		return
	}
	l.m.mu.Lock()
	hit := l.m.rnd.Float64() < p
	pick := l.recent[l.m.rnd.IntN(len(l.recent))]
	l.m.mu.Unlock()
	if hit {
		l.m.count(func(s *Stats) { s.Duplicates++ })
		l.m.deliver(ctx, l.shard, pick, true)
	}
}

// part is a batch, or what is left of one after a partial failure or a
// bisection, on its way through the retries.
type part struct {
	recs    []*record
	retries int // retries counted toward MaximumRetryAttempts
	last    attempt
}

// process delivers a batch as a new one.
func (m *Mapping) process(ctx context.Context, shard string, batch []*record) {
	m.deliver(ctx, shard, batch, false)
}

// deliver invokes the function with batch until every record was taken or
// given up, as Lambda's stream event source mapping does:
//
//   - Before each invocation, records older than MaximumRecordAge (by
//     ApproximateCreationDateTime) are given up, condition
//     RecordAgeExceeded.
//   - A function error (or a response with batchItemFailures that cannot
//     be honoured: an empty or unknown itemIdentifier) fails the whole
//     batch: with BisectBatchOnFunctionError and more than one record, the
//     batch is split in two halves, each delivered in turn, and the split
//     does not count as a retry; otherwise it is retried after a backoff,
//     counting toward MaximumRetryAttempts, and given up (condition
//     RetryAttemptsExhausted) once they are spent.
//   - With ReportBatchItemFailures, batchItemFailures checkpoint before
//     the lowest failed sequence number: the records before it are taken,
//     the rest is retried from it (a counted retry; with bisection on as
//     well, AWS bisects "at the returned sequence number", which is this).
//   - An error wrapping ErrNotInvoked is retried after a backoff without
//     counting, until the records are too old.
//
// dup marks a redelivery of a batch already taken: it goes through the same
// steps, but its records do not count as Succeeded again.
func (m *Mapping) deliver(ctx context.Context, shard string, batch []*record, dup bool) {
	cfg := m.cfg
	queue := []part{{recs: batch}}
	for len(queue) > 0 && ctx.Err() == nil {
		p := queue[0]
		queue = queue[1:]
		if cut := m.expired(p.recs); cut > 0 {
			m.giveUp(ctx, shard, RecordAgeExceeded, p.recs[:cut], p.last)
			if p.recs = p.recs[cut:]; len(p.recs) == 0 {
				continue
			}
		}
		resp, err := m.invoke(ctx, p.recs)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, ErrNotInvoked) {
			m.count(func(s *Stats) { s.NotInvoked++ })
			if !sleep(ctx, m.backoff(1)) {
				return
			}
			queue = append([]part{p}, queue...)
			continue
		}
		p.last.invokes++
		p.last.requestID = newUUID()
		m.count(func(s *Stats) { s.Invocations++ })
		failedAt := 0 // index of the first record to retry; len(recs) when all were taken
		switch {
		case err != nil:
			m.count(func(s *Stats) { s.FunctionErrors++ })
			p.last.functionError = "Unhandled"
		case cfg.ReportBatchItemFailures:
			var ok bool
			failedAt, ok = lowestFailure(resp, p.recs)
			if !ok {
				p.last.functionError = ""
				err = fmt.Errorf("esm: unusable batchItemFailures in %s", resp)
			} else if failedAt < len(p.recs) {
				m.count(func(s *Stats) { s.PartialFailures++ })
			}
		default:
			failedAt = len(p.recs)
		}
		if err == nil {
			if !dup {
				m.count(func(s *Stats) { s.Succeeded += failedAt })
			}
			if failedAt == len(p.recs) {
				continue
			}
			p.last.functionError = ""
			p.recs = p.recs[failedAt:]
		} else if cfg.BisectBatchOnFunctionError && len(p.recs) > 1 {
			m.count(func(s *Stats) { s.Bisections++ })
			half := len(p.recs) / 2
			queue = append([]part{{p.recs[:half], p.retries, p.last}, {p.recs[half:], p.retries, p.last}}, queue...)
			continue
		}
		p.retries++
		if cfg.MaximumRetryAttempts >= 0 && p.retries > cfg.MaximumRetryAttempts {
			m.giveUp(ctx, shard, RetryAttemptsExhausted, p.recs, p.last)
			continue
		}
		m.count(func(s *Stats) { s.Retries++ })
		if !sleep(ctx, m.backoff(p.retries)) {
			return
		}
		queue = append([]part{p}, queue...)
	}
}

// expired returns how many of recs, from the first, are past
// MaximumRecordAge (records are in stream order, so the old ones lead).
func (m *Mapping) expired(recs []*record) int {
	age := m.cfg.MaximumRecordAge
	if age < 0 {
		return 0
	}
	now := m.opt.Now()
	n := 0
	for n < len(recs) && now.Sub(recs[n].created) > age {
		n++
	}
	return n
}

// invoke calls the function with recs, bounded by the function's timeout.
func (m *Mapping) invoke(ctx context.Context, recs []*record) ([]byte, error) {
	call := ctx
	if m.cfg.FunctionTimeout > 0 {
		var cancel context.CancelFunc
		call, cancel = context.WithTimeout(ctx, m.cfg.FunctionTimeout)
		defer cancel()
	}
	resp, err := m.opt.Function(call, event(recs))
	if err == nil && call.Err() != nil && ctx.Err() == nil {
		err = fmt.Errorf("esm: the function ran past its timeout of %v", m.cfg.FunctionTimeout)
	}
	return resp, err
}

// lowestFailure reads a partial batch response: the index in recs of the
// lowest sequence number reported failed (len(recs) if none), or false if
// the response fails the whole batch (an itemIdentifier empty, null or not
// a sequence number of the batch).
func lowestFailure(resp []byte, recs []*record) (int, bool) {
	var r struct {
		BatchItemFailures []struct {
			ItemIdentifier *string `json:"itemIdentifier"`
		} `json:"batchItemFailures"`
	}
	if len(resp) == 0 || string(resp) == "null" {
		return len(recs), true
	}
	if err := json.Unmarshal(resp, &r); err != nil {
		return 0, false
	}
	lowest := len(recs)
	for _, f := range r.BatchItemFailures {
		if f.ItemIdentifier == nil || *f.ItemIdentifier == "" {
			return 0, false
		}
		i := indexOf(recs, *f.ItemIdentifier)
		if i < 0 {
			return 0, false
		}
		lowest = min(lowest, i)
	}
	return lowest, true
}

func indexOf(recs []*record, seq string) int {
	for i, r := range recs {
		if r.seq == seq {
			return i
		}
	}
	return -1
}
