package sqslocal

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// start serves a Server and returns the SDK's own sqs client for it.
func start(t *testing.T) (*Server, *sqs.Client, *clock) {
	c := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	s := New(Options{Now: c.Now})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	s.SetEndpoint(srv.URL)
	client := sqs.New(sqs.Options{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("a", "b", "")})
	return s, client, c
}

func count(t *testing.T, api *sqs.Client, url string) (visible, inflight string) {
	t.Helper()
	out, err := api.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		t.Fatal(err)
	}
	return out.Attributes["ApproximateNumberOfMessages"], out.Attributes["ApproximateNumberOfMessagesNotVisible"]
}

// A message goes round as with SQS: sent, received and hidden for the
// visibility timeout, received again after it with a higher receive count,
// deleted only with the latest receipt handle. The SDK checks every MD5.
func TestMessageLifecycle(t *testing.T) {
	s, api, c := start(t)
	ctx := context.Background()
	if _, err := api.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("failures")}); err != nil {
		t.Fatal(err)
	}
	u, err := api.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("failures")})
	if err != nil || aws.ToString(u.QueueUrl) != s.QueueURL("failures") {
		t.Fatalf("GetQueueUrl: %v %v", err, u)
	}
	url := aws.ToString(u.QueueUrl)
	body := `{"DDBStreamBatchInfo": {"shardId": "s"}} ü`
	if _, err := api.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(body)}); err != nil {
		t.Fatal(err)
	}
	if v, _ := count(t, api, url); v != "1" {
		t.Errorf("%s visible, want 1", v)
	}
	recv := func() []types.Message {
		out, err := api.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10,
			VisibilityTimeout: 30, MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount}})
		if err != nil {
			t.Fatal(err)
		}
		return out.Messages
	}
	first := recv()
	if len(first) != 1 || aws.ToString(first[0].Body) != body || first[0].Attributes["ApproximateReceiveCount"] != "1" {
		t.Fatalf("first receive: %+v", first)
	}
	if again := recv(); len(again) != 0 {
		t.Errorf("received %d messages within their visibility timeout", len(again))
	}
	if v, f := count(t, api, url); v != "0" || f != "1" {
		t.Errorf("in flight: %s visible, %s not visible", v, f)
	}
	c.Advance(31 * time.Second)
	second := recv()
	if len(second) != 1 || second[0].Attributes["ApproximateReceiveCount"] != "2" {
		t.Fatalf("after the visibility timeout: %+v", second)
	}
	// The first receiver's handle is stale now.
	if _, err := api.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: first[0].ReceiptHandle}); err != nil {
		t.Fatal(err)
	}
	if _, f := count(t, api, url); f != "1" {
		t.Error("a stale receipt handle deleted the message")
	}
	if _, err := api.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: second[0].ReceiptHandle}); err != nil {
		t.Fatal(err)
	}
	if v, f := count(t, api, url); v != "0" || f != "0" {
		t.Errorf("after delete: %s visible, %s not visible", v, f)
	}

	var missing *types.QueueDoesNotExist
	if _, err := api.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String("nope")}); !errors.As(err, &missing) {
		t.Errorf("unknown queue: %v", err)
	}
	if _, err := api.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("")}); err == nil {
		t.Error("an empty body was taken")
	}
	if _, err := api.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(strings.Repeat("x", 262145))}); err == nil {
		t.Error("a body over 256 KiB was taken")
	}
	if _, err := api.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("x"),
		MessageAttributes: map[string]types.MessageAttributeValue{"a": {DataType: aws.String("String"), StringValue: aws.String("b")}}}); err == nil {
		t.Error("message attributes were taken and ignored")
	}
}

// A long poll returns the message sent while it waits; messages past the
// retention are gone.
func TestLongPollAndRetention(t *testing.T) {
	_, api, c := start(t)
	ctx := context.Background()
	q, err := api.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("q"),
		Attributes: map[string]string{"MessageRetentionPeriod": "60"}})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []types.Message, 1)
	go func() {
		out, err := api.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, WaitTimeSeconds: 20})
		if err != nil {
			t.Error(err)
		}
		got <- out.Messages
	}()
	if _, err := api.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: q.QueueUrl, MessageBody: aws.String("hello")}); err != nil {
		t.Fatal(err)
	}
	if m := <-got; len(m) != 1 || aws.ToString(m[0].Body) != "hello" {
		t.Errorf("long poll got %+v", m)
	}
	api.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: q.QueueUrl, MessageBody: aws.String("old")})
	c.Advance(2 * time.Minute)
	if v, f := count(t, api, aws.ToString(q.QueueUrl)); v != "0" || f != "0" {
		t.Errorf("past the retention: %s visible, %s in flight", v, f)
	}
}
