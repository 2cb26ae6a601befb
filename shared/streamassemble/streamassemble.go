// Package streamassemble is the assembler Lambda's logic: it assembles the
// uploads that a batch of the ledger table's DynamoDB stream records shows
// ready, and cleans up after the records that TTL removed. Of the batch it
//
//   - runs the assembly pipeline for each upload record that became ready;
//   - for each upload record that was removed (DynamoDB's TTL expiring it):
//     discards the chunks of that record's generation, or, if work on it was
//     still owed (ready or assembling: the stream gave up on it, and the
//     re-drive did not catch it in time), puts the record back as ready so
//     that it is assembled after all.
//
// Records are processed in order; each failure is reported back by sequence
// number (ReportBatchItemFailures), so Lambda retries from the first failed
// record and never skips one. Everything here is idempotent, which the
// stream's at-least-once delivery needs. The event source mapping filters the
// stream to what this handles (see package dynamoledger's stream.go).
//
// Expiry is handled here rather than by a scheduled sweep: TTL removal is
// free, arrives on the stream the assembler already reads, and names the
// exact upload and generation, so no scan of the table or the bucket is ever
// needed. Discarding one generation's chunks never touches another's (a new
// generation of the same upload may have started meanwhile; its chunks live
// elsewhere). The bucket's lifecycle rule on the staging prefix (and for
// incomplete multipart uploads) is the backstop for anything this misses, and
// the re-drive (package redrive) for any ready upload the stream gave up on.
package streamassemble

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/flowgate/flowgate/shared/dynamoledger"
	"github.com/flowgate/flowgate/shared/upload"
)

// Handler handles stream batches.
type Handler struct {
	// Pipeline is copied for each record, with Owner set from the record's
	// event ID: a retried record (after a timeout or crash) re-claims its
	// own upload at once instead of waiting for the lease to run out.
	Pipeline upload.Pipeline
	Store    upload.ChunkStore
	// Restorer puts back a removed record whose work is owed.
	Restorer Restorer
	Log      *slog.Logger
}

// Restorer is what the handler needs of the ledger for a removed record:
// package dynamoledger's Ledger.
type Restorer interface {
	Restore(ctx context.Context, old map[string]types.AttributeValue) (bool, error)
}

// Handle is the Lambda handler.
func (h *Handler) Handle(ctx context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
	var resp events.DynamoDBEventResponse
	for _, r := range ev.Records {
		if err := h.record(ctx, r); err != nil {
			h.log().Error("stream record failed; it will be retried",
				"eventId", r.EventID, "eventName", r.EventName, "sequence", r.Change.SequenceNumber, "err", err)
			resp.BatchItemFailures = append(resp.BatchItemFailures,
				events.DynamoDBBatchItemFailure{ItemIdentifier: r.Change.SequenceNumber})
		}
	}
	return resp, nil
}

func (h *Handler) record(ctx context.Context, r events.DynamoDBEventRecord) error {
	c, ok := dynamoledger.ReadChange(r)
	if !ok {
		return nil // not an upload record (the filter should have kept it away)
	}
	if c.Key == "" {
		return errors.New("upload record without a key")
	}
	switch {
	case !c.Removed && c.State == upload.StateReady:
		p := h.Pipeline
		p.Owner = "stream:" + r.EventID
		return p.Run(ctx, c.Key)
	case c.Removed:
		return h.removed(ctx, c)
	}
	return nil // not for us
}

// removed handles a record that DynamoDB's TTL deleted.
func (h *Handler) removed(ctx context.Context, c dynamoledger.Change) error {
	log := h.log().With("upload", c.Key, "generation", c.Generation, "state", string(c.State))
	if c.Generation == "" {
		log.Warn("removed record names no generation; its chunks are left to the lifecycle rule")
		return nil
	}
	if c.State == upload.StateReady || c.State == upload.StateAssembling {
		// Every chunk of it was acknowledged and is stored: never discard
		// it. Put it back for the assembler and the re-drive.
		put, err := h.Restorer.Restore(ctx, c.Image)
		if err != nil {
			return fmt.Errorf("restore an owed upload: %w", err)
		}
		if put {
			log.Warn("an upload that was still owed its assembly expired; put back as ready")
			return nil
		}
	}
	// A record of the same generation is this one put back (by an earlier
	// delivery of this stream record): its chunks stay. Any other is a new
	// generation, whose chunks live elsewhere.
	rec, err := h.Pipeline.Ledger.Get(ctx, c.Key)
	switch {
	case err == nil && rec.Generation == c.Generation:
		return nil
	case err != nil && !errors.Is(err, upload.ErrNotFound):
		return fmt.Errorf("read the upload's record: %w", err)
	}
	if err := h.Store.Discard(ctx, c.Key, c.Generation); err != nil {
		return fmt.Errorf("discard chunks: %w", err)
	}
	log.Info("expired upload discarded")
	return nil
}

func (h *Handler) log() *slog.Logger {
	if h.Log != nil {
		return h.Log
	}
	return slog.Default()
}
