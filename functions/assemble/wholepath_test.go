package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/flowgate/flowgate/internal/devstack/apigw"
	"github.com/flowgate/flowgate/internal/testkit/awstest"
	"github.com/flowgate/flowgate/internal/testkit/flowclient"
	"github.com/flowgate/flowgate/shared/dynamoledger"
	"github.com/flowgate/flowgate/shared/upload"
)

// The whole AWS path against MinIO and dynalite: a flow.js-like client
// (shuffled chunks, duplicates, cut-off requests, test GETs) uploads through
// API Gateway's REST proxy (emulated: payload 1.0 events, binary bodies in
// base64) into the upload function's handler; the ready upload reaches the
// assembler function's handler as a stream record; the finished object
// matches the file, staging is empty and the event went to EventBridge.
func TestWholePath(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	api := httptest.NewServer(apigw.APIGateway(f.api))
	defer api.Close()

	for _, method := range []flowclient.Method{flowclient.Multipart, flowclient.Octet} {
		data := make([]byte, 5*(1<<20)+777) // 5 chunks, the last carrying the remainder
		for i := range data {
			data[i] = byte(rand.Uint32())
		}
		name := "clip-" + string(method) + ".mp4"
		client := &flowclient.Client{BaseURL: api.URL}
		_, err := client.Upload(ctx, flowclient.Options{
			ChunkSize: 1 << 20, TestChunks: true, Method: method, Shuffle: true, Duplicates: 0.4,
			AbortFraction: 0.2, MaxRetries: 3, RetryInterval: 10 * time.Millisecond, Seed: 7,
		}, bytes.NewReader(data), int64(len(data)), name)
		if err != nil {
			t.Fatalf("%s upload: %v", method, err)
		}

		// The stream: the upload that became ready goes, as its record's
		// stream record, to the assembler function's handler.
		h, err := newHandler(ctx, f.getenv)
		if err != nil {
			t.Fatal(err)
		}
		owed, err := h.Pipeline.Ledger.(*dynamoledger.Ledger).Overdue(ctx, time.Now().Add(time.Hour), 10)
		if err != nil || len(owed) != 1 {
			t.Fatalf("uploads owed work: %v, %v; want the one uploaded", owed, err)
		}
		resp, err := h.Handle(ctx, events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{readyRecord(owed[0])}})
		if err != nil || len(resp.BatchItemFailures) != 0 {
			t.Fatalf("assemble: %+v, %v", resp, err)
		}

		var ev upload.Event
		for _, e := range f.bus.events() {
			if e.FileName == name {
				ev = e
			}
		}
		if ev.UploadKey == "" || ev.Size != int64(len(data)) || ev.Chunks != 5 {
			t.Fatalf("%s: event = %+v", method, ev)
		}
		out, err := f.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(f.bucket), Key: aws.String(ev.Object)})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(out.Body)
		if sha256.Sum256(got) != sha256.Sum256(data) {
			t.Fatalf("%s: the finished object differs from the file", method)
		}
		if keys := awstest.Keys(t, f.s3, f.bucket, "staging/"); len(keys) != 0 {
			t.Fatalf("%s: staged objects left: %v", method, keys)
		}
		st, err := client.Status(ctx, flowclient.Options{ChunkSize: 1 << 20}, int64(len(data)), name)
		if err != nil || st.State != "complete" {
			t.Errorf("%s: status = %+v, %v", method, st, err)
		}
	}
}

// readyRecord is the stream record of an upload's record becoming ready
// (what the template's filter lets through), reduced to what the handler
// reads.
func readyRecord(key string) events.DynamoDBEventRecord {
	return events.DynamoDBEventRecord{
		EventID: "ready-" + key, EventName: "MODIFY",
		Change: events.DynamoDBStreamRecord{
			SequenceNumber: "100000000000000000001",
			NewImage:       dynamoledger.ReadyImage(key),
		},
	}
}
