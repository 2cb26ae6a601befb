// Package redrive is the re-drive function's logic: it makes sure that no
// upload depends on one delivery of the ledger's DynamoDB stream.
//
// The event source mapping that feeds the assembler retries a failing batch,
// bisects it, and finally gives its records up (template.yaml:
// MaximumRetryAttempts, MaximumRecordAgeInSeconds), sending only where they
// were in the stream to a queue. A ready upload whose record was given up
// would then wait for nothing; a TTL removal given up would leave its chunks
// to the lifecycle rule. On a schedule, Run:
//
//  1. replays the batches the stream gave up (the failure queue): it reads
//     their records back from the stream by sequence number and hands them
//     to the assembler's own handler (package streamassemble); records the
//     stream no longer holds (after 24 hours) are dropped, since step 2
//     covers every upload still owed work;
//  2. runs the assembly pipeline for every upload that is owed work and due
//     (package dynamoledger's index of owed uploads: ready for a quarter of
//     an hour, or assembling past its claim), as the assembler would;
//  3. on the direct data path (Counting, package s3count), where clients
//     store chunks themselves and S3's notifications start the counting:
//     replays the notifications the counting function gave up, and counts
//     the chunks stored but never counted of every upload whose URLs have
//     run out (a notification S3 never sent).
//
// Both are safe to run at any time beside the stream: the pipeline claims an
// upload before working on it, and every step is idempotent. With the
// pipeline's bound on attempts, every upload whose chunks were all
// acknowledged ends complete, or failed with its reason, within hours.
package redrive

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/flowgate/flowgate/shared/upload"
)

// Defaults for Redriver's zero fields.
const (
	DefaultLimit       = 100
	DefaultConcurrency = 4
	// DefaultReserve is how much of the invocation's time is kept when
	// starting another assembly, so that the function is not cut off in
	// the middle of one (a cut-off one is finished by the next run).
	DefaultReserve = 2 * time.Minute
)

// Overdue is what Redriver needs of the ledger: package dynamoledger's
// index of owed uploads.
type Overdue interface {
	Overdue(ctx context.Context, now time.Time, limit int) ([]string, error)
}

// Counting is the direct data path's part of a run (package s3count).
type Counting interface {
	Recount(ctx context.Context, now time.Time) (CountingReport, error)
}

// CountingReport is what Counting did.
type CountingReport struct {
	Replayed  int `json:"countReplayed"` // notifications the counting function gave up, handled again
	Checked   int `json:"checked"`       // uploads whose stored chunks were listed
	Recounted int `json:"recounted"`     // chunks counted that no notification had counted
}

// Redriver re-drives what the stream did not bring to an assembler.
type Redriver struct {
	Ledger Overdue
	// Pipeline is copied for each upload, with Owner set to Owner.
	Pipeline upload.Pipeline
	// Owner names this run in claims: unique per invocation.
	Owner string
	// Failures, if set, is the queue of batches the stream gave up.
	Failures *Failures
	// Counting, if set, is the direct data path's part of the run.
	Counting Counting
	// Limit is how many owed uploads one run takes on; Concurrency how many
	// it assembles at once; Reserve as DefaultReserve.
	Limit, Concurrency int
	Reserve            time.Duration
	Now                func() time.Time
	Log                *slog.Logger
}

// Report is what a run did, for its log line and the tests.
type Report struct {
	Replayed  int `json:"replayed"`  // failure-queue messages replayed and removed
	Dropped   int `json:"dropped"`   // messages whose records the stream no longer holds
	Owed      int `json:"owed"`      // due uploads found
	Driven    int `json:"driven"`    // pipeline runs that ended without an error
	Failed    int `json:"failed"`    // pipeline runs that ended with one (tried again later)
	Postponed int `json:"postponed"` // due uploads left for the next run (time ran short)
	CountingReport
}

// Run replays the failure queue, then drives every due upload it has time
// for. An error means the run could not look (the ledger or the queue
// failed); uploads that fail are counted in the report and tried again.
func (r *Redriver) Run(ctx context.Context) (Report, error) {
	var rep Report
	if r.Failures != nil {
		replayed, dropped, err := r.Failures.Replay(ctx, r.log())
		rep.Replayed, rep.Dropped = replayed, dropped
		if err != nil {
			return rep, fmt.Errorf("redrive: replay the failure queue: %w", err)
		}
	}
	if r.Counting != nil {
		// First: a chunk counted here may make an upload ready, which the
		// stream then brings to the assembler.
		cr, err := r.Counting.Recount(ctx, r.now())
		rep.CountingReport = cr
		if err != nil {
			// Counted and reported; the uploads stay due for the next run.
			r.log().Warn("re-drive: counting stored chunks failed in part", "err", err)
		}
	}
	keys, err := r.Ledger.Overdue(ctx, r.now(), orDefault(r.Limit, DefaultLimit))
	if err != nil {
		return rep, fmt.Errorf("redrive: list owed uploads: %w", err)
	}
	rep.Owed = len(keys)
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, orDefault(r.Concurrency, DefaultConcurrency))
	for _, key := range keys {
		if !r.timeLeft(ctx) {
			rep.Postponed++
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			p := r.Pipeline
			p.Owner = r.Owner
			err := p.Run(ctx, key)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				rep.Failed++
				r.log().Warn("re-driven upload failed; it stays owed", "upload", key, "err", err)
				return
			}
			rep.Driven++
		})
	}
	wg.Wait()
	return rep, nil
}

// timeLeft reports whether the invocation has time for another assembly.
func (r *Redriver) timeLeft(ctx context.Context) bool {
	if ctx.Err() != nil {
		return false
	}
	deadline, ok := ctx.Deadline()
	reserve := r.Reserve
	if reserve <= 0 {
		reserve = DefaultReserve
	}
	return !ok || time.Until(deadline) > reserve
}

func (r *Redriver) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

func (r *Redriver) log() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.Default()
}

func orDefault(n, def int) int {
	if n > 0 {
		return n
	}
	return def
}
