package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"github.com/flowgate/flowgate/internal/devstack/localaws"
	"github.com/flowgate/flowgate/internal/testkit/awstest"
	"github.com/flowgate/flowgate/shared/awsdeploy"
	"github.com/flowgate/flowgate/shared/dynamoledger"
	"github.com/flowgate/flowgate/shared/upload"
)

// The handler runs against real MinIO and dynalite (see localaws).
func TestMain(m *testing.M) { os.Exit(localaws.RunTests(m)) }

// eventBus stands in for EventBridge (there is no local one): it speaks the
// PutEvents wire protocol and keeps the details it receives.
type eventBus struct {
	mu      sync.Mutex
	details []upload.Event
}

func (b *eventBus) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Entries []struct{ Source, DetailType, Detail string }
	}
	body, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(body, &req); err != nil || r.Header.Get("X-Amz-Target") != "AWSEvents.PutEvents" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	b.mu.Lock()
	for _, e := range req.Entries {
		var ev upload.Event
		if e.Source == upload.EventSource && e.DetailType == upload.EventDetailType && json.Unmarshal([]byte(e.Detail), &ev) == nil {
			b.details = append(b.details, ev)
		}
	}
	b.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	io.WriteString(w, `{"FailedEntryCount":0,"Entries":[{"EventId":"1"}]}`)
}

func (b *eventBus) events() []upload.Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]upload.Event(nil), b.details...)
}

type fixture struct {
	s3     *s3.Client
	db     *dynamodb.Client
	bucket string
	table  string
	bus    *eventBus
	getenv func(string) string
	api    func(context.Context, events.APIGatewayProxyRequest) (events.APIGatewayProxyResponse, error)
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{s3: awstest.S3(t), db: awstest.DynamoDB(t), bus: &eventBus{}}
	f.bucket, f.table = awstest.Bucket(t, f.s3), awstest.Table(t, f.db)
	srv := httptest.NewServer(f.bus)
	t.Cleanup(srv.Close)
	t.Setenv("AWS_ENDPOINT_URL_EVENTBRIDGE", srv.URL) // read by the SDK, as on AWS
	env := map[string]string{"FLOWGATE_BUCKET": f.bucket, "FLOWGATE_TABLE": f.table, "FLOWGATE_EVENT_BUS": "uploads"}
	f.getenv = func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		return os.Getenv(k)
	}
	cfg, err := awsdeploy.Load(f.getenv)
	if err != nil {
		t.Fatal(err)
	}
	d, err := awsdeploy.New(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	f.api = httpadapter.New(d.Handler()).ProxyWithContext
	return f
}

// send replays a sample upload event through the upload function's handler,
// so the stream records refer to uploads that really exist.
func (f *fixture) send(t *testing.T, name string, edit func(*events.APIGatewayProxyRequest)) {
	t.Helper()
	var req events.APIGatewayProxyRequest
	b, err := os.ReadFile("../../events/" + name)
	if err == nil {
		err = json.Unmarshal(b, &req)
	}
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(&req)
	}
	resp, err := f.api(context.Background(), req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %d %s %v", name, resp.StatusCode, resp.Body, err)
	}
}

func batch(t *testing.T) events.DynamoDBEvent {
	t.Helper()
	var ev events.DynamoDBEvent
	b, err := os.ReadFile("../../events/assemble-stream-batch.json")
	if err == nil {
		err = json.Unmarshal(b, &ev)
	}
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// The sample batch: a ready record, the same record delivered again, and a
// TTL REMOVE of an abandoned upload. The first is assembled and announced
// once, the second does nothing, the third loses its staged chunks.
func TestSampleStreamBatch(t *testing.T) {
	files, _ := filepath.Glob("../../events/assemble-*.json")
	if len(files) != 1 {
		t.Fatalf("events/ has %d assemble samples; this test knows assemble-stream-batch.json", len(files))
	}
	f := newFixture(t)
	ctx := context.Background()
	f.send(t, "upload-3-multipart-post.json", nil) // hello.txt, one chunk: ready
	f.send(t, "upload-4-octet-post.json", nil)     // two.bin, chunk 1 of 2
	hello := upload.UploadKey("public", "12-hello.txt", 12, 1048576, 1)
	two := upload.UploadKey("public", "20-two.bin", 20, 10, 2)

	// TTL removes two.bin's record (dynalite has no TTL: delete it as DynamoDB would).
	ev := batch(t)
	removed(ev, f.remove(t, two))

	handle, err := newHandler(ctx, f.getenv)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := handle.Handle(ctx, ev)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("batch: %+v %v", resp, err)
	}

	evs := f.bus.events()
	if len(evs) != 1 || evs[0].UploadKey != hello || evs[0].Size != 12 || evs[0].FileName != "hello.txt" {
		t.Fatalf("events published = %+v, want one for hello.txt", evs)
	}
	out, err := f.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(f.bucket), Key: aws.String(evs[0].Object)})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(out.Body)
	if string(got) != "hello, world" {
		t.Fatalf("finished object = %q", got)
	}
	if !strings.HasPrefix(evs[0].Object, "files/"+hello+"-") || !strings.HasSuffix(evs[0].Object, "/hello.txt") {
		t.Errorf("finished key = %s", evs[0].Object)
	}
	if keys := awstest.Keys(t, f.s3, f.bucket, "staging/"); len(keys) != 0 {
		t.Errorf("staged objects left: %v (hello.txt's should be assembled away, two.bin's discarded)", keys)
	}

	// The same batch again (Lambda retries whole batches): nothing changes.
	if resp, err := handle.Handle(ctx, ev); err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("batch again: %+v %v", resp, err)
	}
	if n := len(f.bus.events()); n != 1 {
		t.Errorf("%d events after a redelivered batch, want still 1", n)
	}
}

// A record that cannot be handled now (here: the bucket is unreachable) is
// reported by sequence number so Lambda retries it; the retry succeeds.
func TestFailedRecordIsReported(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.send(t, "upload-3-multipart-post.json", nil)

	broken := func(k string) string {
		if k == "FLOWGATE_BUCKET" {
			return "no-such-bucket-" + strings.ToLower(awstest.Name("x"))
		}
		return f.getenv(k)
	}
	ev := batch(t)
	ev.Records = ev.Records[:1]
	bad, err := newHandler(ctx, broken)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := bad.Handle(ctx, ev)
	if err != nil || len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != ev.Records[0].Change.SequenceNumber {
		t.Fatalf("batch with an unreachable bucket: %+v %v; want its record reported", resp, err)
	}
	// Lambda retries the record (same event ID, so the same owner re-claims
	// at once, without waiting out the lease).
	good, err := newHandler(ctx, f.getenv)
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := good.Handle(ctx, ev); err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("retry: %+v %v", resp, err)
	}
	if n := len(f.bus.events()); n != 1 {
		t.Fatalf("%d events after the retry, want 1", n)
	}
}

// An expired record whose upload has started again under a new record (same
// key, new generation) loses only its own chunks: the new generation's
// stay, whenever the REMOVE arrives.
func TestRemoveAfterRestartKeepsChunks(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	two := upload.UploadKey("public", "20-two.bin", 20, 10, 2)
	f.send(t, "upload-4-octet-post.json", nil)
	old := f.remove(t, two)
	f.send(t, "upload-4-octet-post.json", nil) // the client resumes: a new record
	rec, err := f.ledger().Get(ctx, two)
	if err != nil || rec.Generation == old {
		t.Fatalf("the resumed upload's record: %+v, %v", rec, err)
	}

	h, err := newHandler(ctx, f.getenv)
	if err != nil {
		t.Fatal(err)
	}
	ev := batch(t)
	removed(ev, old)
	ev.Records = ev.Records[2:] // the REMOVE
	if resp, err := h.Handle(ctx, ev); err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("batch: %+v %v", resp, err)
	}
	if keys := awstest.Keys(t, f.s3, f.bucket, "staging/"+two+"/"); len(keys) != 1 || !strings.Contains(keys[0], "/"+rec.Generation+"/") {
		t.Fatalf("chunks of the upload = %v, want only its new generation's chunk 1", keys)
	}
}

// remove deletes the upload's record as DynamoDB's TTL would (dynalite has
// no TTL) and returns the generation it had.
func (f *fixture) remove(t *testing.T, key string) string {
	t.Helper()
	rec, err := f.ledger().Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.db.DeleteItem(context.Background(), &dynamodb.DeleteItemInput{TableName: aws.String(f.table), Key: map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: "U#" + key}, "sk": &types.AttributeValueMemberS{Value: "META"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return rec.Generation
}

func (f *fixture) ledger() *dynamoledger.Ledger {
	return &dynamoledger.Ledger{Client: f.db, Table: f.table}
}

// removed makes the sample batch's REMOVE record name the generation that
// was really removed (generations are random).
func removed(ev events.DynamoDBEvent, gen string) {
	for _, r := range ev.Records {
		if r.EventName == "REMOVE" {
			r.Change.OldImage["gen"] = events.NewStringAttribute(gen)
		}
	}
}
