package esm

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// Conditions of a FailureMessage, as Lambda names them.
const (
	RetryAttemptsExhausted = "RetryAttemptsExhausted"
	RecordAgeExceeded      = "RecordAgeExceeded"
)

// FailureMessage is what Lambda sends the on-failure destination when it
// gives up on a batch of stream records: where they are in the stream, not
// the records themselves.
type FailureMessage struct {
	RequestContext struct {
		RequestID              string `json:"requestId"`
		FunctionArn            string `json:"functionArn"`
		Condition              string `json:"condition"`
		ApproximateInvokeCount int    `json:"approximateInvokeCount"`
	} `json:"requestContext"`
	// ResponseContext is the last invocation's; nil if there was none.
	ResponseContext *struct {
		StatusCode      int    `json:"statusCode"`
		ExecutedVersion string `json:"executedVersion"`
		FunctionError   string `json:"functionError,omitempty"`
	} `json:"responseContext,omitempty"`
	Version            string `json:"version"`
	Timestamp          string `json:"timestamp"`
	DDBStreamBatchInfo struct {
		ShardID                         string `json:"shardId"`
		StartSequenceNumber             string `json:"startSequenceNumber"`
		EndSequenceNumber               string `json:"endSequenceNumber"`
		ApproximateArrivalOfFirstRecord string `json:"approximateArrivalOfFirstRecord"`
		ApproximateArrivalOfLastRecord  string `json:"approximateArrivalOfLastRecord"`
		BatchSize                       int    `json:"batchSize"`
		StreamArn                       string `json:"streamArn"`
	} `json:"DDBStreamBatchInfo"`
}

// Destination receives the FailureMessage bodies of batches given up.
type Destination interface {
	Send(ctx context.Context, body string) error
}

// SQSAPI is what SQSDestination needs of the SDK's sqs client.
type SQSAPI interface {
	SendMessage(context.Context, *sqs.SendMessageInput, ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

// SQSDestination sends failure messages to an SQS queue, as Lambda does.
type SQSDestination struct {
	Client   SQSAPI
	QueueURL string
}

// Send sends one message.
func (d SQSDestination) Send(ctx context.Context, body string) error {
	_, err := d.Client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(d.QueueURL), MessageBody: aws.String(body)})
	if err != nil {
		return fmt.Errorf("esm: send to the on-failure destination: %w", err)
	}
	return nil
}

// attempt is what is known of a batch's last invocation.
type attempt struct {
	invokes       int
	requestID     string
	functionError string // "Unhandled" after a function error, "" after a partial failure
}

func (m *Mapping) failureMessage(shard, condition string, recs []*record, last attempt) string {
	var msg FailureMessage
	rc := &msg.RequestContext
	rc.RequestID = last.requestID
	if rc.RequestID == "" {
		rc.RequestID = newUUID()
	}
	rc.FunctionArn = fmt.Sprintf("arn:aws:lambda:%s:%s:function:%s", m.opt.Region, m.opt.Account, m.cfg.FunctionName)
	rc.Condition = condition
	rc.ApproximateInvokeCount = last.invokes
	if last.invokes > 0 {
		msg.ResponseContext = &struct {
			StatusCode      int    `json:"statusCode"`
			ExecutedVersion string `json:"executedVersion"`
			FunctionError   string `json:"functionError,omitempty"`
		}{StatusCode: 200, ExecutedVersion: "$LATEST", FunctionError: last.functionError}
	}
	msg.Version = "1.0"
	msg.Timestamp = m.opt.Now().UTC().Format("2006-01-02T15:04:05.000Z")
	b := &msg.DDBStreamBatchInfo
	b.ShardID = shard
	b.StartSequenceNumber = recs[0].seq
	b.EndSequenceNumber = recs[len(recs)-1].seq
	b.ApproximateArrivalOfFirstRecord = recs[0].created.UTC().Format(time.RFC3339)
	b.ApproximateArrivalOfLastRecord = recs[len(recs)-1].created.UTC().Format(time.RFC3339)
	b.BatchSize = len(recs)
	b.StreamArn = m.opt.StreamARN
	out, _ := json.Marshal(msg)
	return string(out)
}

// giveUp moves past recs: the destination gets their FailureMessage first,
// retried until it takes it (or the mapping stops), as Lambda does not
// advance past a batch it could not report.
func (m *Mapping) giveUp(ctx context.Context, shard, condition string, recs []*record, last attempt) {
	m.count(func(s *Stats) { s.Discarded += len(recs) })
	m.opt.Log.Warn("esm: giving up on records", "condition", condition, "shard", shard, "records", len(recs),
		"start", recs[0].seq, "end", recs[len(recs)-1].seq)
	if m.opt.OnFailure == nil {
		return
	}
	body := m.failureMessage(shard, condition, recs, last)
	for try := 1; ; try++ {
		err := m.opt.OnFailure.Send(ctx, body)
		if err == nil {
			m.count(func(s *Stats) { s.DestinationMessages++ })
			return
		}
		m.opt.Log.Warn("esm: on-failure destination refused the message", "err", err)
		if !sleep(ctx, m.backoff(try)) {
			return
		}
	}
}
