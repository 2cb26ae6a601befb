// Command count is the counting function of the direct data path: S3's
// ObjectCreated notification of each chunk a client stored with a URL the
// upload function signed starts it, and it counts the chunk in the ledger
// (package s3count), exactly as the upload function counts a chunk it
// stored itself. Lambda invokes it asynchronously: an error makes Lambda
// retry the event, then give it to the on-failure queue that the re-drive
// replays.
package main

import (
	"context"

	"github.com/aws/aws-lambda-go/events"

	"github.com/flowgate/flowgate/shared/awsdeploy"
	"github.com/flowgate/flowgate/shared/s3count"
)

func main() { awsdeploy.Start("count", newHandler) }

// newHandler builds the function's handler from its environment.
func newHandler(ctx context.Context, getenv func(string) string) (func(context.Context, events.S3Event) (s3count.Report, error), error) {
	d, err := awsdeploy.FromEnv(ctx, getenv)
	if err != nil {
		return nil, err
	}
	log := d.Log
	h := d.CountHandler()
	return func(ctx context.Context, ev events.S3Event) (s3count.Report, error) {
		rep, err := h.Handle(ctx, ev)
		log.InfoContext(ctx, "counted", "records", len(ev.Records), "counted", rep.Counted, "refused", rep.Refused,
			"stale", rep.Stale, "done", rep.Done, "missing", rep.Missing, "ignored", rep.Ignored)
		return rep, err
	}, nil
}
