// Command consumer is the example downstream consumer: an EventBridge rule
// sends it every "Upload Completed" event, and it logs what was uploaded.
// It is off by default (template.yaml's ExampleConsumer parameter); copy it
// as the start of real processing (thumbnails, a virus scan, ingestion):
// the event names the bucket and key of the finished file. Events arrive at
// least once, so real processing should de-duplicate on detail.uploadKey.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/flowgate/flowgate/shared/config"
	"github.com/flowgate/flowgate/shared/upload"
)

func main() {
	h, err := newHandler(os.Getenv)
	if err != nil {
		slog.Error("consumer function cannot start", "err", err)
		os.Exit(1)
	}
	lambda.Start(h.handle)
}

type consumer struct{ log *slog.Logger }

func newHandler(getenv func(string) string) (*consumer, error) {
	e := config.NewEnv(getenv)
	level := e.Level("FLOWGATE_LOG_LEVEL", slog.LevelInfo)
	if err := e.Err(); err != nil {
		return nil, err
	}
	return &consumer{log: slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))}, nil
}

// handle logs one completion event. An event it cannot read is an error, so
// EventBridge retries it (and, past its retries, it shows in the function's
// error metric).
func (c *consumer) handle(ctx context.Context, ev events.CloudWatchEvent) error {
	if ev.Source != upload.EventSource || ev.DetailType != upload.EventDetailType {
		return fmt.Errorf("consumer: unexpected event %q from %q", ev.DetailType, ev.Source)
	}
	var d upload.Event
	if err := json.Unmarshal(ev.Detail, &d); err != nil {
		return fmt.Errorf("consumer: event detail: %w", err)
	}
	if d.UploadKey == "" || d.Bucket == "" || d.Object == "" {
		return fmt.Errorf("consumer: event %s names no finished object", ev.ID)
	}
	c.log.InfoContext(ctx, "upload completed",
		"eventId", ev.ID, "uploadKey", d.UploadKey, "namespace", d.Namespace,
		"fileName", d.FileName, "relativePath", d.RelativePath,
		"bucket", d.Bucket, "key", d.Object, "size", d.Size, "chunks", d.Chunks,
		"seconds", d.CompletedAt.Sub(d.StartedAt).Seconds())
	return nil
}
