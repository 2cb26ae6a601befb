// Command redrive is the re-drive function, run on a schedule: it replays the
// stream batches the assembler's event source mapping gave up on, and
// assembles every upload owed work that nobody is working on (see package
// redrive), so that no upload depends on one delivery of the stream.
package main

import (
	"context"
	"encoding/json"

	"github.com/aws/aws-lambda-go/lambdacontext"

	"github.com/flowgate/flowgate/shared/awsdeploy"
	"github.com/flowgate/flowgate/shared/redrive"
)

func main() { awsdeploy.Start("redrive", newHandler) }

// newHandler builds the function's handler from its environment. The event
// (the schedule's, or anything given to a manual invocation) is not read:
// every run does the whole job.
func newHandler(ctx context.Context, getenv func(string) string) (func(context.Context, json.RawMessage) (redrive.Report, error), error) {
	d, err := awsdeploy.FromEnv(ctx, getenv)
	if err != nil {
		return nil, err
	}
	log := d.Log
	return func(ctx context.Context, _ json.RawMessage) (redrive.Report, error) {
		owner := "redrive"
		if lc, ok := lambdacontext.FromContext(ctx); ok {
			owner += ":" + lc.AwsRequestID
		}
		rep, err := d.Redriver(owner).Run(ctx)
		log.InfoContext(ctx, "re-drive", "replayed", rep.Replayed, "dropped", rep.Dropped, "owed", rep.Owed,
			"driven", rep.Driven, "failed", rep.Failed, "postponed", rep.Postponed)
		return rep, err
	}, nil
}
