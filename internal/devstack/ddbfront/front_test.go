package ddbfront

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	stypes "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"

	"github.com/flowgate/flowgate/internal/devstack/localaws"
	"github.com/flowgate/flowgate/internal/testkit/awstest"
)

// The front is tested against a real dynalite, which localaws starts (the
// tests fail, never skip, if it cannot).
func TestMain(m *testing.M) { os.Exit(localaws.RunTests(m)) }

type env struct {
	front   *Front
	url     string
	db      *dynamodb.Client
	streams *dynamodbstreams.Client
	clock   *awstest.Clock
}

// start runs a front on dynalite with the SDK's own clients pointed at it.
func start(t *testing.T, opt Options) *env {
	t.Helper()
	e := &env{clock: &awstest.Clock{}}
	opt.Dynalite = localaws.Current().DynamoDBEndpoint
	if opt.Now == nil {
		opt.Now = e.clock.Now
	}
	f, err := New(opt)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	e.front, e.url = f, srv.URL
	creds := credentials.NewStaticCredentialsProvider(localaws.AccessKey, localaws.SecretKey, "")
	e.db = dynamodb.New(dynamodb.Options{Region: localaws.Region, BaseEndpoint: aws.String(srv.URL), Credentials: creds})
	e.streams = dynamodbstreams.New(dynamodbstreams.Options{Region: localaws.Region, BaseEndpoint: aws.String(srv.URL), Credentials: creds})
	return e
}

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func n(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}

func key(pk, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": s(pk), "sk": s(sk)}
}

// table creates a table with a stream of view (none if view is "").
func (e *env) table(t *testing.T, view types.StreamViewType) string {
	t.Helper()
	name := awstest.Name("front")
	in := &dynamodb.CreateTableInput{
		TableName: aws.String(name),
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String("sk"), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String("sk"), KeyType: types.KeyTypeRange},
		},
		BillingMode: types.BillingModePayPerRequest,
	}
	if view != "" {
		in.StreamSpecification = &types.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: view}
	}
	out, err := e.db.CreateTable(context.Background(), in)
	if err != nil {
		t.Fatalf("create table: %v", err)
	}
	if view != "" && (aws.ToString(out.TableDescription.LatestStreamArn) == "" || out.TableDescription.StreamSpecification == nil) {
		t.Fatalf("CreateTable answered no stream: %+v", out.TableDescription)
	}
	// dynalite makes a table active a moment after answering.
	w := dynamodb.NewTableExistsWaiter(e.db, func(o *dynamodb.TableExistsWaiterOptions) { o.MinDelay = 10 * time.Millisecond })
	if err := w.Wait(context.Background(), &dynamodb.DescribeTableInput{TableName: aws.String(name)}, time.Minute); err != nil {
		t.Fatal(err)
	}
	return name
}

func (e *env) streamARN(t *testing.T, table string) string {
	t.Helper()
	out, err := e.db.DescribeTable(context.Background(), &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.Table.LatestStreamArn)
}

// records reads the whole stream through the Streams API, in sequence
// number order.
func (e *env) records(t *testing.T, arn string) []stypes.Record {
	t.Helper()
	ctx := context.Background()
	ds, err := e.streams.DescribeStream(ctx, &dynamodbstreams.DescribeStreamInput{StreamArn: aws.String(arn)})
	if err != nil {
		t.Fatal(err)
	}
	var all []stypes.Record
	for _, sh := range ds.StreamDescription.Shards {
		it, err := e.streams.GetShardIterator(ctx, &dynamodbstreams.GetShardIteratorInput{StreamArn: aws.String(arn),
			ShardId: sh.ShardId, ShardIteratorType: stypes.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		iter := it.ShardIterator
		for iter != nil {
			out, err := e.streams.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: iter})
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, out.Records...)
			if len(out.Records) == 0 {
				break
			}
			iter = out.NextShardIterator
		}
	}
	sort.Slice(all, func(i, j int) bool {
		return aws.ToString(all[i].Dynamodb.SequenceNumber) < aws.ToString(all[j].Dynamodb.SequenceNumber)
	})
	return all
}

func attrS(img map[string]stypes.AttributeValue, name string) string {
	if v, ok := img[name].(*stypes.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

func attrN(img map[string]stypes.AttributeValue, name string) string {
	if v, ok := img[name].(*stypes.AttributeValueMemberN); ok {
		return v.Value
	}
	return ""
}

// Each kind of write makes the record DynamoDB would, and only when the
// item really changed.
func TestWritesBecomeRecords(t *testing.T) {
	e := start(t, Options{})
	ctx := context.Background()
	tbl := e.table(t, types.StreamViewTypeNewAndOldImages)
	put := func(it map[string]types.AttributeValue, cond string) error {
		in := &dynamodb.PutItemInput{TableName: aws.String(tbl), Item: it}
		if cond != "" {
			in.ConditionExpression = aws.String(cond)
		}
		_, err := e.db.PutItem(ctx, in)
		return err
	}
	a := key("a", "1")
	a["v"] = n(1)
	if err := put(a, "attribute_not_exists(pk)"); err != nil {
		t.Fatal(err)
	}
	var failed *types.ConditionalCheckFailedException
	if err := put(a, "attribute_not_exists(pk)"); !errors.As(err, &failed) { // fails: no record
		t.Fatalf("second conditional put: %v", err)
	}
	if err := put(a, ""); err != nil { // the same data again: no record
		t.Fatal(err)
	}
	if _, err := e.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String(tbl), Key: key("a", "1"),
		UpdateExpression: aws.String("SET v = :two"), ExpressionAttributeValues: map[string]types.AttributeValue{":two": n(2)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(tbl), Key: key("nothing", "1")}); err != nil {
		t.Fatal(err) // deleting no item: no record
	}
	if _, err := e.db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{tbl: {
		{PutRequest: &types.PutRequest{Item: key("b", "1")}},
		{DeleteRequest: &types.DeleteRequest{Key: key("a", "1")}},
	}}}); err != nil {
		t.Fatal(err)
	}

	recs := e.records(t, e.streamARN(t, tbl))
	var got []string
	for _, r := range recs {
		img := r.Dynamodb.NewImage
		if r.EventName == stypes.OperationTypeRemove {
			img = r.Dynamodb.OldImage
		}
		got = append(got, fmt.Sprintf("%s %s old=%s new=%s", r.EventName, attrS(img, "pk"), attrN(r.Dynamodb.OldImage, "v"), attrN(r.Dynamodb.NewImage, "v")))
		if r.UserIdentity != nil {
			t.Errorf("a client's write carries %+v", r.UserIdentity)
		}
		if len(r.Dynamodb.Keys) != 2 || aws.ToInt64(r.Dynamodb.SizeBytes) <= 0 || r.Dynamodb.StreamViewType != stypes.StreamViewTypeNewAndOldImages {
			t.Errorf("record %+v", r.Dynamodb)
		}
	}
	want := []string{"INSERT a old= new=1", "MODIFY a old=1 new=2", "INSERT b old= new=", "REMOVE a old=2 new="}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("records\n%v\nwant\n%v", got, want)
	}
}

// Many writers on a few items at once: each item's records chain exactly
// (every record's old image is the previous record's new image) and count
// every increment once.
func TestConcurrentWritersKeepEachItemsOrder(t *testing.T) {
	e := start(t, Options{})
	ctx := context.Background()
	tbl := e.table(t, types.StreamViewTypeNewAndOldImages)
	const items, writers, each = 3, 6, 15
	var wg sync.WaitGroup
	errs := make(chan error, items*writers)
	for i := range items {
		for range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					_, err := e.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{TableName: aws.String(tbl), Key: key(fmt.Sprint("item", i), "x"),
						UpdateExpression: aws.String("ADD c :one"), ExpressionAttributeValues: map[string]types.AttributeValue{":one": n(1)}})
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	last := map[string]int{}
	for _, r := range e.records(t, e.streamARN(t, tbl)) {
		pk := attrS(r.Dynamodb.Keys, "pk")
		old, _ := strconv.Atoi(attrN(r.Dynamodb.OldImage, "c"))
		cur, _ := strconv.Atoi(attrN(r.Dynamodb.NewImage, "c"))
		if old != last[pk] || cur != old+1 {
			t.Fatalf("%s: record %s goes from %d to %d after %d", pk, r.EventName, old, cur, last[pk])
		}
		last[pk] = cur
	}
	for i := range items {
		if got := last[fmt.Sprint("item", i)]; got != writers*each {
			t.Errorf("item%d: records end at %d, want %d", i, got, writers*each)
		}
	}
}

// The table answers describe its stream as AWS does; a table without a
// specification has none, and writes to it pass through unrecorded;
// UpdateTable turns a stream off and on (a new stream, a new ARN).
func TestStreamSpecificationOnTables(t *testing.T) {
	e := start(t, Options{})
	ctx := context.Background()
	plain := e.table(t, "")
	if arn := e.streamARN(t, plain); arn != "" {
		t.Errorf("a table without a stream describes %s", arn)
	}
	if _, err := e.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(plain), Item: key("a", "1")}); err != nil {
		t.Fatal(err)
	}
	tbl := e.table(t, types.StreamViewTypeKeysOnly)
	first := e.streamARN(t, tbl)
	d, _ := e.db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(tbl)})
	if d.Table.StreamSpecification == nil || d.Table.StreamSpecification.StreamViewType != types.StreamViewTypeKeysOnly || aws.ToString(d.Table.LatestStreamLabel) == "" {
		t.Errorf("described stream %+v", d.Table)
	}
	if _, err := e.db.UpdateTable(ctx, &dynamodb.UpdateTableInput{TableName: aws.String(tbl),
		StreamSpecification: &types.StreamSpecification{StreamEnabled: aws.Bool(false)}}); err != nil {
		t.Fatal(err)
	}
	ds, err := e.streams.DescribeStream(ctx, &dynamodbstreams.DescribeStreamInput{StreamArn: aws.String(first)})
	if err != nil || ds.StreamDescription.StreamStatus != stypes.StreamStatusDisabled {
		t.Errorf("after disabling: %v %+v", err, ds)
	}
	e.clock.Advance(time.Second)
	if _, err := e.db.UpdateTable(ctx, &dynamodb.UpdateTableInput{TableName: aws.String(tbl),
		StreamSpecification: &types.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: types.StreamViewTypeNewImage}}); err != nil {
		t.Fatal(err)
	}
	if second := e.streamARN(t, tbl); second == first || second == "" {
		t.Errorf("re-enabled stream %q, first %q", second, first)
	}
	_, err = e.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Put: &types.Put{TableName: aws.String(tbl), Item: key("a", "1")}}}})
	if err == nil {
		t.Error("a transaction passed unrecorded")
	}
}

func (e *env) ttlTable(t *testing.T) string {
	t.Helper()
	tbl := e.table(t, types.StreamViewTypeNewAndOldImages)
	if _, err := e.db.UpdateTimeToLive(context.Background(), &dynamodb.UpdateTimeToLiveInput{TableName: aws.String(tbl),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String("exp"), Enabled: aws.Bool(true)}}); err != nil {
		t.Fatal(err)
	}
	return tbl
}

func (e *env) exists(t *testing.T, tbl string, k map[string]types.AttributeValue) bool {
	t.Helper()
	out, err := e.db.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(tbl), Key: k, ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	return out.Item != nil
}

// An expired item stays readable until the delay has passed, then goes with
// a REMOVE record that says TTL removed it. Items not yet expired, with a
// TTL that is not a number, or five years past, stay.
func TestTTLDeletesLate(t *testing.T) {
	e := start(t, Options{TTLDelay: time.Hour})
	ctx := context.Background()
	tbl := e.ttlTable(t)
	d, err := e.db.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(tbl)})
	if err != nil || d.TimeToLiveDescription.TimeToLiveStatus != types.TimeToLiveStatusEnabled || aws.ToString(d.TimeToLiveDescription.AttributeName) != "exp" {
		t.Fatalf("DescribeTimeToLive: %v %+v", err, d)
	}
	if _, err := e.db.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{TableName: aws.String(tbl),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String("exp"), Enabled: aws.Bool(true)}}); err == nil {
		t.Error("enabling TTL twice succeeded")
	}
	now := e.clock.Now().Unix()
	put := func(pk string, exp types.AttributeValue) {
		it := key(pk, "x")
		it["exp"] = exp
		if _, err := e.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(tbl), Item: it}); err != nil {
			t.Fatal(err)
		}
	}
	put("expired", n(now-10))
	put("future", n(now+3600))
	put("text", s(strconv.FormatInt(now-10, 10)))
	put("ancient", n(now-6*365*24*3600))

	if got, err := e.front.SweepTTL(ctx); err != nil || got != 0 {
		t.Fatalf("sweep before the delay: %d %v", got, err)
	}
	if !e.exists(t, tbl, key("expired", "x")) {
		t.Fatal("an expired item was deleted before the delay")
	}
	e.clock.Advance(time.Hour)
	if got, err := e.front.SweepTTL(ctx); err != nil || got != 1 {
		t.Fatalf("sweep after the delay: %d %v", got, err)
	}
	for pk, want := range map[string]bool{"expired": false, "future": true, "text": true, "ancient": true} {
		if e.exists(t, tbl, key(pk, "x")) != want {
			t.Errorf("%s: exists %v, want %v", pk, !want, want)
		}
	}
	recs := e.records(t, e.streamARN(t, tbl))
	r := recs[len(recs)-1]
	if r.EventName != stypes.OperationTypeRemove || attrS(r.Dynamodb.OldImage, "pk") != "expired" || r.UserIdentity == nil ||
		aws.ToString(r.UserIdentity.Type) != "Service" || aws.ToString(r.UserIdentity.PrincipalId) != "dynamodb.amazonaws.com" {
		t.Errorf("TTL's record: %s %+v %+v", r.EventName, r.Dynamodb.OldImage, r.UserIdentity)
	}
}

// An item rewritten with a later expiry after the sweeper found it expired
// is not deleted: not when the rewrite came through the front before the
// sweeper locked the item, nor when it came around the front between the
// sweeper's read and its delete.
func TestTTLSparesRewrittenItem(t *testing.T) {
	for _, stage := range []string{"scanned", "read"} {
		t.Run(stage, func(t *testing.T) {
			e := start(t, Options{TTLDelay: time.Minute})
			ctx := context.Background()
			tbl := e.ttlTable(t)
			now := e.clock.Now().Unix()
			it := key("a", "x")
			it["exp"] = n(now - 120)
			if _, err := e.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(tbl), Item: it}); err != nil {
				t.Fatal(err)
			}
			writer := e.db
			if stage == "read" { // around the front: the front's lock does not hold it
				writer = dynamodb.New(dynamodb.Options{Region: localaws.Region, BaseEndpoint: aws.String(localaws.Current().DynamoDBEndpoint),
					Credentials: credentials.NewStaticCredentialsProvider("a", "b", "")})
			}
			rewrote := false
			e.front.testTTLHook = func(at string) {
				if at != stage || rewrote {
					return
				}
				rewrote = true
				it["exp"] = n(now + 3600)
				if _, err := writer.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(tbl), Item: it}); err != nil {
					t.Error(err)
				}
			}
			if got, err := e.front.SweepTTL(ctx); err != nil || got != 0 || !rewrote {
				t.Fatalf("sweep: deleted %d, %v (rewrote %v)", got, err, rewrote)
			}
			if !e.exists(t, tbl, key("a", "x")) {
				t.Error("the rewritten item was deleted")
			}
		})
	}
}
