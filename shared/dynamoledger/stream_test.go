package dynamoledger_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/flowgate/flowgate/shared/dynamoledger"
	"github.com/flowgate/flowgate/shared/upload"
)

// ReadyImage, which the stream's stand-ins send, is the record of a ready
// upload as the ledger stores it, in every attribute it has, and
// ReadChange reads it as that upload turning ready.
func TestReadyImageIsTheStoredReadyRecord(t *testing.T) {
	l, _, _ := newLedger(t, testShards)
	ctx := context.Background()
	u := info("ns", "ready-image", 100, 100) // one chunk: ready at once
	if !mustCount(t, l, u, 1) {
		t.Fatal("the only chunk did not make the upload ready")
	}
	out, err := l.Client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(l.Table), Key: dynamoledger.RecordKey(u.Key), ConsistentRead: aws.Bool(true)})
	if err != nil || out.Item == nil {
		t.Fatalf("read the record: %v %v", out, err)
	}
	img := dynamoledger.ReadyImage(u.Key)
	for name, v := range dynamoledger.FromStreamImage(img) {
		if !reflect.DeepEqual(v, out.Item[name]) {
			t.Errorf("ReadyImage's %s = %#v, the stored record's %#v", name, v, out.Item[name])
		}
	}
	c, ok := dynamoledger.ReadChange(events.DynamoDBEventRecord{EventName: "MODIFY",
		Change: events.DynamoDBStreamRecord{NewImage: img}})
	if !ok || c.Key != u.Key || c.State != upload.StateReady || c.Removed {
		t.Fatalf("ReadChange(ReadyImage) = %+v, %v; want %s ready", c, ok, u.Key)
	}
}

// KindOf tells apart the items the ledger writes: of an upload of two
// shards, its record, its identity claim and its two shards.
func TestKindOfTellsTheItemsApart(t *testing.T) {
	l, _, _ := newLedger(t, testShards)
	u := info("ns", "kinds", 600, 100) // 6 chunks: shards of 4 and 2
	for n := 1; n <= 5; n++ {
		mustCount(t, l, u, n)
	}
	out, err := l.Client.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(l.Table)})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[dynamoledger.Kind]int{}
	for _, it := range out.Items {
		kinds[dynamoledger.KindOf(it)]++
	}
	want := map[dynamoledger.Kind]int{dynamoledger.KindRecord: 1, dynamoledger.KindIdentity: 1, dynamoledger.KindShard: 2}
	if !reflect.DeepEqual(kinds, want) {
		t.Fatalf("kinds of the table's items = %v, want %v", kinds, want)
	}
	for _, other := range []map[string]types.AttributeValue{nil, {"sk": &types.AttributeValueMemberS{Value: "X#1"}}} {
		if k := dynamoledger.KindOf(other); k != "" {
			t.Errorf("KindOf(%v) = %q, want none", other, k)
		}
	}
}
