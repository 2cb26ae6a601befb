package redrive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	stypes "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// QueueAPI is what Failures needs of the SDK's sqs client.
type QueueAPI interface {
	ReceiveMessage(context.Context, *sqs.ReceiveMessageInput, ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessage(context.Context, *sqs.DeleteMessageInput, ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error)
}

// StreamAPI is what Failures needs of the SDK's dynamodbstreams client.
type StreamAPI interface {
	GetShardIterator(context.Context, *dynamodbstreams.GetShardIteratorInput, ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetShardIteratorOutput, error)
	GetRecords(context.Context, *dynamodbstreams.GetRecordsInput, ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetRecordsOutput, error)
}

// StreamHandler handles a batch of stream records: the assembler's handler.
type StreamHandler interface {
	Handle(context.Context, events.DynamoDBEvent) (events.DynamoDBEventResponse, error)
}

// Failures is the on-failure destination of the stream's event source
// mapping: an SQS queue of messages that say which records were given up.
type Failures struct {
	Queue    QueueAPI
	QueueURL string
	Stream   StreamAPI
	Handler  StreamHandler
	// MaxMessages is how many messages one run takes on (0: 100).
	MaxMessages int
}

// failureMessage is the part of Lambda's on-failure message for a stream
// event source that says where the given-up records are.
type failureMessage struct {
	RequestContext struct {
		Condition string `json:"condition"`
	} `json:"requestContext"`
	DDBStreamBatchInfo struct {
		ShardID             string `json:"shardId"`
		StartSequenceNumber string `json:"startSequenceNumber"`
		EndSequenceNumber   string `json:"endSequenceNumber"`
		StreamArn           string `json:"streamArn"`
	} `json:"DDBStreamBatchInfo"`
}

// errGone means the stream no longer holds the records (it keeps them 24
// hours), or never had them.
var errGone = errors.New("the records are no longer in the stream")

// Replay takes messages off the queue and handles the records each names.
// A message is removed once its records were handled without a failure, or
// once they are gone from the stream; one whose records failed again stays
// (it shows again after the queue's visibility timeout, for the next run).
func (f *Failures) Replay(ctx context.Context, log *slog.Logger) (replayed, dropped int, err error) {
	max := orDefault(f.MaxMessages, 100)
	for seen := 0; seen < max; {
		out, err := f.Queue.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(f.QueueURL), MaxNumberOfMessages: int32(min(10, max-seen)),
		})
		if err != nil {
			return replayed, dropped, fmt.Errorf("receive: %w", err)
		}
		if len(out.Messages) == 0 {
			break
		}
		for _, m := range out.Messages {
			seen++
			done, gone := f.replay(ctx, aws.ToString(m.Body), log)
			if !done {
				continue
			}
			if _, err := f.Queue.DeleteMessage(ctx, &sqs.DeleteMessageInput{
				QueueUrl: aws.String(f.QueueURL), ReceiptHandle: m.ReceiptHandle,
			}); err != nil {
				return replayed, dropped, fmt.Errorf("delete a replayed message: %w", err)
			}
			if gone {
				dropped++
			} else {
				replayed++
			}
		}
	}
	return replayed, dropped, nil
}

// replay handles one message's records. done reports that the message can
// go; gone, that its records could not be read any more.
func (f *Failures) replay(ctx context.Context, body string, log *slog.Logger) (done, gone bool) {
	var msg failureMessage
	if err := json.Unmarshal([]byte(body), &msg); err != nil || msg.DDBStreamBatchInfo.ShardID == "" {
		log.Error("a message on the failure queue is not a stream batch's; removed", "body", truncate(body, 500))
		return true, true
	}
	info := msg.DDBStreamBatchInfo
	log = log.With("shard", info.ShardID, "from", info.StartSequenceNumber, "to", info.EndSequenceNumber, "condition", msg.RequestContext.Condition)
	recs, err := f.read(ctx, info.StreamArn, info.ShardID, info.StartSequenceNumber, info.EndSequenceNumber)
	if errors.Is(err, errGone) {
		// Every upload still owed work is in the index the re-drive reads;
		// an expired upload's chunks are the lifecycle rule's.
		log.Warn("given-up stream records are no longer in the stream; the re-drive covers what is owed", "err", err)
		return true, true
	}
	if err != nil {
		log.Warn("could not read given-up stream records; tried again later", "err", err)
		return false, false
	}
	resp, err := f.Handler.Handle(ctx, events.DynamoDBEvent{Records: recs})
	if err != nil || len(resp.BatchItemFailures) > 0 {
		log.Warn("replayed stream records failed again; tried again later", "records", len(recs), "failures", len(resp.BatchItemFailures), "err", err)
		return false, false
	}
	log.Info("replayed stream records the stream had given up", "records", len(recs))
	return true, false
}

// read returns the records of a shard from start to end (sequence numbers,
// inclusive), in the form Lambda delivers them.
func (f *Failures) read(ctx context.Context, stream, shard, start, end string) ([]events.DynamoDBEventRecord, error) {
	it, err := f.Stream.GetShardIterator(ctx, &dynamodbstreams.GetShardIteratorInput{
		StreamArn: aws.String(stream), ShardId: aws.String(shard),
		ShardIteratorType: stypes.ShardIteratorTypeAtSequenceNumber, SequenceNumber: aws.String(start),
	})
	if err != nil {
		return nil, streamErr(err)
	}
	var out []events.DynamoDBEventRecord
	iter := it.ShardIterator
	for page := 0; iter != nil; page++ {
		if page == 1000 {
			return nil, errors.New("the given-up records did not end")
		}
		res, err := f.Stream.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: iter})
		if err != nil {
			return nil, streamErr(err)
		}
		for _, r := range res.Records {
			seq := aws.ToString(r.Dynamodb.SequenceNumber)
			if seqLess(end, seq) {
				return out, nil
			}
			out = append(out, EventRecord(r, stream))
		}
		if len(res.Records) == 0 {
			break // the shard's end, or the stream's tip
		}
		iter = res.NextShardIterator
	}
	if len(out) == 0 {
		return nil, errGone
	}
	return out, nil
}

// streamErr tells records that are gone from other failures.
func streamErr(err error) error {
	var trimmed *stypes.TrimmedDataAccessException
	var missing *stypes.ResourceNotFoundException
	if errors.As(err, &trimmed) || errors.As(err, &missing) {
		return fmt.Errorf("%w: %v", errGone, err)
	}
	return err
}

// seqLess compares stream sequence numbers, which are decimal integers of
// up to 40 digits.
func seqLess(a, b string) bool {
	a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
