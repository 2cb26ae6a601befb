// Package lambdafuzz fuzzes what the Lambda functions parse: the API Gateway
// proxy event that reaches the upload function, and the DynamoDB stream
// batch that reaches the assembler. Both run the real code paths (the
// upload function's handler as awsdeploy builds it, behind the same proxy
// adapter; the assembler's stream handler and pipeline) on in-memory
// storage, so that millions of inputs go through without AWS.
package lambdafuzz

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"github.com/flowgate/flowgate/internal/devstack/apigw"
	"github.com/flowgate/flowgate/shared/awsdeploy"
	"github.com/flowgate/flowgate/shared/streamassemble"
	"github.com/flowgate/flowgate/shared/upload"
)

// addSampleEvents adds the sample events in events/ whose names start with
// prefix to the seed corpus.
func addSampleEvents(f *testing.F, prefix string) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "events", prefix+"*.json"))
	if len(files) == 0 {
		f.Fatalf("no sample events %s* in events/", prefix)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// uploadFunction is the upload function's handler, built by awsdeploy from
// its configuration as functions/upload does, with in-memory storage.
func uploadFunction(f *testing.F, ledger *memLedger, store *memStore) apigw.RESTHandler {
	vars := map[string]string{
		"FLOWGATE_BUCKET": "fuzz", "FLOWGATE_TABLE": "fuzz",
		"FLOWGATE_MAX_FILE_SIZE": "64MiB", "FLOWGATE_MAX_CHUNK_SIZE": "1MiB", "FLOWGATE_MAX_CHUNKS": "1000",
	}
	cfg, err := awsdeploy.Load(func(k string) string { return vars[k] })
	if err != nil {
		f.Fatal(err)
	}
	d := &awsdeploy.Deployment{
		Config:  cfg,
		Log:     slog.New(slog.DiscardHandler),
		Service: &upload.Service{Store: store, Ledger: ledger},
	}
	return httpadapter.New(d.Handler()).ProxyWithContext
}

var gatewayMethods = []string{"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"}

// FuzzUploadEvent feeds arbitrary JSON, read as an API Gateway REST proxy
// event, to the upload function. Whatever a client can put in an event
// (path, method, headers, query, body), the function must answer without
// panicking, without an invocation error (API Gateway would turn it into a
// 502) and without a 5xx: the storage here never fails, so any 5xx is the
// handler's fault. A refused request must leave no staged bytes behind (no
// staged upload without a ledger record), and a 200 for a POST means a
// chunk was counted.
//
// What API Gateway itself guarantees is restored first: it sets the domain
// name, and a body it marks base64 is valid base64.
func FuzzUploadEvent(f *testing.F) {
	addSampleEvents(f, "upload-")
	f.Add([]byte(`{"httpMethod":"POST","path":"/upload","queryStringParameters":{"flowChunkNumber":"1"},"body":"x"}`))
	f.Add([]byte(`{"httpMethod":"GET","path":"/upload/status","multiValueQueryStringParameters":{"flowIdentifier":["a","b"]}}`))
	f.Add([]byte(`{"httpMethod":"POST","path":"/upload","headers":{"Content-Type":"multipart/form-data; boundary=x"},"isBase64Encoded":true,"body":"LS14DQo="}`))

	ledger, store := newMemLedger(), newMemStore()
	handle := uploadFunction(f, ledger, store)

	f.Fuzz(func(t *testing.T, data []byte) {
		var ev events.APIGatewayProxyRequest
		if json.Unmarshal(data, &ev) != nil {
			return
		}
		ev.RequestContext.DomainName = "abc123.execute-api.us-east-1.amazonaws.com"
		if ev.IsBase64Encoded {
			if _, err := base64.StdEncoding.DecodeString(ev.Body); err != nil {
				ev.Body = base64.StdEncoding.EncodeToString([]byte(ev.Body))
			}
		}
		// Only these reach the function: the REST API has no other resources.
		routed := (ev.Path == "/upload" || ev.Path == "/upload/status") && slices.Contains(gatewayMethods, ev.HTTPMethod)
		if !routed {
			// Other events only matter as far as the adapter turns them
			// into requests; those it cannot, it refuses with an error and
			// a line on stdout, which would stall a fuzzing worker.
			if _, err := http.NewRequest(strings.ToUpper(ev.HTTPMethod), "https://"+ev.RequestContext.DomainName+"/"+strings.TrimPrefix(ev.Path, "/"), nil); err != nil {
				return
			}
		}

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		watchdog := time.AfterFunc(5*time.Second, func() {
			buf := make([]byte, 1<<20)
			panic("hung:\n" + string(buf[:runtime.Stack(buf, true)]))
		})
		resp, err := handle(ctx, ev)
		watchdog.Stop()
		if err != nil {
			if routed {
				t.Fatalf("invocation error (a 502 from API Gateway) for %s %s: %v", ev.HTTPMethod, ev.Path, err)
			}
			return
		}
		if resp.StatusCode >= 500 || resp.StatusCode < 100 {
			t.Fatalf("status %d for %s %s: %s", resp.StatusCode, ev.HTTPMethod, ev.Path, resp.Body)
		}
		if routed && resp.StatusCode >= 400 && ev.HTTPMethod != "HEAD" {
			var e struct{ Error string }
			if json.Unmarshal([]byte(resp.Body), &e) != nil || e.Error == "" {
				t.Fatalf("%d without a JSON error: %q", resp.StatusCode, resp.Body)
			}
		}
		if routed && ev.Path == "/upload" && ev.HTTPMethod == "POST" && resp.StatusCode == 200 {
			var ok struct{ Chunk int }
			if json.Unmarshal([]byte(resp.Body), &ok) != nil || ok.Chunk < 1 || !ledger.counted(ok.Chunk) {
				t.Fatalf("200 %q, but no such chunk is counted", resp.Body)
			}
		}
		for _, p := range store.stagedPlaces() {
			if rec, err := ledger.Get(ctx, p[0]); err != nil || rec.Generation != p[1] {
				t.Fatalf("upload %s has staged bytes in generation %s but no record of it: a refused request stored something", p[0], p[1])
			}
		}
		if store.bytes > 256<<20 {
			// Keep memory bounded over a long run.
			ledger.reset()
			store.reset()
		}
	})
}

// Uploads the stream fuzz starts from, one per state that matters.
var (
	readyInfo     = streamInfo("ready-id", 3)
	receivingInfo = streamInfo("receiving-id", 3)
	completeInfo  = streamInfo("complete-id", 2)
)

func streamInfo(id string, chunks int) upload.Info {
	size := int64(chunks * 10)
	return upload.Info{
		Key: upload.UploadKey("public", id, size, 10, chunks), Namespace: "public", Identifier: id,
		FileName: id + ".bin", RelativePath: id + ".bin", TotalSize: size, ChunkSize: 10, TotalChunks: chunks,
	}
}

// streamFixture is a ledger and store holding one upload ready, one still
// receiving (two of three chunks), and one complete.
func streamFixture(t *testing.T) (*memLedger, *memStore, *memPublisher, *streamassemble.Handler) {
	ctx := context.Background()
	ledger, store, pub := newMemLedger(), newMemStore(), &memPublisher{}
	put := func(info upload.Info, n int) {
		_, size := info.ChunkBounds(n)
		slot, err := ledger.Lookup(ctx, info, n)
		if err != nil {
			t.Fatal(err)
		}
		if err := store.PutChunk(ctx, info, slot.Generation, n, strings.NewReader(strings.Repeat("x", int(size)))); err != nil {
			t.Fatal(err)
		}
		if _, err := ledger.Count(ctx, info, n, slot); err != nil {
			t.Fatal(err)
		}
	}
	for n := 1; n <= 3; n++ {
		put(readyInfo, n)
	}
	put(receivingInfo, 1)
	put(receivingInfo, 3)
	put(completeInfo, 1)
	put(completeInfo, 2)
	log := slog.New(slog.DiscardHandler)
	h := &streamassemble.Handler{
		Pipeline: upload.Pipeline{Ledger: ledger, Assembler: store, Publisher: pub, Lease: time.Minute, Log: log},
		Store:    store, Restorer: ledger, Log: log,
	}
	p := h.Pipeline
	p.Owner = "setup"
	if err := p.Run(ctx, completeInfo.Key); err != nil {
		t.Fatal(err)
	}
	pub.events = nil
	return ledger, store, pub, h
}

// FuzzStreamEvent feeds arbitrary JSON, read as a DynamoDB stream batch, to
// the assembler function's handler. Whatever the records say, it must not
// panic or fail the invocation (failures are reported per record, for
// Lambda to retry them), and it must never assemble an upload that is not
// ready, assemble one twice, discard the chunks of the generation of an
// upload that still has a record, or announce a file that is not complete.
func FuzzStreamEvent(f *testing.F) {
	addSampleEvents(f, "assemble-")
	f.Add([]byte(`{"Records":[{"eventID":"1","eventName":"MODIFY","dynamodb":{"SequenceNumber":"1","NewImage":{"sk":{"S":"META"},"status":{"S":"ready"},"key":{"S":"` + readyInfo.Key + `"}}}}]}`))
	f.Add([]byte(`{"Records":[{"eventID":"2","eventName":"REMOVE","dynamodb":{"SequenceNumber":"2","OldImage":{"sk":{"S":"META"},"key":{"S":"` + receivingInfo.Key + `"}}}}]}`))
	f.Add([]byte(`{"Records":[{"eventID":"3","eventName":"INSERT","dynamodb":{"SequenceNumber":"3","NewImage":{"sk":{"S":"META"},"status":{"S":"ready"},"key":{"N":"12"}}}}]}`))

	f.Fuzz(func(t *testing.T, data []byte) {
		var ev events.DynamoDBEvent
		if json.Unmarshal(data, &ev) != nil {
			return
		}
		ledger, store, pub, h := streamFixture(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := h.Handle(ctx, ev)
		if err != nil {
			t.Fatalf("invocation error: %v", err)
		}
		seqs := map[string]bool{}
		for _, r := range ev.Records {
			seqs[r.Change.SequenceNumber] = true
		}
		for _, fail := range resp.BatchItemFailures {
			if !seqs[fail.ItemIdentifier] {
				t.Fatalf("failure reported for sequence %q, which is in no record", fail.ItemIdentifier)
			}
		}
		for key, n := range store.assembled {
			if n > 1 || key != readyInfo.Key && key != completeInfo.Key {
				t.Fatalf("upload %s assembled %d times", key, n)
			}
		}
		if store.assembled[completeInfo.Key] != 1 {
			t.Fatalf("the complete upload was assembled again")
		}
		if store.assembled[readyInfo.Key] == 1 {
			if rec, _ := ledger.Get(ctx, readyInfo.Key); rec.State != upload.StateComplete {
				t.Fatalf("assembled, but the record is %s", rec.State)
			}
		}
		for _, d := range store.discarded {
			if rec, err := ledger.Get(ctx, d[0]); err == nil && rec.Generation == d[1] {
				t.Fatalf("the chunks of %s were discarded although its record (of that generation) exists", d[0])
			}
		}
		rec, err := ledger.Get(ctx, receivingInfo.Key)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := store.staged[place(receivingInfo.Key, rec.Generation)]; !ok {
			t.Fatalf("the receiving upload lost its chunks")
		}
		for _, e := range pub.events {
			if rec, err := ledger.Get(ctx, e.UploadKey); err != nil || rec.State != upload.StateComplete {
				t.Fatalf("event for %s, which is not complete (%v)", e.UploadKey, err)
			}
		}
		if n := len(pub.events); n > 0 && store.assembled[readyInfo.Key] == 0 {
			t.Fatalf("%d events, but nothing was assembled", n)
		}
	})
}
