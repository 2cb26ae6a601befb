package upload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/flowgate/flowgate/shared/logctx"
)

// PipelineMetrics is told how assemblies go (metrics.Metrics implements it).
type PipelineMetrics interface {
	// Assembled: an upload was assembled and its result recorded, in d.
	Assembled(d time.Duration, size int64)
	// AssemblyFailed: "permanent" (recorded as failed) or "retry" (Run
	// returned an error; the caller tries again).
	AssemblyFailed(kind string)
}

// Pipeline takes a ready upload to its end: claim, assemble, record, publish.
// The same code runs in the embedded server's workers and in the assembler
// Lambda behind the DynamoDB stream; both may hand it the same upload more
// than once, and it does the work once.
type Pipeline struct {
	Ledger    Ledger
	Assembler Assembler
	Publisher Publisher
	// Owner names this assembler in claims; unique per process.
	Owner string
	// Lease is how long a claim holds before another assembler may take the
	// upload over. It must outlast one assembly of the largest file.
	Lease time.Duration
	Log   *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Metrics, if set, counts assemblies, their duration and failures.
	Metrics PipelineMetrics
	// MaxAttempts is how many assemblies of one upload may fail for now
	// before it is recorded as failed for good (0 means DefaultMaxAttempts),
	// so that an upload ends complete or failed in a bounded time whatever
	// goes wrong.
	MaxAttempts int
}

// DefaultMaxAttempts is Pipeline.MaxAttempts's default. On AWS the stream
// makes the first 11 attempts within minutes (its MaximumRetryAttempts is
// 10); the re-drive makes the rest, each after the wait of retryDelay, so the
// last one starts about five hours after the first.
const DefaultMaxAttempts = 16

// Run does whatever the upload still needs. It returns nil when nothing is
// left to do here (finished, failed for good, or in another assembler's
// hands), and an error when the caller should try again later.
//
// Its log lines carry the upload key. When ctx has a log scope (package
// logctx), as when a request's last chunk runs the pipeline inline, they go
// to that scope's logger with its attributes; otherwise to Log.
func (p *Pipeline) Run(ctx context.Context, key string) error {
	ctx = logctx.Start(ctx, p.Log, slog.String("upload", key))
	err := p.run(ctx, key, logctx.From(ctx, nil))
	if err != nil && p.Metrics != nil {
		p.Metrics.AssemblyFailed("retry")
	}
	return err
}

func (p *Pipeline) run(ctx context.Context, key string, log *slog.Logger) error {
	rec, err := p.Ledger.Claim(ctx, key, p.Owner, p.Lease)
	switch {
	case errors.Is(err, ErrNotClaimable):
		// A duplicate trigger, or an upload someone else holds. The one case
		// left for us is a result recorded whose event never went out.
		if rec.State == StateComplete && !rec.Published {
			return p.publish(ctx, rec, log)
		}
		return nil
	case errors.Is(err, ErrNotFound):
		log.Warn("nothing to assemble: no record")
		return nil
	case err != nil:
		return fmt.Errorf("claim: %w", err)
	}

	started := p.now()
	res, err := p.Assembler.Assemble(ctx, rec)
	var perm *PermanentError
	if err != nil && !errors.As(err, &perm) && rec.Attempts >= p.maxAttempts() {
		perm = &PermanentError{Reason: fmt.Sprintf("assembly failed %d times; the last error: %v", rec.Attempts, err)}
	}
	if perm != nil {
		log.Error("assembly failed for good", "reason", perm.Reason)
		if p.Metrics != nil {
			p.Metrics.AssemblyFailed("permanent")
		}
		if ferr := p.Ledger.Fail(ctx, key, p.Owner, perm.Reason); ferr != nil && !errors.Is(ferr, ErrLeaseLost) {
			return fmt.Errorf("record failure: %w", ferr)
		}
		return nil
	}
	if err != nil {
		// Keep the claim only a while, so that another attempt (the
		// stream's retry, a worker's, or the re-drive) can come sooner than
		// the whole lease, and note why for the status.
		until := p.now().Add(retryDelay(rec.Attempts))
		if perr := p.Ledger.Postpone(context.WithoutCancel(ctx), key, p.Owner, err.Error(), until); perr != nil && !errors.Is(perr, ErrLeaseLost) {
			log.Warn("could not record the failed attempt", "err", perr)
		}
		return fmt.Errorf("assemble: %w", err)
	}
	if err := p.Ledger.Complete(ctx, key, p.Owner, res); err != nil {
		if errors.Is(err, ErrLeaseLost) {
			// Another assembler took over after our lease ran out; its
			// result, built from the same chunks, is the one recorded.
			log.Warn("lease lost before recording the result")
			return nil
		}
		return fmt.Errorf("record result: %w", err)
	}
	rec.State, rec.Result, rec.UpdatedAt = StateComplete, &res, p.now()
	took := p.now().Sub(started)
	log.Info("assembled", "size", res.Size, "location", res.Location, "seconds", took.Seconds())
	if p.Metrics != nil {
		p.Metrics.Assembled(took, res.Size)
	}
	return p.publish(ctx, rec, log)
}

func (p *Pipeline) publish(ctx context.Context, rec Record, log *slog.Logger) error {
	if p.Publisher != nil {
		if err := p.Publisher.Publish(ctx, EventFor(rec, p.now())); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
	}
	if err := p.Ledger.MarkPublished(ctx, rec.Key); err != nil {
		// The event went out; at worst a retry sends it again, which the
		// at-least-once contract allows.
		log.Warn("could not mark published", "err", err)
	}
	return nil
}

// EventFor builds the completion event of a complete record.
func EventFor(rec Record, now time.Time) Event {
	ev := Event{
		UploadKey:    rec.Key,
		Namespace:    rec.Namespace,
		Identifier:   rec.Identifier,
		FileName:     rec.FileName,
		RelativePath: rec.RelativePath,
		Chunks:       rec.TotalChunks,
		StartedAt:    rec.CreatedAt,
		CompletedAt:  rec.UpdatedAt,
	}
	if ev.CompletedAt.IsZero() {
		ev.CompletedAt = now
	}
	if r := rec.Result; r != nil {
		ev.Location, ev.Bucket, ev.Object, ev.Size, ev.ETag = r.Location, r.Bucket, r.Object, r.Size, r.ETag
		ev.CRC64NVME, ev.ContentType, ev.ContentDisposition = r.CRC64NVME, r.ContentType, r.ContentDisposition
	}
	return ev
}

func (p *Pipeline) maxAttempts() int {
	if p.MaxAttempts > 0 {
		return p.MaxAttempts
	}
	return DefaultMaxAttempts
}

// retryDelay is how long an upload whose attempt-th assembly failed waits
// before anyone but its owner may try again: doubling from a minute, at most
// an hour.
func retryDelay(attempt int) time.Duration {
	return min(time.Minute<<min(max(attempt-1, 0), 6), time.Hour)
}

func (p *Pipeline) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}
