package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"

	"github.com/flowgate/flowgate/internal/devstack/esm"
	"github.com/flowgate/flowgate/internal/testkit/awstest"
	"github.com/flowgate/flowgate/internal/testkit/ledgertest"
	"github.com/flowgate/flowgate/shared/dynamoledger"
	"github.com/flowgate/flowgate/shared/publish"
	"github.com/flowgate/flowgate/shared/upload"
)

// matchPattern is the event filter matcher of the dev stack's event source
// mapping (package esm), the one the emulated platform filters with; the
// template's stream filter and rules are checked with it too.
var matchPattern = esm.MatchPattern

// streamFilters returns the assembler's FilterCriteria patterns.
func streamFilters(t testing.TB, s *stack) []map[string]any {
	var out []map[string]any
	for _, ev := range mapOf(s.props("AssembleFunction")["Events"]) {
		for _, f := range listOf(get(ev, "Properties", "FilterCriteria", "Filters")) {
			var p map[string]any
			if err := json.Unmarshal([]byte(str(get(f, "Pattern"))), &p); err != nil {
				t.Fatalf("filter pattern %v: %v", f, err)
			}
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		t.Fatal("the assembler's event source has no filters")
	}
	return out
}

func anyMatch(t testing.TB, filters []map[string]any, record any) bool {
	for _, f := range filters {
		ok, err := matchPattern(f, record)
		if err != nil {
			t.Fatalf("filter %v: %v", f, err)
		}
		if ok {
			return true
		}
	}
	return false
}

// streamRecorder wraps the ledger's real DynamoDB client and, after every
// write, reads the item back and emits the record DynamoDB Streams would:
// INSERT, MODIFY or REMOVE with both images, and nothing when the write
// changed nothing. Run sequentially, it is the table's stream.
type streamRecorder struct {
	dynamoledger.API
	table   string
	mu      sync.Mutex
	records []map[string]any
}

func (r *streamRecorder) around(ctx context.Context, key map[string]types.AttributeValue, write func() error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	before := r.read(ctx, key)
	if err := write(); err != nil {
		return err
	}
	after := r.read(ctx, key)
	name := ""
	switch {
	case before == nil && after != nil:
		name = "INSERT"
	case before != nil && after == nil:
		name = "REMOVE"
	case before != nil && !reflect.DeepEqual(before, after):
		name = "MODIFY"
	default:
		return nil
	}
	change := map[string]any{"Keys": image(key), "StreamViewType": "NEW_AND_OLD_IMAGES",
		"SequenceNumber": fmt.Sprintf("%024d", len(r.records)+1)}
	if after != nil {
		change["NewImage"] = image(after)
	}
	if before != nil {
		change["OldImage"] = image(before)
	}
	// Round-trip through JSON: the filter sees the record as Lambda does.
	b, _ := json.Marshal(map[string]any{"eventName": name, "eventSource": "aws:dynamodb", "dynamodb": change})
	var rec map[string]any
	json.Unmarshal(b, &rec)
	r.records = append(r.records, rec)
	return nil
}

func (r *streamRecorder) read(ctx context.Context, key map[string]types.AttributeValue) map[string]types.AttributeValue {
	out, err := r.API.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(r.table), Key: key, ConsistentRead: aws.Bool(true)})
	if err != nil || len(out.Item) == 0 {
		return nil
	}
	return out.Item
}

func keyOf(item map[string]types.AttributeValue) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": item["pk"], "sk": item["sk"]}
}

func (r *streamRecorder) PutItem(ctx context.Context, in *dynamodb.PutItemInput, o ...func(*dynamodb.Options)) (out *dynamodb.PutItemOutput, err error) {
	err = r.around(ctx, keyOf(in.Item), func() error { out, err = r.API.PutItem(ctx, in, o...); return err })
	return out, err
}

func (r *streamRecorder) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, o ...func(*dynamodb.Options)) (out *dynamodb.UpdateItemOutput, err error) {
	err = r.around(ctx, in.Key, func() error { out, err = r.API.UpdateItem(ctx, in, o...); return err })
	return out, err
}

func (r *streamRecorder) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, o ...func(*dynamodb.Options)) (out *dynamodb.DeleteItemOutput, err error) {
	err = r.around(ctx, in.Key, func() error { out, err = r.API.DeleteItem(ctx, in, o...); return err })
	return out, err
}

// image renders an item as a stream image: {"attr": {"S": "..."}}.
func image(item map[string]types.AttributeValue) map[string]any {
	out := map[string]any{}
	for k, v := range item {
		out[k] = attr(v)
	}
	return out
}

func attr(v types.AttributeValue) map[string]any {
	switch x := v.(type) {
	case *types.AttributeValueMemberS:
		return map[string]any{"S": x.Value}
	case *types.AttributeValueMemberN:
		return map[string]any{"N": x.Value}
	case *types.AttributeValueMemberBOOL:
		return map[string]any{"BOOL": x.Value}
	case *types.AttributeValueMemberNULL:
		return map[string]any{"NULL": x.Value}
	case *types.AttributeValueMemberB:
		return map[string]any{"B": x.Value}
	case *types.AttributeValueMemberSS:
		return map[string]any{"SS": x.Value}
	case *types.AttributeValueMemberNS:
		return map[string]any{"NS": x.Value}
	case *types.AttributeValueMemberL:
		l := []any{}
		for _, e := range x.Value {
			l = append(l, attr(e))
		}
		return map[string]any{"L": l}
	case *types.AttributeValueMemberM:
		return map[string]any{"M": image(x.Value)}
	}
	panic(fmt.Sprintf("attribute %T", v))
}

// The assembler's stream filter, applied to every record the real ledger
// writes (dynamoledger against dynalite, its writes turned into stream
// records), lets through exactly the two kinds package streamassemble
// handles: an upload record becoming ready (once per upload), and an
// upload record being removed. Shard and identity items, and upload records
// receiving, assembling, complete or failed, are kept away.
func TestStreamFilterOnLedgerRecords(t *testing.T) {
	raw := readTemplate(t, "../template.yaml")
	filters := streamFilters(t, evaluate(t, raw, nil))

	db := awstest.DynamoDB(t)
	rec := &streamRecorder{API: db, table: awstest.Table(t, db)}
	clock := &awstest.Clock{}
	l := &dynamoledger.Ledger{Client: rec, Table: rec.table, Now: clock.Now}
	ctx := context.Background()
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
	// a: three chunks with duplicates and a pause (after which the ledger
	// touches the receiving record), assembled and published.
	a := info("a", 3)
	count(a, 1, 2)
	clock.Advance(dynamoledger.DefaultIdleTTL/8 + time.Minute)
	count(a, 2, 1, 3, 3)
	if _, err := l.Claim(ctx, a.Key, "owner", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := l.Complete(ctx, a.Key, "owner", upload.Result{Location: "s3://b/k", Bucket: "b", Object: "k", Size: 3000}); err != nil {
		t.Fatal(err)
	}
	if err := l.MarkPublished(ctx, a.Key); err != nil {
		t.Fatal(err)
	}
	// b: one chunk, ready, claimed, failed.
	b := info("b", 1)
	count(b, 1)
	if _, err := l.Claim(ctx, b.Key, "owner", time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := l.Fail(ctx, b.Key, "owner", "size mismatch"); err != nil {
		t.Fatal(err)
	}
	// c: abandoned while receiving; TTL removes its record, then its items.
	c := info("c", 4)
	count(c, 2, 4)
	clock.Advance(48 * time.Hour)
	for _, sk := range []string{"META", "S#000000"} { // the record, then its one shard
		key := map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "U#" + c.Key},
			"sk": &types.AttributeValueMemberS{Value: sk}}
		if _, err := rec.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(rec.table), Key: key}); err != nil {
			t.Fatal(err)
		}
	}

	kinds := map[string]int{}
	readyPassed := map[string]int{}
	for _, r := range rec.records {
		name := str(r["eventName"])
		img := get(r, "dynamodb", "NewImage")
		if name == "REMOVE" {
			img = get(r, "dynamodb", "OldImage")
		}
		sk, status := str(get(img, "sk", "S")), str(get(img, "status", "S"))
		kind := name + " " + strings.SplitN(sk, "#", 2)[0]
		if sk == "META" {
			kind += " " + status
		}
		kinds[kind]++
		wantPass := (sk == "META" && name != "REMOVE" && status == string(upload.StateReady)) || (sk == "META" && name == "REMOVE")
		if got := anyMatch(t, filters, r); got != wantPass {
			b, _ := json.Marshal(r)
			t.Errorf("%s: filter passes it %v, want %v:\n%s", kind, got, wantPass, b)
		}
		if wantPass && name != "REMOVE" {
			readyPassed[str(get(img, "key", "S"))]++
		}
	}
	// The run produced every kind of record, so the filter was tried on each.
	for _, k := range []string{"INSERT META receiving", "MODIFY META receiving", "MODIFY META ready", "MODIFY META assembling",
		"MODIFY META complete", "MODIFY META failed", "REMOVE META receiving", "INSERT S", "MODIFY S", "REMOVE S", "INSERT ID"} {
		if kinds[k] == 0 {
			t.Errorf("no %q record in the run (kinds: %v)", k, kinds)
		}
	}
	if readyPassed[a.Key] != 1 || readyPassed[b.Key] != 1 || readyPassed[c.Key] != 0 {
		t.Errorf("ready records passed per upload: %v; want exactly one for a and b", readyPassed)
	}
}

// The template's filters are the ones package dynamoledger documents with
// the stream's records (stream.go), which streamassemble handles.
func TestStreamFilterIsDocumented(t *testing.T) {
	raw := readTemplate(t, "../template.yaml")
	filters := streamFilters(t, evaluate(t, raw, nil))
	src, err := os.ReadFile("../shared/dynamoledger/stream.go")
	if err != nil {
		t.Fatal(err)
	}
	var documented []map[string]any
	for _, line := range strings.Split(string(src), "\n") {
		if p, ok := strings.CutPrefix(line, "//\t{"); ok {
			var m map[string]any
			if err := json.Unmarshal([]byte("{"+p), &m); err != nil {
				t.Fatalf("dynamoledger's documented pattern %q: %v", p, err)
			}
			documented = append(documented, m)
		}
	}
	if !reflect.DeepEqual(filters, documented) {
		t.Errorf("template filters %v, dynamoledger documents %v", filters, documented)
	}
}

type captureBus struct{ in *eventbridge.PutEventsInput }

func (c *captureBus) PutEvents(_ context.Context, in *eventbridge.PutEventsInput, _ ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error) {
	c.in = in
	return &eventbridge.PutEventsOutput{}, nil
}

// The consumer's rule is on the stack's bus and matches the event the
// assembler really puts there (publish.EventBridge, captured), and nothing
// S3 sends.
func TestConsumerRuleMatchesPublishedEvent(t *testing.T) {
	raw := readTemplate(t, "../template.yaml")
	s := evaluate(t, raw, variants[2].params)
	ev := get(s.props("ConsumerFunction"), "Events", "UploadCompleted")
	if str(get(ev, "Type")) != "EventBridgeRule" || str(get(ev, "Properties", "EventBusName")) != s.ref("UploadsBus") {
		t.Fatalf("consumer event %v", ev)
	}
	pattern := mapOf(get(ev, "Properties", "Pattern"))

	bus := &captureBus{}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := (publish.EventBridge{Client: bus, Bus: s.ref("UploadsBus")}).Publish(context.Background(),
		upload.Event{UploadKey: "k", Bucket: "b", Object: "files/k-g/x", Size: 1, StartedAt: now, CompletedAt: now}); err != nil {
		t.Fatal(err)
	}
	e := bus.in.Entries[0]
	if aws.ToString(e.EventBusName) != functionEnv(s, "AssembleFunction")["FLOWGATE_EVENT_BUS"] {
		t.Errorf("published to %q", aws.ToString(e.EventBusName))
	}
	var detail any
	json.Unmarshal([]byte(aws.ToString(e.Detail)), &detail)
	event := map[string]any{"version": "0", "id": "1", "source": aws.ToString(e.Source), "detail-type": aws.ToString(e.DetailType),
		"account": account, "region": region, "time": "2026-01-01T00:00:00Z", "resources": []any{}, "detail": detail}
	if ok, err := matchPattern(pattern, event); err != nil || !ok {
		t.Errorf("the consumer's rule %v misses the published event %v (%v)", pattern, event, err)
	}
	s3event := map[string]any{"source": "aws.s3", "detail-type": "Object Created", "detail": map[string]any{}}
	if ok, _ := matchPattern(pattern, s3event); ok {
		t.Error("the consumer's rule also takes S3's events")
	}
}
