package publish

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/flowgate/flowgate/shared/upload"
)

// EventBridgeAPI is the call EventBridge needs; *eventbridge.Client has it.
type EventBridgeAPI interface {
	PutEvents(context.Context, *eventbridge.PutEventsInput, ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error)
}

// EventBridge puts each completion event on an event bus, with source
// upload.EventSource ("flowgate"), detail-type upload.EventDetailType
// ("Upload Completed") and the upload.Event as JSON detail. A rule such as
//
//	{"source": ["flowgate"], "detail-type": ["Upload Completed"]}
//
// routes them to whatever processes finished files.
type EventBridge struct {
	Client EventBridgeAPI
	// Bus is the event bus name or ARN; empty means the account's default bus.
	Bus string
	// Resources, if set, are ARNs attached to every event (the bucket's, say).
	Resources []string
}

// Publish sends one event. PutEvents can accept the request yet refuse the
// entry, so the entry's own result is checked too.
func (p EventBridge) Publish(ctx context.Context, ev upload.Event) error {
	detail, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("eventbridge: encode event: %w", err)
	}
	entry := types.PutEventsRequestEntry{
		Source:     aws.String(upload.EventSource),
		DetailType: aws.String(upload.EventDetailType),
		Detail:     aws.String(string(detail)),
		Time:       aws.Time(ev.CompletedAt),
		Resources:  p.Resources,
	}
	if p.Bus != "" {
		entry.EventBusName = aws.String(p.Bus)
	}
	out, err := p.Client.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{entry}})
	if err != nil {
		return fmt.Errorf("eventbridge: put event: %w", err)
	}
	if out.FailedEntryCount > 0 || (len(out.Entries) > 0 && out.Entries[0].ErrorCode != nil) {
		var code, msg string
		if len(out.Entries) > 0 {
			code, msg = aws.ToString(out.Entries[0].ErrorCode), aws.ToString(out.Entries[0].ErrorMessage)
		}
		return fmt.Errorf("eventbridge: event refused: %s %s", code, msg)
	}
	return nil
}

var _ upload.Publisher = EventBridge{}
