package platform_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	stypes "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/flowgate/flowgate/internal/devstack/esm"
	"github.com/flowgate/flowgate/internal/devstack/localaws"
	"github.com/flowgate/flowgate/internal/devstack/platform"
	"github.com/flowgate/flowgate/internal/testkit/awstest"
	"github.com/flowgate/flowgate/internal/testkit/ledgertest"
	"github.com/flowgate/flowgate/shared/dynamoledger"
	"github.com/flowgate/flowgate/shared/upload"
)

// The platform runs in front of a real dynalite, which localaws starts (the
// tests fail, never skip, if it cannot).
func TestMain(m *testing.M) { os.Exit(localaws.RunTests(m)) }

// delivered is the function of the test mappings: it keeps every record it
// is given.
type delivered struct {
	mu   sync.Mutex
	recs []events.DynamoDBEventRecord
}

func (d *delivered) invoke(_ context.Context, event []byte) ([]byte, error) {
	var ev events.DynamoDBEvent
	if err := json.Unmarshal(event, &ev); err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.recs = append(d.recs, ev.Records...)
	d.mu.Unlock()
	return []byte(`{"batchItemFailures":[]}`), nil
}

func (d *delivered) all() []events.DynamoDBEventRecord {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]events.DynamoDBEventRecord(nil), d.recs...)
}

// streamLen counts the records in the table's stream.
func streamLen(t *testing.T, p *platform.Platform, arn string) int {
	t.Helper()
	ctx := context.Background()
	st := p.DynamoDBStreams()
	ds, err := st.DescribeStream(ctx, &dynamodbstreams.DescribeStreamInput{StreamArn: aws.String(arn)})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, sh := range ds.StreamDescription.Shards {
		it, err := st.GetShardIterator(ctx, &dynamodbstreams.GetShardIteratorInput{StreamArn: aws.String(arn), ShardId: sh.ShardId,
			ShardIteratorType: stypes.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		for iter := it.ShardIterator; iter != nil; {
			out, err := st.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: iter})
			if err != nil {
				t.Fatal(err)
			}
			if n += len(out.Records); len(out.Records) == 0 {
				break
			}
			iter = out.NextShardIterator
		}
	}
	return n
}

// settle waits until the mappings have read and finished with the stream's
// records so far (read counts what they read before, now trimmed).
func settle(t *testing.T, ms []*esm.Mapping, read int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		s := ms[0].Stats()
		if s.Read >= read && s.Pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the mapping did not catch up: %+v, want %d read", s, read)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// The project's real ledger writes through the platform; the template's own
// mapping hands the assembler function exactly the records the template's
// filter selects: each upload record that became ready, once, and the
// record TTL removed (with TTL's identity), after the TTL delay.
func TestLedgerThroughThePlatform(t *testing.T) {
	clock := &awstest.Clock{}
	ctx := context.Background()
	p, err := platform.Start(ctx, platform.Options{Dynalite: localaws.Current().DynamoDBEndpoint, Now: clock.Now,
		TTLDelay: time.Hour, TTLInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	db := p.DynamoDB()
	table := awstest.Name("ledger")
	if err := dynamoledger.CreateTable(ctx, db, table); err != nil {
		t.Fatal(err)
	}
	ttl, err := db.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(table)})
	if err != nil || ttl.TimeToLiveDescription.TimeToLiveStatus != types.TimeToLiveStatusEnabled ||
		aws.ToString(ttl.TimeToLiveDescription.AttributeName) != dynamoledger.TTLAttribute {
		t.Fatalf("TTL after dynamoledger.CreateTable: %v %+v", err, ttl)
	}
	fn := &delivered{}
	ms, err := p.StartMappings(ctx, platform.MappingOptions{
		Template: "../../../template.yaml", Function: "AssembleFunction",
		Tables: map[string]string{"LedgerTable": table}, Queues: map[string]string{"AssemblyFailureQueue": "assembly-failures"},
		Invoke: fn.invoke,
		Override: func(o *esm.Options) {
			o.PollInterval, o.RetryBackoff, o.MaxRetryBackoff = 5*time.Millisecond, time.Millisecond, 5*time.Millisecond
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, m := range ms {
			m.Stop()
		}
	}()
	d, _ := db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	arn := aws.ToString(d.Table.LatestStreamArn)

	l := &dynamoledger.Ledger{Client: db, Table: table, Now: clock.Now}
	info := func(ident string, chunks int) upload.Info {
		size, chunk := int64(chunks*1000), int64(1000)
		return upload.Info{Key: upload.UploadKey("public", ident, size, chunk, chunks), Namespace: "public",
			Identifier: ident, FileName: ident + ".bin", TotalSize: size, ChunkSize: chunk, TotalChunks: chunks}
	}
	count := func(u upload.Info, ns ...int) {
		for _, n := range ns {
			if _, err := ledgertest.Count(ctx, l, u, n); err != nil {
				t.Fatalf("count %d: %v", n, err)
			}
		}
	}
	a, c := info("a", 3), info("c", 4)
	count(a, 1, 2, 2, 3, 3)
	count(c, 2, 4)
	if _, err := l.Claim(ctx, a.Key, "owner", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := l.Complete(ctx, a.Key, "owner", upload.Result{Location: "s3://b/k", Bucket: "b", Object: "k", Size: 3000}); err != nil {
		t.Fatal(err)
	}
	before := streamLen(t, p, arn)
	settle(t, ms, before)
	got := fn.all()
	if len(got) != 1 || got[0].Change.NewImage["key"].String() != a.Key || got[0].Change.NewImage["status"].String() != "ready" {
		t.Fatalf("before expiry the function got %d records: %+v", len(got), got)
	}

	// c is abandoned: past its expiry it is still there, then TTL takes it
	// after the delay, and the function hears of its record's removal.
	clock.Advance(dynamoledger.DefaultIdleTTL + time.Minute)
	if n, err := p.Front.SweepTTL(ctx); err != nil || n != 0 {
		t.Fatalf("a sweep within the delay deleted %d (%v)", n, err)
	}
	if r, err := l.Get(ctx, c.Key); err != nil || r.State != upload.StateReceiving {
		t.Fatalf("c within the delay: %+v %v", r, err)
	}
	clock.Advance(time.Hour)
	if n, err := p.Front.SweepTTL(ctx); err != nil || n == 0 {
		t.Fatalf("the sweep after the delay deleted %d (%v)", n, err)
	}
	settle(t, ms, before+streamLen(t, p, arn))
	var removed []string
	for _, r := range fn.all()[1:] {
		if r.EventName != "REMOVE" || r.UserIdentity == nil || r.UserIdentity.Type != "Service" || r.UserIdentity.PrincipalID != "dynamodb.amazonaws.com" {
			t.Errorf("after expiry the function got %s %+v", r.EventName, r.UserIdentity)
		}
		removed = append(removed, r.Change.OldImage["key"].String()+" "+r.Change.OldImage["status"].String())
	}
	if fmt.Sprint(removed) != fmt.Sprint([]string{c.Key + " receiving"}) {
		t.Errorf("removals delivered: %v, want c's", removed)
	}
	if r, err := l.Get(ctx, a.Key); err != nil || r.State != upload.StateComplete {
		t.Errorf("a, complete and kept longer: %+v %v", r, err)
	}
	if s := ms[0].Stats(); s.Discarded != 0 || s.Filtered == 0 {
		t.Errorf("mapping stats %+v", s)
	}
}

// Env points the SDK, as a function loads it, at the platform; Stop stops
// serving.
func TestEnvAndStop(t *testing.T) {
	p, err := platform.Start(context.Background(), platform.Options{Dynalite: localaws.Current().DynamoDBEndpoint})
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range p.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	q, err := sqs.NewFromConfig(cfg).CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("envq")})
	if err != nil || !strings.HasPrefix(aws.ToString(q.QueueUrl), p.SQSEndpoint) {
		t.Fatalf("SQS through the environment: %v %v", err, q)
	}
	if _, err := dynamodbstreams.NewFromConfig(cfg).ListStreams(ctx, &dynamodbstreams.ListStreamsInput{}); err != nil {
		t.Fatalf("Streams through the environment: %v", err)
	}
	if _, err := dynamodb.NewFromConfig(cfg).ListTables(ctx, &dynamodb.ListTablesInput{}); err != nil {
		t.Fatalf("DynamoDB through the environment: %v", err)
	}
	p.Stop()
	if _, err := dynamodb.NewFromConfig(cfg).ListTables(ctx, &dynamodb.ListTablesInput{}, func(o *dynamodb.Options) { o.RetryMaxAttempts = 1 }); err == nil {
		t.Error("the front still answers after Stop")
	}
}
