// Package publish announces finished uploads: to the log, to a webhook, and
// (eventbridge.go) to Amazon EventBridge.
package publish

import (
	"context"
	"errors"
	"log/slog"

	"github.com/flowgate/flowgate/shared/upload"
)

// Log writes each event as one structured log line.
type Log struct{ Logger *slog.Logger }

func (l Log) Publish(ctx context.Context, ev upload.Event) error {
	l.Logger.LogAttrs(ctx, slog.LevelInfo, "upload completed",
		slog.String("detailType", upload.EventDetailType),
		slog.Any("detail", ev))
	return nil
}

// All publishes to each publisher in turn and reports every failure, so a
// failing webhook does not silence the log (and a retry repeats both, which
// the at-least-once contract allows).
type All []upload.Publisher

func (a All) Publish(ctx context.Context, ev upload.Event) error {
	var errs []error
	for _, p := range a {
		if err := p.Publish(ctx, ev); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
