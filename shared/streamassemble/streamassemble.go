// Package streamassemble is the assembler Lambda's logic: it takes a batch of
// DynamoDB stream records from the ledger table and
//
//   - runs the assembly pipeline for each upload record that became ready;
//   - discards the staged chunks of each upload record that was removed
//     (DynamoDB's TTL expiring an abandoned upload), unless a newer record
//     for the same key exists by then.
//
// Records are processed in order; each failure is reported back by sequence
// number (ReportBatchItemFailures), so Lambda retries from the first failed
// record and never skips one. Everything here is idempotent, which the
// stream's at-least-once delivery needs.
//
// The event source mapping should filter the stream to what this handles:
//
//	{"eventName": ["INSERT", "MODIFY"], "dynamodb": {"NewImage": {"sk": {"S": ["META"]}, "status": {"S": ["ready"]}}}}
//	{"eventName": ["REMOVE"], "dynamodb": {"OldImage": {"sk": {"S": ["META"]}}}}
//
// Expiry is handled here rather than by a scheduled sweep: TTL removal is
// free, arrives on the stream the assembler already reads, and names the
// exact upload, so no scan of the table or the bucket is ever needed. The
// bucket's lifecycle rule on the staging prefix (and for incomplete
// multipart uploads) is the backstop for anything this misses.
package streamassemble

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/aws/aws-lambda-go/events"

	"github.com/flowgate/flowgate/shared/upload"
)

// Handler handles stream batches.
type Handler struct {
	// Pipeline is copied for each record, with Owner set from the record's
	// event ID: a retried record (after a timeout or crash) re-claims its
	// own upload at once instead of waiting for the lease to run out.
	Pipeline upload.Pipeline
	Store    upload.ChunkStore
	Log      *slog.Logger
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
	switch r.EventName {
	case "INSERT", "MODIFY":
		img := r.Change.NewImage
		if str(img, "sk") != "META" || str(img, "status") != string(upload.StateReady) {
			return nil // not for us (the filter should have kept it away)
		}
		key := str(img, "key")
		if key == "" {
			return errors.New("ready record without a key")
		}
		p := h.Pipeline
		p.Owner = "stream:" + r.EventID
		return p.Run(ctx, key)
	case "REMOVE":
		img := r.Change.OldImage
		if str(img, "sk") != "META" {
			return nil
		}
		key := str(img, "key")
		if key == "" {
			return errors.New("removed record without a key")
		}
		// The same upload may have started again under a new record since;
		// its chunks share the key, so they must stay.
		if _, err := h.Pipeline.Ledger.Get(ctx, key); err == nil {
			h.log().Info("expired record replaced by a newer one; chunks kept", "upload", key)
			return nil
		} else if !errors.Is(err, upload.ErrNotFound) {
			return fmt.Errorf("check for a newer record: %w", err)
		}
		if err := h.Store.Discard(ctx, key); err != nil {
			return fmt.Errorf("discard chunks: %w", err)
		}
		h.log().Info("expired upload discarded", "upload", key, "state", str(img, "status"))
		return nil
	}
	return nil
}

func (h *Handler) log() *slog.Logger {
	if h.Log != nil {
		return h.Log
	}
	return slog.Default()
}

// str reads a string attribute of a stream image, or "".
func str(img map[string]events.DynamoDBAttributeValue, name string) string {
	v, ok := img[name]
	if !ok || v.DataType() != events.DataTypeString {
		return ""
	}
	return v.String()
}
