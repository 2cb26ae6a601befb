package s3count

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/flowgate/flowgate/shared/logctx"
	"github.com/flowgate/flowgate/shared/redrive"
)

// Failures is the counting function's on-failure destination: an SQS queue
// of the events it gave up. A message is Lambda's record of an
// asynchronous invocation that failed (the event in its requestPayload),
// or the event itself (what EventBridge sends a rule's dead-letter queue
// when it could not invoke the function at all).
type Failures struct {
	Queue    redrive.QueueAPI
	QueueURL string
	// MaxMessages is how many messages one run takes on (0: 100).
	MaxMessages int
}

// Recounter is the direct data path's part of the re-drive
// (redrive.Counting): it replays the events the counting function gave up,
// then checks every upload due for it (upload.Service.CheckStored).
type Recounter struct {
	Handler  *Handler
	Failures *Failures // nil: no queue
	// Limit is how many uploads one run checks (0: 100).
	Limit int
}

// Recount implements redrive.Counting.
func (r *Recounter) Recount(ctx context.Context, now time.Time) (redrive.CountingReport, error) {
	ctx = logctx.Start(ctx, r.Handler.log())
	var rep redrive.CountingReport
	var errs []error
	if r.Failures != nil {
		n, err := r.Failures.replay(ctx, r.Handler)
		rep.Replayed = n
		if err != nil {
			errs = append(errs, fmt.Errorf("replay the counting function's failures: %w", err))
		}
	}
	limit := r.Limit
	if limit <= 0 {
		limit = 100
	}
	cr, err := r.Handler.Service.CheckStored(ctx, now, limit)
	rep.Checked, rep.Recounted = cr.Checked, cr.Recounted
	if err != nil {
		errs = append(errs, fmt.Errorf("check stored chunks: %w", err))
	}
	return rep, errors.Join(errs...)
}

// asyncFailure is the part of Lambda's record of a failed asynchronous
// invocation that holds the event.
type asyncFailure struct {
	RequestPayload json.RawMessage `json:"requestPayload"`
}

// replay handles the event of each message on the queue again, and
// removes the message once that succeeded (or once it proves not to be an
// event at all). A message whose event fails again stays, for the next run.
func (f *Failures) replay(ctx context.Context, h *Handler) (int, error) {
	max := f.MaxMessages
	if max <= 0 {
		max = 100
	}
	replayed := 0
	for seen := 0; seen < max; {
		out, err := f.Queue.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(f.QueueURL), MaxNumberOfMessages: int32(min(10, max-seen)),
		})
		if err != nil {
			return replayed, fmt.Errorf("receive: %w", err)
		}
		if len(out.Messages) == 0 {
			break
		}
		for _, m := range out.Messages {
			seen++
			ev, ok := eventOf(aws.ToString(m.Body))
			if !ok {
				h.log().ErrorContext(ctx, "a message on the counting function's failure queue holds no S3 event; removed", "body", clip(aws.ToString(m.Body)))
			} else if _, err := h.Handle(ctx, ev); err != nil {
				h.log().WarnContext(ctx, "a notification the counting function gave up failed again; tried again later", "err", err)
				continue
			}
			if _, err := f.Queue.DeleteMessage(ctx, &sqs.DeleteMessageInput{
				QueueUrl: aws.String(f.QueueURL), ReceiptHandle: m.ReceiptHandle,
			}); err != nil {
				return replayed, fmt.Errorf("delete a replayed message: %w", err)
			}
			if ok {
				replayed++
			}
		}
	}
	return replayed, nil
}

// eventOf reads the S3 event of a failure message.
func eventOf(body string) (events.S3Event, bool) {
	raw := json.RawMessage(body)
	var af asyncFailure
	if err := json.Unmarshal(raw, &af); err == nil && len(af.RequestPayload) > 0 {
		raw = af.RequestPayload
	}
	var ev events.S3Event
	if err := json.Unmarshal(raw, &ev); err != nil || len(ev.Records) == 0 {
		return events.S3Event{}, false
	}
	return ev, true
}
