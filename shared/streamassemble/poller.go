package streamassemble

import (
	"context"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/flowgate/flowgate/shared/upload"
)

// Poller stands in for the DynamoDB stream where there is none (dynalite,
// under `make dev`): it lists the uploads the pipeline owes work and hands
// them to the Handler as the stream would, one ready record per upload, so
// the assembler runs through exactly the code it runs on AWS.
//
// Each upload's record carries a stable event ID, like a stream record that
// Lambda retries: an assembly cut off by a restart is re-claimed at once.
type Poller struct {
	Handler *Handler
	Ledger  upload.Scanner
	// Interval between polls; 0 means one second.
	Interval time.Duration
}

// Run polls until ctx is done.
func (p *Poller) Run(ctx context.Context) {
	every := p.Interval
	if every <= 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := p.Once(ctx); err != nil && ctx.Err() == nil {
			p.Handler.log().Warn("poll for ready uploads failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Once hands every pending upload to the Handler in one batch and returns
// how many records failed (and will be tried again at the next poll).
func (p *Poller) Once(ctx context.Context) (failed int, err error) {
	pending, err := p.Ledger.Pending(ctx)
	if err != nil || len(pending) == 0 {
		return 0, err
	}
	var batch events.DynamoDBEvent
	for i, rec := range pending {
		batch.Records = append(batch.Records, events.DynamoDBEventRecord{
			EventID:   "poll:" + rec.Key,
			EventName: "MODIFY",
			Change: events.DynamoDBStreamRecord{
				SequenceNumber: time.Now().Format("20060102150405") + "-" + strconv.Itoa(i),
				NewImage: map[string]events.DynamoDBAttributeValue{
					"sk":     events.NewStringAttribute("META"),
					"key":    events.NewStringAttribute(rec.Key),
					"status": events.NewStringAttribute(string(upload.StateReady)),
				},
			},
		})
	}
	resp, err := p.Handler.Handle(ctx, batch)
	return len(resp.BatchItemFailures), err
}
