package main

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/flowgate/flowgate/internal/devstack/localaws"
	"github.com/flowgate/flowgate/internal/testkit/awstest"
	"github.com/flowgate/flowgate/shared/dynamoledger"
	"github.com/flowgate/flowgate/shared/s3store"
	"github.com/flowgate/flowgate/shared/upload"
)

// The handler runs against real MinIO and dynalite (see localaws).
func TestMain(m *testing.M) { os.Exit(localaws.RunTests(m)) }

// The sample event (events/count-s3-object-created.json, the form S3's
// notification takes) of a chunk a browser stored, through the function's
// own handler: the chunk is counted, and the one-chunk upload is ready.
// (What the handler does with every other kind of object: package s3count.)
func TestSampleEvent(t *testing.T) {
	ctx := context.Background()
	s3c, db := awstest.S3(t), awstest.DynamoDB(t)
	bucket, table := awstest.Bucket(t, s3c), awstest.Table(t, db)
	env := map[string]string{"FLOWGATE_BUCKET": bucket, "FLOWGATE_TABLE": table, "FLOWGATE_DATA_PATH": "direct"}
	h, err := newHandler(ctx, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}

	// The upload the sample names: its record begun when its URLs were
	// asked for, its chunk stored by the browser with its checksum.
	info := upload.Info{Key: upload.UploadKey("public", "12-hello-direct.txt", 12, 1048576, 1), Namespace: "public",
		Identifier: "12-hello-direct.txt", FileName: "hello-direct.txt", RelativePath: "hello-direct.txt",
		TotalSize: 12, ChunkSize: 1048576, TotalChunks: 1}
	ledger := &dynamoledger.Ledger{Client: db, Table: table}
	b, err := ledger.Begin(ctx, info, []int{1}, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	store := &s3store.Store{Client: s3c, Bucket: bucket}
	if err := store.PutChunk(ctx, info, b.Generation, 1, strings.NewReader("hello direct")); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("../../events/count-s3-object-created.json")
	if err != nil {
		t.Fatal(err)
	}
	var ev events.S3Event
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Records[0].S3.Object.URLDecodedKey != "staging/"+info.Key+"/0123456789abcdef/00000001" {
		t.Fatalf("the sample names %s, not this upload", ev.Records[0].S3.Object.URLDecodedKey)
	}
	// Its generation is random: the sample's is replaced by the record's.
	ev.Records[0].S3.Bucket.Name = bucket
	ev.Records[0].S3.Object.URLDecodedKey = store.ChunkKey(info.Key, b.Generation, 1)

	for range 2 { // at least once: the second changes nothing
		rep, err := h(ctx, ev)
		if err != nil || rep.Counted+rep.Done != 1 {
			t.Fatalf("count: %+v, %v", rep, err)
		}
	}
	if rec, err := ledger.Get(ctx, info.Key); err != nil || rec.State != upload.StateReady || rec.Received != 1 {
		t.Fatalf("the upload after its chunk was counted: %+v, %v", rec, err)
	}
}
