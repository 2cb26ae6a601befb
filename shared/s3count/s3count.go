// Package s3count is the counting function's logic on the direct data path:
// S3 reports each chunk object a client stored with a URL the upload
// function signed (an ObjectCreated event, in the form Lambda receives S3's
// notifications), and the handler counts the chunk in the ledger, as the
// upload function counts a chunk it stored itself. From the count on,
// everything is as on the proxy path: the last chunk makes the upload
// ready, the ledger's stream brings it to the assembler.
//
// Notifications come at least once, late, out of order, or never (S3 does
// not promise every one, and Lambda gives up an event that keeps failing).
// So the handler is idempotent (upload.Service.CountStored), and the
// re-drive (Recounter, run by package redrive) replays the events the
// function gave up and counts whatever is stored but was never counted.
//
// The handler trusts nothing of an event but that something may have
// changed at its key: it reads the object's size and checksum from S3 and
// the upload's geometry and generation from the ledger. An object that is
// not a chunk of its upload (another size, no checksum, a number the
// upload does not have) is deleted and not counted; a key that is no
// chunk's, or a chunk of another generation than the record's, is left
// alone (see upload.StoredStale).
package s3count

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/aws/aws-lambda-go/events"

	"github.com/flowgate/flowgate/shared/logctx"
	"github.com/flowgate/flowgate/shared/upload"
)

// Keys reads chunk object keys (s3store.Store implements it).
type Keys interface {
	ParseChunkKey(object string) (key, gen string, n int, ok bool)
}

// Handler handles S3 ObjectCreated events for the staging prefix.
type Handler struct {
	Service *upload.Service
	Keys    Keys
	// Bucket is the deployment's bucket; events of any other are ignored.
	Bucket string
	Log    *slog.Logger
}

// Report is what one event's records came to.
type Report struct {
	Counted int `json:"counted"` // chunks counted (now or before)
	Refused int `json:"refused"` // objects deleted: not chunks of their upload
	Stale   int `json:"stale"`   // chunks of a generation not (or no longer) the record's
	Done    int `json:"done"`    // chunks of uploads past receiving
	Missing int `json:"missing"` // objects gone before they were looked at
	Ignored int `json:"ignored"` // records that are not a chunk created in this bucket
}

// Handle counts the chunk of every record. It returns an error only for a
// failure worth a retry (the ledger or S3 unavailable), after handling
// every record it could: Lambda then invokes it again with the whole event,
// which the records already counted pass through unchanged.
func (h *Handler) Handle(ctx context.Context, ev events.S3Event) (Report, error) {
	var rep Report
	var errs []error
	for _, rec := range ev.Records {
		if err := h.record(ctx, rec, &rep); err != nil {
			errs = append(errs, err)
		}
	}
	return rep, errors.Join(errs...)
}

func (h *Handler) record(ctx context.Context, rec events.S3EventRecord, rep *Report) error {
	log := h.log()
	object := rec.S3.Object.URLDecodedKey
	if object == "" {
		// Decoded by events.S3Object's UnmarshalJSON; a record built in
		// Go (tests, the re-drive) may carry only the encoded key.
		object, _ = url.QueryUnescape(rec.S3.Object.Key)
	}
	if !strings.HasPrefix(rec.EventName, "ObjectCreated:") || (h.Bucket != "" && rec.S3.Bucket.Name != h.Bucket) {
		rep.Ignored++
		log.WarnContext(ctx, "an event that is not a chunk created in this bucket; ignored",
			"event", rec.EventName, "bucket", rec.S3.Bucket.Name, "object", clip(object))
		return nil
	}
	key, gen, n, ok := h.Keys.ParseChunkKey(object)
	if !ok {
		rep.Ignored++
		log.WarnContext(ctx, "an object created under the staging prefix that is not a chunk; left alone", "object", clip(object))
		return nil
	}
	ctx = logctx.Start(ctx, log)
	got, err := h.Service.CountStored(ctx, key, gen, n)
	if err != nil {
		log.WarnContext(ctx, "could not count a stored chunk; tried again", "upload", key, "generation", gen, "chunk", n, "err", err)
		return fmt.Errorf("chunk %d of %s/%s: %w", n, key, gen, err)
	}
	switch got {
	case upload.StoredCounted:
		rep.Counted++
	case upload.StoredRefused:
		rep.Refused++
	case upload.StoredStale:
		rep.Stale++
		log.InfoContext(ctx, "a chunk of a generation that is not the upload's; left alone", "upload", key, "generation", gen, "chunk", n)
	case upload.StoredDone:
		rep.Done++
	case upload.StoredMissing:
		rep.Missing++
	}
	return nil
}

func (h *Handler) log() *slog.Logger {
	if h.Log != nil {
		return h.Log
	}
	return slog.Default()
}

func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
