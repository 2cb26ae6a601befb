package ddbstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
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

// client is the SDK's own dynamodbstreams client pointed at s.
func client(t *testing.T, s *Streams) *dynamodbstreams.Client {
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return dynamodbstreams.New(dynamodbstreams.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("a", "b", ""),
	})
}

func item(pk, sk string, attrs ...string) Item {
	it := Item{"pk": json.RawMessage(fmt.Sprintf(`{"S":%q}`, pk)), "sk": json.RawMessage(fmt.Sprintf(`{"S":%q}`, sk))}
	for i := 0; i+1 < len(attrs); i += 2 {
		it[attrs[i]] = json.RawMessage(attrs[i+1])
	}
	return it
}

var schema = []KeyElement{{"pk", "HASH"}, {"sk", "RANGE"}}

func TestEqualIgnoresFormOfNumbersAndSetOrder(t *testing.T) {
	a := item("p", "s", "n", `{"N":"1.50"}`, "ns", `{"NS":["2","1"]}`, "m", `{"M":{"x":{"SS":["b","a"]}}}`)
	b := item("p", "s", "n", `{"N":"1.5"}`, "ns", `{"NS":["1","2.0"]}`, "m", `{"M":{"x":{"SS":["a","b"]}}}`)
	if !Equal(a, b) {
		t.Error("equal items differ")
	}
	b["n"] = json.RawMessage(`{"N":"1.51"}`)
	if Equal(a, b) || Equal(a, nil) || !Equal(nil, nil) {
		t.Error("different items are equal")
	}
}

// Records of all kinds, read back through the SDK by every iterator type,
// in order per item, with the images the view type asks for.
func TestRecordsThroughTheSDK(t *testing.T) {
	c := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	s := New(Options{Now: c.Now, Shards: 3})
	st, err := s.Enable("tbl", NewAndOldImages, schema)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	api := client(t, s)

	v1 := item("a", "1", "x", `{"N":"1"}`)
	v2 := item("a", "1", "x", `{"N":"2"}`)
	var want []*Record
	for _, ch := range [][2]Item{{nil, v1}, {v1, v2}, {v2, v2}, {v2, nil}} {
		r, err := st.Append(ch[0], ch[1], nil)
		if err != nil {
			t.Fatal(err)
		}
		if r != nil {
			want = append(want, r)
		}
	}
	if len(want) != 3 {
		t.Fatalf("%d records, want 3 (none for a write that changes nothing)", len(want))
	}
	ttl, _ := st.Append(item("b", "1"), nil, ServiceIdentity)

	ls, err := api.ListStreams(ctx, &dynamodbstreams.ListStreamsInput{TableName: aws.String("tbl")})
	if err != nil || len(ls.Streams) != 1 || aws.ToString(ls.Streams[0].StreamArn) != st.ARN {
		t.Fatalf("ListStreams: %v %+v", err, ls)
	}
	ds, err := api.DescribeStream(ctx, &dynamodbstreams.DescribeStreamInput{StreamArn: aws.String(st.ARN)})
	if err != nil {
		t.Fatal(err)
	}
	d := ds.StreamDescription
	if d.StreamStatus != types.StreamStatusEnabled || d.StreamViewType != types.StreamViewTypeNewAndOldImages ||
		len(d.Shards) != 3 || len(d.KeySchema) != 2 || aws.ToString(d.TableName) != "tbl" {
		t.Fatalf("DescribeStream: %+v", d)
	}
	// Read every shard from its start.
	var got []types.Record
	shardOf := map[string]string{}
	for _, sh := range d.Shards {
		it, err := api.GetShardIterator(ctx, &dynamodbstreams.GetShardIteratorInput{StreamArn: aws.String(st.ARN),
			ShardId: sh.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		out, err := api.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: it.ShardIterator})
		if err != nil {
			t.Fatal(err)
		}
		if out.NextShardIterator == nil {
			t.Error("an open shard has no next iterator")
		}
		for _, r := range out.Records {
			shardOf[aws.ToString(r.Dynamodb.SequenceNumber)] = aws.ToString(sh.ShardId)
		}
		got = append(got, out.Records...)
	}
	if len(got) != 4 {
		t.Fatalf("read %d records, want 4", len(got))
	}
	var itemA []types.Record
	for _, r := range got {
		if r.Dynamodb.Keys["pk"].(*types.AttributeValueMemberS).Value == "a" {
			itemA = append(itemA, r)
		}
	}
	for i, r := range itemA {
		w := want[i]
		if aws.ToString(r.Dynamodb.SequenceNumber) != w.Dynamodb.SequenceNumber || string(r.EventName) != w.EventName {
			t.Errorf("record %d: %s %s, want %s %s", i, r.EventName, aws.ToString(r.Dynamodb.SequenceNumber), w.EventName, w.Dynamodb.SequenceNumber)
		}
		if r.Dynamodb.ApproximateCreationDateTime.Unix() != c.Now().Unix() || aws.ToInt64(r.Dynamodb.SizeBytes) <= 0 ||
			aws.ToString(r.EventVersion) != "1.1" || aws.ToString(r.EventSource) != "aws:dynamodb" || aws.ToString(r.AwsRegion) != "us-east-1" {
			t.Errorf("record %d: %+v %+v", i, r, r.Dynamodb)
		}
	}
	if len(itemA) != 3 || itemA[0].Dynamodb.OldImage != nil || itemA[0].Dynamodb.NewImage["x"].(*types.AttributeValueMemberN).Value != "1" ||
		itemA[1].Dynamodb.OldImage["x"].(*types.AttributeValueMemberN).Value != "1" || itemA[1].Dynamodb.NewImage["x"].(*types.AttributeValueMemberN).Value != "2" ||
		itemA[2].Dynamodb.NewImage != nil || itemA[2].Dynamodb.OldImage == nil || itemA[2].UserIdentity != nil {
		t.Errorf("item a's records: %+v", itemA)
	}
	for _, r := range got {
		if aws.ToString(r.Dynamodb.SequenceNumber) == ttl.Dynamodb.SequenceNumber {
			if r.UserIdentity == nil || aws.ToString(r.UserIdentity.Type) != "Service" || aws.ToString(r.UserIdentity.PrincipalId) != "dynamodb.amazonaws.com" {
				t.Errorf("TTL record's identity %+v", r.UserIdentity)
			}
		}
	}

	// AT and AFTER a sequence number.
	seq2 := want[1].Dynamodb.SequenceNumber
	for typ, first := range map[types.ShardIteratorType]string{types.ShardIteratorTypeAtSequenceNumber: seq2, types.ShardIteratorTypeAfterSequenceNumber: want[2].Dynamodb.SequenceNumber} {
		it, err := api.GetShardIterator(ctx, &dynamodbstreams.GetShardIteratorInput{StreamArn: aws.String(st.ARN),
			ShardId: aws.String(shardOf[seq2]), ShardIteratorType: typ, SequenceNumber: aws.String(seq2)})
		if err != nil {
			t.Fatal(err)
		}
		out, err := api.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: it.ShardIterator, Limit: aws.Int32(1)})
		if err != nil || len(out.Records) != 1 || aws.ToString(out.Records[0].Dynamodb.SequenceNumber) != first {
			t.Errorf("%s %s: %v %+v, want %s first", typ, seq2, err, out, first)
		}
	}
	// LATEST sees only what comes after it.
	it, err := api.GetShardIterator(ctx, &dynamodbstreams.GetShardIteratorInput{StreamArn: aws.String(st.ARN),
		ShardId: aws.String(shardOf[seq2]), ShardIteratorType: types.ShardIteratorTypeLatest})
	if err != nil {
		t.Fatal(err)
	}
	later, _ := st.Append(nil, item("a", "1"), nil)
	out, err := api.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: it.ShardIterator})
	if err != nil || len(out.Records) != 1 || aws.ToString(out.Records[0].Dynamodb.SequenceNumber) != later.Dynamodb.SequenceNumber {
		t.Errorf("LATEST: %v %+v", err, out)
	}
}

// Past the retention records are gone, and what points at them says so;
// an iterator unused for 15 minutes expires; a disabled stream's shards
// end.
func TestRetentionExpiryAndClosing(t *testing.T) {
	c := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	s := New(Options{Now: c.Now, Shards: 1, Retention: time.Hour})
	st, _ := s.Enable("tbl", KeysOnly, schema)
	api := client(t, s)
	ctx := context.Background()
	old, _ := st.Append(nil, item("a", "1"), nil)
	if old.Dynamodb.NewImage != nil || old.Dynamodb.OldImage != nil {
		t.Error("KEYS_ONLY record carries an image")
	}
	ds, _ := api.DescribeStream(ctx, &dynamodbstreams.DescribeStreamInput{StreamArn: aws.String(st.ARN)})
	shardID := ds.StreamDescription.Shards[0].ShardId
	horizon, err := api.GetShardIterator(ctx, &dynamodbstreams.GetShardIteratorInput{StreamArn: aws.String(st.ARN),
		ShardId: shardID, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	if err != nil {
		t.Fatal(err)
	}
	c.Advance(30 * time.Minute)
	var expired *types.ExpiredIteratorException
	if _, err := api.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: horizon.ShardIterator}); !errors.As(err, &expired) {
		t.Errorf("an iterator 30 minutes old: %v, want ExpiredIteratorException", err)
	}
	c.Advance(31 * time.Minute)
	fresh, _ := st.Append(nil, item("b", "1"), nil)
	var trimmed *types.TrimmedDataAccessException
	if _, err := api.GetShardIterator(ctx, &dynamodbstreams.GetShardIteratorInput{StreamArn: aws.String(st.ARN), ShardId: shardID,
		ShardIteratorType: types.ShardIteratorTypeAtSequenceNumber, SequenceNumber: aws.String(old.Dynamodb.SequenceNumber)}); !errors.As(err, &trimmed) {
		t.Errorf("AT a trimmed record: %v, want TrimmedDataAccessException", err)
	}
	// After the last trimmed record is where a reader that read it goes on.
	after, err := api.GetShardIterator(ctx, &dynamodbstreams.GetShardIteratorInput{StreamArn: aws.String(st.ARN), ShardId: shardID,
		ShardIteratorType: types.ShardIteratorTypeAfterSequenceNumber, SequenceNumber: aws.String(old.Dynamodb.SequenceNumber)})
	if err != nil {
		t.Fatalf("AFTER the last trimmed record: %v", err)
	}
	if out, err := api.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: after.ShardIterator}); err != nil ||
		len(out.Records) != 1 || aws.ToString(out.Records[0].Dynamodb.SequenceNumber) != fresh.Dynamodb.SequenceNumber {
		t.Errorf("AFTER the last trimmed record: %v %+v", err, out)
	}
	horizon, _ = api.GetShardIterator(ctx, &dynamodbstreams.GetShardIteratorInput{StreamArn: aws.String(st.ARN),
		ShardId: shardID, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
	s.Disable("tbl")
	if r, _ := st.Append(nil, item("c", "1"), nil); r != nil {
		t.Error("a disabled stream took a record")
	}
	out, err := api.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: horizon.ShardIterator})
	if err != nil || len(out.Records) != 1 || aws.ToString(out.Records[0].Dynamodb.SequenceNumber) != fresh.Dynamodb.SequenceNumber {
		t.Fatalf("after the trim: %v %+v", err, out)
	}
	if out.NextShardIterator != nil {
		t.Error("a closed shard read to its end still has a next iterator")
	}
	ds, _ = api.DescribeStream(ctx, &dynamodbstreams.DescribeStreamInput{StreamArn: aws.String(st.ARN)})
	if ds.StreamDescription.StreamStatus != types.StreamStatusDisabled ||
		aws.ToString(ds.StreamDescription.Shards[0].SequenceNumberRange.EndingSequenceNumber) != fresh.Dynamodb.SequenceNumber {
		t.Errorf("disabled stream: %+v %+v", ds.StreamDescription, ds.StreamDescription.Shards[0].SequenceNumberRange)
	}
	var notFound *types.ResourceNotFoundException
	if _, err := api.DescribeStream(ctx, &dynamodbstreams.DescribeStreamInput{StreamArn: aws.String(st.ARN + "x")}); !errors.As(err, &notFound) {
		t.Errorf("unknown stream: %v", err)
	}
}
