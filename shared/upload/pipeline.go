package upload

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

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
}

// Run does whatever the upload still needs. It returns nil when nothing is
// left to do here (finished, failed for good, or in another assembler's
// hands), and an error when the caller should try again later.
func (p *Pipeline) Run(ctx context.Context, key string) error {
	log := p.logger().With("upload", key)
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
	if errors.As(err, &perm) {
		log.Error("assembly failed for good", "reason", perm.Reason)
		if ferr := p.Ledger.Fail(ctx, key, p.Owner, perm.Reason); ferr != nil && !errors.Is(ferr, ErrLeaseLost) {
			return fmt.Errorf("record failure: %w", ferr)
		}
		return nil
	}
	if err != nil {
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
	log.Info("assembled", "size", res.Size, "location", res.Location,
		"seconds", p.now().Sub(started).Seconds())
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
	}
	return ev
}

func (p *Pipeline) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

func (p *Pipeline) logger() *slog.Logger {
	if p.Log != nil {
		return p.Log
	}
	return slog.Default()
}
