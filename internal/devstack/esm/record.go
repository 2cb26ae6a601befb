package esm

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
)

// record is a stream record on its way to the function.
type record struct {
	raw       json.RawMessage // as Lambda delivers it: events.DynamoDBEventRecord
	seq       string
	created   time.Time
	partition string // the partition key's value, as JSON
}

// eventRecord is the shape of a record in a Lambda DynamoDB event.
type eventRecord struct {
	EventID        string            `json:"eventID"`
	EventName      string            `json:"eventName"`
	EventVersion   string            `json:"eventVersion"`
	EventSource    string            `json:"eventSource"`
	AWSRegion      string            `json:"awsRegion"`
	Dynamodb       eventStreamRecord `json:"dynamodb"`
	EventSourceARN string            `json:"eventSourceARN"`
	UserIdentity   *eventIdentity    `json:"userIdentity,omitempty"`
}

type eventStreamRecord struct {
	ApproximateCreationDateTime int64          `json:"ApproximateCreationDateTime"`
	Keys                        map[string]any `json:"Keys,omitempty"`
	NewImage                    map[string]any `json:"NewImage,omitempty"`
	OldImage                    map[string]any `json:"OldImage,omitempty"`
	SequenceNumber              string         `json:"SequenceNumber"`
	SizeBytes                   int64          `json:"SizeBytes"`
	StreamViewType              string         `json:"StreamViewType"`
}

type eventIdentity struct {
	Type        string `json:"type"`
	PrincipalID string `json:"principalId"`
}

// newRecord turns a record the Streams API returned into the one Lambda
// hands the function.
func newRecord(r types.Record, streamARN, hashKey string) (*record, error) {
	if r.Dynamodb == nil {
		return nil, fmt.Errorf("esm: a record without its dynamodb part")
	}
	d := r.Dynamodb
	ev := eventRecord{
		EventID: aws.ToString(r.EventID), EventName: string(r.EventName), EventVersion: aws.ToString(r.EventVersion),
		EventSource: aws.ToString(r.EventSource), AWSRegion: aws.ToString(r.AwsRegion), EventSourceARN: streamARN,
		Dynamodb: eventStreamRecord{
			Keys: attrMap(d.Keys), NewImage: attrMap(d.NewImage), OldImage: attrMap(d.OldImage),
			SequenceNumber: aws.ToString(d.SequenceNumber), SizeBytes: aws.ToInt64(d.SizeBytes),
			StreamViewType: string(d.StreamViewType),
		},
	}
	var created time.Time
	if d.ApproximateCreationDateTime != nil {
		created = *d.ApproximateCreationDateTime
		ev.Dynamodb.ApproximateCreationDateTime = created.Unix()
	}
	if r.UserIdentity != nil {
		ev.UserIdentity = &eventIdentity{Type: aws.ToString(r.UserIdentity.Type), PrincipalID: aws.ToString(r.UserIdentity.PrincipalId)}
	}
	raw, err := json.Marshal(ev)
	if err != nil {
		return nil, err
	}
	pk, _ := json.Marshal(ev.Dynamodb.Keys[hashKey])
	return &record{raw: raw, seq: ev.Dynamodb.SequenceNumber, created: created, partition: string(pk)}, nil
}

// attrMap renders attribute values in DynamoDB JSON, as Lambda does.
func attrMap(m map[string]types.AttributeValue) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = attrValue(v)
	}
	return out
}

func attrValue(v types.AttributeValue) map[string]any {
	b64 := base64.StdEncoding.EncodeToString
	switch x := v.(type) {
	case *types.AttributeValueMemberS:
		return map[string]any{"S": x.Value}
	case *types.AttributeValueMemberN:
		return map[string]any{"N": x.Value}
	case *types.AttributeValueMemberB:
		return map[string]any{"B": b64(x.Value)}
	case *types.AttributeValueMemberBOOL:
		return map[string]any{"BOOL": x.Value}
	case *types.AttributeValueMemberNULL:
		return map[string]any{"NULL": x.Value}
	case *types.AttributeValueMemberSS:
		return map[string]any{"SS": x.Value}
	case *types.AttributeValueMemberNS:
		return map[string]any{"NS": x.Value}
	case *types.AttributeValueMemberBS:
		l := make([]string, len(x.Value))
		for i, b := range x.Value {
			l[i] = b64(b)
		}
		return map[string]any{"BS": l}
	case *types.AttributeValueMemberL:
		l := make([]any, len(x.Value))
		for i, e := range x.Value {
			l[i] = attrValue(e)
		}
		return map[string]any{"L": l}
	case *types.AttributeValueMemberM:
		return map[string]any{"M": attrMap(x.Value)}
	}
	return map[string]any{}
}

// event is the Lambda event for a batch: {"Records": [...]}.
func event(recs []*record) []byte {
	var b bytes.Buffer
	b.WriteString(`{"Records":[`)
	for i, r := range recs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(r.raw)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}
