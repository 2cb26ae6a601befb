package esm_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	stypes "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/flowgate/flowgate/internal/devstack/esm"
	"github.com/flowgate/flowgate/internal/devstack/localaws"
	"github.com/flowgate/flowgate/internal/devstack/platform"
	"github.com/flowgate/flowgate/internal/testkit/awstest"
)

// The mapping reads a real stream: the platform's DynamoDB front on a real
// dynalite, which localaws starts (the tests fail, never skip, if it
// cannot).
func TestMain(m *testing.M) { os.Exit(localaws.RunTests(m)) }

type env struct {
	p     *platform.Platform
	clock *awstest.Clock
	db    *dynamodb.Client
	table string
	arn   string
	queue string // the on-failure queue's URL
}

// setup starts a platform with one stream shard (so that batches are
// predictable) and a table with a stream.
func setup(t *testing.T) *env {
	t.Helper()
	e := &env{clock: &awstest.Clock{}}
	p, err := platform.Start(context.Background(), platform.Options{Dynalite: localaws.Current().DynamoDBEndpoint,
		Now: e.clock.Now, StreamShards: 1, TTLInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	e.p, e.db = p, p.DynamoDB()
	e.table = awstest.Name("esm")
	ctx := context.Background()
	_, err = e.db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(e.table),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
		StreamSpecification:  &types.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: types.StreamViewTypeNewAndOldImages},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := dynamodb.NewTableExistsWaiter(e.db, func(o *dynamodb.TableExistsWaiterOptions) { o.MinDelay = 10 * time.Millisecond }).
		Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(e.table)}, time.Minute); err != nil {
		t.Fatal(err)
	}
	d, _ := e.db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(e.table)})
	e.arn = aws.ToString(d.Table.LatestStreamArn)
	e.queue, _, err = p.SQS.CreateQueue(awstest.Name("failures"))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// put writes item pk with counter v.
func (e *env) put(t *testing.T, pk string, v int) {
	t.Helper()
	_, err := e.db.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String(e.table), Item: map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: pk}, "v": &types.AttributeValueMemberN{Value: strconv.Itoa(v)}}})
	if err != nil {
		t.Fatal(err)
	}
}

// fn is a function that records what it was given and answers as told.
type fn struct {
	mu      sync.Mutex
	batches [][]events.DynamoDBEventRecord
	answer  func(call int, recs []events.DynamoDBEventRecord) ([]byte, error)
}

func (f *fn) invoke(_ context.Context, event []byte) ([]byte, error) {
	var ev events.DynamoDBEvent
	if err := json.Unmarshal(event, &ev); err != nil {
		return nil, fmt.Errorf("the event is not a DynamoDBEvent: %w", err)
	}
	f.mu.Lock()
	f.batches = append(f.batches, ev.Records)
	call := len(f.batches)
	f.mu.Unlock()
	if f.answer == nil {
		return nil, nil
	}
	return f.answer(call, ev.Records)
}

// seen lists each batch as the items' "pk=v" values.
func (f *fn) seen() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out [][]string
	for _, b := range f.batches {
		var l []string
		for _, r := range b {
			l = append(l, r.Change.Keys["pk"].String()+"="+r.Change.NewImage["v"].Number())
		}
		out = append(out, l)
	}
	return out
}

func (e *env) start(t *testing.T, cfg func(*esm.Options), f *fn) *esm.Mapping {
	t.Helper()
	opt := esm.Options{Config: esm.Defaults(), StreamARN: e.arn, Streams: e.p.DynamoDBStreams(), Function: f.invoke,
		OnFailure: esm.SQSDestination{Client: e.p.SQSClient(), QueueURL: e.queue},
		Now:       e.clock.Now, PollInterval: 5 * time.Millisecond, RetryBackoff: time.Millisecond, MaxRetryBackoff: 5 * time.Millisecond}
	opt.FunctionName = "TestFunction"
	cfg(&opt)
	m, err := esm.Start(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)
	return m
}

// waitFor polls cond; a condition that never comes true fails the test
// (after a bound far beyond any healthy run, not a timing assertion).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// idle waits until the mapping has read n records and finished with all.
func idle(t *testing.T, m *esm.Mapping, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d records read and done", n), func() bool {
		s := m.Stats()
		return s.Read >= n && s.Pending == 0
	})
}

// failures receives the on-failure messages (waiting for want of them).
func (e *env) failures(t *testing.T, want int) []esm.FailureMessage {
	t.Helper()
	var out []esm.FailureMessage
	deadline := time.Now().Add(60 * time.Second)
	for len(out) < want && time.Now().Before(deadline) {
		r, err := e.p.SQSClient().ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(e.queue), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range r.Messages {
			var msg esm.FailureMessage
			if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &msg); err != nil {
				t.Fatalf("failure message %s: %v", aws.ToString(m.Body), err)
			}
			out = append(out, msg)
		}
	}
	if len(out) != want {
		t.Fatalf("%d failure messages, want %d", len(out), want)
	}
	return out
}

// Batches fill to BatchSize; a smaller one waits for the batching window
// (by the clock); records arrive in order, shaped as Lambda delivers them.
func TestBatchSizeWindowAndShape(t *testing.T) {
	e := setup(t)
	from := e.clock.Now().Unix()
	for i := 1; i <= 7; i++ {
		e.put(t, "item", i)
	}
	to := e.clock.Now().Unix()
	f := &fn{}
	m := e.start(t, func(o *esm.Options) { o.BatchSize = 3; o.MaximumBatchingWindow = time.Minute }, f)
	waitFor(t, "two full batches", func() bool { return m.Stats().Succeeded == 6 })
	if s := m.Stats(); s.Invocations != 2 || s.Pending != 1 {
		t.Fatalf("before the window passed: %+v", s)
	}
	e.clock.Advance(time.Minute)
	waitFor(t, "the last record", func() bool { return m.Stats().Succeeded == 7 })
	if got := fmt.Sprint(f.seen()); got != "[[item=1 item=2 item=3] [item=4 item=5 item=6] [item=7]]" {
		t.Errorf("batches %s", got)
	}
	r := f.batches[0][1]
	if r.EventName != "MODIFY" || r.EventSource != "aws:dynamodb" || r.EventVersion != "1.1" || r.AWSRegion != "us-east-1" ||
		r.EventSourceArn != e.arn || r.Change.StreamViewType != "NEW_AND_OLD_IMAGES" || r.Change.SizeBytes <= 0 ||
		r.Change.OldImage["v"].Number() != "1" || r.Change.ApproximateCreationDateTime.Unix() < from || r.Change.ApproximateCreationDateTime.Unix() > to {
		t.Errorf("record %+v", r)
	}
}

// Records no filter matches never reach the function, and are not retried.
func TestFiltersDropRecords(t *testing.T) {
	e := setup(t)
	f := &fn{}
	pattern, err := esm.ParsePattern(`{"eventName": ["INSERT"], "dynamodb": {"NewImage": {"v": {"N": [{"anything-but": "0"}]}}}}`)
	if err != nil {
		t.Fatal(err)
	}
	m := e.start(t, func(o *esm.Options) { o.Filters = []esm.Pattern{pattern} }, f)
	e.put(t, "a", 1) // INSERT: passes
	e.put(t, "a", 2) // MODIFY: dropped
	e.put(t, "b", 0) // INSERT with v 0: dropped
	if _, err := e.db.DeleteItem(context.Background(), &dynamodb.DeleteItemInput{TableName: aws.String(e.table),
		Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "a"}}}); err != nil {
		t.Fatal(err)
	}
	idle(t, m, 4)
	if got := fmt.Sprint(f.seen()); got != "[[a=1]]" {
		t.Errorf("the function saw %s", got)
	}
	if s := m.Stats(); s.Filtered != 3 || s.Succeeded != 1 {
		t.Errorf("stats %+v", s)
	}
}

func failuresResponse(seqs ...string) []byte {
	var r events.DynamoDBEventResponse
	for _, s := range seqs {
		r.BatchItemFailures = append(r.BatchItemFailures, events.DynamoDBBatchItemFailure{ItemIdentifier: s})
	}
	b, _ := json.Marshal(r)
	return b
}

// A partial batch response checkpoints before the lowest failed sequence
// number and retries from there; one that names no record of the batch
// fails all of it; without ReportBatchItemFailures it means nothing.
func TestPartialBatchResponse(t *testing.T) {
	for _, tc := range []struct {
		name   string
		report bool
		first  func(recs []events.DynamoDBEventRecord) []byte
		want   string
	}{
		{"lowest", true, func(r []events.DynamoDBEventRecord) []byte {
			return failuresResponse(r[3].Change.SequenceNumber, r[2].Change.SequenceNumber)
		}, "[[i=1 i=2 i=3 i=4 i=5] [i=3 i=4 i=5]]"},
		{"unknown", true, func([]events.DynamoDBEventRecord) []byte { return failuresResponse("123") }, "[[i=1 i=2 i=3 i=4 i=5] [i=1 i=2 i=3 i=4 i=5]]"},
		{"empty", true, func([]events.DynamoDBEventRecord) []byte { return failuresResponse("") }, "[[i=1 i=2 i=3 i=4 i=5] [i=1 i=2 i=3 i=4 i=5]]"},
		{"ignored", false, func(r []events.DynamoDBEventRecord) []byte { return failuresResponse(r[0].Change.SequenceNumber) }, "[[i=1 i=2 i=3 i=4 i=5]]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := setup(t)
			for i := 1; i <= 5; i++ {
				e.put(t, "i", i)
			}
			f := &fn{answer: func(call int, recs []events.DynamoDBEventRecord) ([]byte, error) {
				if call == 1 {
					return tc.first(recs), nil
				}
				return []byte(`{"batchItemFailures": []}`), nil
			}}
			m := e.start(t, func(o *esm.Options) { o.BatchSize = 5; o.ReportBatchItemFailures = tc.report }, f)
			idle(t, m, 5)
			if got := fmt.Sprint(f.seen()); got != tc.want {
				t.Errorf("batches %s, want %s", got, tc.want)
			}
			if s := m.Stats(); s.Succeeded != 5 || s.Discarded != 0 {
				t.Errorf("stats %+v", s)
			}
		})
	}
}

// A function error bisects the batch until the bad record is alone, which
// is retried MaximumRetryAttempts times and then given up: the queue gets
// AWS's message for it, and the records around it are delivered.
func TestBisectAndGiveUp(t *testing.T) {
	e := setup(t)
	for i := 1; i <= 4; i++ {
		e.put(t, fmt.Sprint("k", i), i)
	}
	f := &fn{answer: func(_ int, recs []events.DynamoDBEventRecord) ([]byte, error) {
		for _, r := range recs {
			if r.Change.Keys["pk"].String() == "k3" {
				return nil, errors.New("poison")
			}
		}
		return nil, nil
	}}
	m := e.start(t, func(o *esm.Options) {
		o.BatchSize = 4
		o.BisectBatchOnFunctionError = true
		o.MaximumRetryAttempts = 1
	}, f)
	idle(t, m, 4)
	if got := fmt.Sprint(f.seen()); got != "[[k1=1 k2=2 k3=3 k4=4] [k1=1 k2=2] [k3=3 k4=4] [k3=3] [k3=3] [k4=4]]" {
		t.Errorf("batches %s", got)
	}
	if s := m.Stats(); s.Succeeded != 3 || s.Discarded != 1 || s.Bisections != 2 || s.Retries != 1 {
		t.Errorf("stats %+v", s)
	}
	msg := e.failures(t, 1)[0]
	k3 := f.batches[3][0]
	info := msg.DDBStreamBatchInfo
	if msg.RequestContext.Condition != esm.RetryAttemptsExhausted || msg.RequestContext.ApproximateInvokeCount != 4 ||
		msg.RequestContext.FunctionArn != "arn:aws:lambda:us-east-1:000000000000:function:TestFunction" || msg.RequestContext.RequestID == "" ||
		msg.ResponseContext == nil || msg.ResponseContext.FunctionError != "Unhandled" || msg.ResponseContext.StatusCode != 200 ||
		msg.Version != "1.0" || info.BatchSize != 1 || info.StreamArn != e.arn ||
		info.StartSequenceNumber != k3.Change.SequenceNumber || info.EndSequenceNumber != k3.Change.SequenceNumber ||
		info.ApproximateArrivalOfFirstRecord != k3.Change.ApproximateCreationDateTime.UTC().Format(time.RFC3339) {
		b, _ := json.Marshal(msg)
		t.Errorf("failure message %s", b)
	}
	if _, err := time.Parse(time.RFC3339, msg.Timestamp); err != nil {
		t.Errorf("timestamp %q: %v", msg.Timestamp, err)
	}
	// The message is enough to read the record back, as a re-drive would.
	st := e.p.DynamoDBStreams()
	it, err := st.GetShardIterator(context.Background(), &dynamodbstreams.GetShardIteratorInput{StreamArn: aws.String(info.StreamArn),
		ShardId: aws.String(info.ShardID), ShardIteratorType: stypes.ShardIteratorTypeAtSequenceNumber, SequenceNumber: aws.String(info.StartSequenceNumber)})
	if err != nil {
		t.Fatal(err)
	}
	out, err := st.GetRecords(context.Background(), &dynamodbstreams.GetRecordsInput{ShardIterator: it.ShardIterator, Limit: aws.Int32(int32(info.BatchSize))})
	if err != nil || len(out.Records) != 1 || out.Records[0].Dynamodb.Keys["pk"].(*stypes.AttributeValueMemberS).Value != "k3" {
		t.Errorf("re-reading the given-up records: %v %+v", err, out)
	}
}

// Without bisection a failing batch is retried whole, then given up whole.
func TestRetriesExhausted(t *testing.T) {
	e := setup(t)
	e.put(t, "a", 1)
	e.put(t, "b", 1)
	f := &fn{answer: func(int, []events.DynamoDBEventRecord) ([]byte, error) { return nil, errors.New("down") }}
	m := e.start(t, func(o *esm.Options) { o.BatchSize = 2; o.MaximumRetryAttempts = 2 }, f)
	idle(t, m, 2)
	if n := len(f.seen()); n != 3 {
		t.Errorf("%d invocations, want 3 (one and two retries)", n)
	}
	msg := e.failures(t, 1)[0]
	if msg.RequestContext.ApproximateInvokeCount != 3 || msg.DDBStreamBatchInfo.BatchSize != 2 ||
		msg.DDBStreamBatchInfo.StartSequenceNumber != f.batches[0][0].Change.SequenceNumber ||
		msg.DDBStreamBatchInfo.EndSequenceNumber != f.batches[0][1].Change.SequenceNumber {
		t.Errorf("failure message %+v", msg)
	}
}

// Records older than MaximumRecordAge are given up without another
// invocation, however many retries are left.
func TestRecordAgeExceeded(t *testing.T) {
	e := setup(t)
	e.put(t, "a", 1)
	f := &fn{answer: func(int, []events.DynamoDBEventRecord) ([]byte, error) { return nil, errors.New("down") }}
	m := e.start(t, func(o *esm.Options) { o.MaximumRecordAge = time.Minute; o.MaximumRetryAttempts = -1 }, f)
	waitFor(t, "a few failed invocations", func() bool { return m.Stats().FunctionErrors >= 3 })
	e.clock.Advance(2 * time.Minute)
	msg := e.failures(t, 1)[0]
	if msg.RequestContext.Condition != esm.RecordAgeExceeded || msg.DDBStreamBatchInfo.BatchSize != 1 {
		t.Errorf("failure message %+v", msg)
	}
	idle(t, m, 1)
	if s := m.Stats(); s.Discarded != 1 || s.Succeeded != 0 {
		t.Errorf("stats %+v", s)
	}
}

// A function that was not reached is retried without spending retries.
func TestNotInvokedIsNotARetry(t *testing.T) {
	e := setup(t)
	e.put(t, "a", 1)
	f := &fn{answer: func(call int, _ []events.DynamoDBEventRecord) ([]byte, error) {
		if call <= 3 {
			return nil, fmt.Errorf("throttled: %w", esm.ErrNotInvoked)
		}
		return nil, nil
	}}
	m := e.start(t, func(o *esm.Options) { o.MaximumRetryAttempts = 0 }, f)
	idle(t, m, 1)
	if s := m.Stats(); s.Succeeded != 1 || s.NotInvoked != 3 || s.Discarded != 0 {
		t.Errorf("stats %+v", s)
	}
}

// With duplicates on, batches that succeeded come again, sometimes after
// newer records; every record is delivered, each item's first deliveries in
// order.
func TestDuplicateDeliveries(t *testing.T) {
	e := setup(t)
	for v := 1; v <= 4; v++ {
		for _, k := range []string{"a", "b", "c"} {
			e.put(t, k, v)
		}
	}
	f := &fn{}
	m := e.start(t, func(o *esm.Options) { o.BatchSize = 2; o.DuplicateProbability = 0.5; o.Seed = 7 }, f)
	idle(t, m, 12)
	s := m.Stats()
	if s.Duplicates == 0 || s.Succeeded != 12 || s.Invocations != 6+s.Duplicates {
		t.Fatalf("stats %+v", s)
	}
	first := map[string]bool{}
	last := map[string]int{}
	for _, b := range f.seen() {
		for _, kv := range b {
			if first[kv] {
				continue
			}
			first[kv] = true
			var k string
			var v int
			fmt.Sscanf(kv, "%1s=%d", &k, &v)
			if v != last[k]+1 {
				t.Errorf("%s first delivered after %s=%d", kv, k, last[k])
			}
			last[k] = v
		}
	}
	if len(first) != 12 {
		t.Errorf("%d distinct records delivered, want 12", len(first))
	}
}

// ParallelizationFactor runs batches of different items of one shard at
// once, while each item's records stay in order.
func TestParallelizationKeepsItemOrder(t *testing.T) {
	e := setup(t)
	both := make(chan struct{})
	var once sync.Once
	var mu sync.Mutex
	inFlight := map[string]bool{}
	f := &fn{answer: func(_ int, recs []events.DynamoDBEventRecord) ([]byte, error) {
		mu.Lock()
		inFlight[recs[0].Change.Keys["pk"].String()] = true
		if len(inFlight) >= 2 {
			once.Do(func() { close(both) })
		}
		mu.Unlock()
		select { // the first invocations wait for one of another item
		case <-both:
		case <-time.After(30 * time.Second):
			return nil, errors.New("no second invocation ran alongside")
		}
		mu.Lock()
		delete(inFlight, recs[0].Change.Keys["pk"].String())
		mu.Unlock()
		return nil, nil
	}}
	m := e.start(t, func(o *esm.Options) { o.BatchSize = 1; o.ParallelizationFactor = 10 }, f)
	keys := []string{"a", "b", "c", "d", "e"}
	for v := 1; v <= 5; v++ {
		for _, k := range keys {
			e.put(t, k, v)
		}
	}
	idle(t, m, 25)
	if s := m.Stats(); s.Succeeded != 25 || s.FunctionErrors != 0 {
		t.Fatalf("stats %+v", s)
	}
	last := map[string]int{}
	for _, b := range f.seen() {
		var k string
		var v int
		fmt.Sscanf(b[0], "%1s=%d", &k, &v)
		if v != last[k]+1 {
			t.Errorf("%s delivered after %s=%d", b[0], k, last[k])
		}
		last[k] = v
	}
}
