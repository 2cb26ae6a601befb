package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"

	"github.com/flowgate/flowgate/internal/devstack/localaws"
	"github.com/flowgate/flowgate/internal/testkit/awstest"
	"github.com/flowgate/flowgate/shared/dynamoledger"
	"github.com/flowgate/flowgate/shared/upload"
)

// The handler runs against real MinIO and dynalite (see localaws).
func TestMain(m *testing.M) { os.Exit(localaws.RunTests(m)) }

// Every sample REST API event in events/ goes through the real handler, in
// order: a CORS preflight, a test GET for a chunk not yet sent (204), a
// multipart POST (base64 body) that completes a one-chunk file, an octet POST
// of the first chunk of a two-chunk file, and the test GET again (200).
func TestSampleEvents(t *testing.T) {
	s3c, db := awstest.S3(t), awstest.DynamoDB(t)
	bucket, table := awstest.Bucket(t, s3c), awstest.Table(t, db)
	env := map[string]string{"FLOWGATE_BUCKET": bucket, "FLOWGATE_TABLE": table}
	getenv := func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		return os.Getenv(k)
	}
	ctx := context.Background()
	handle, err := newHandler(ctx, getenv)
	if err != nil {
		t.Fatal(err)
	}

	want := map[string]struct {
		status int
		body   string
	}{
		"upload-1-options-preflight.json": {204, ""},
		"upload-2-test-get.json":          {204, ""},
		"upload-3-multipart-post.json":    {200, `"ready":true`},
		"upload-4-octet-post.json":        {200, `"ready":false`},
		"upload-5-test-get-after.json":    {200, `"present":true`},
	}
	files, _ := filepath.Glob("../../events/upload-*.json")
	if len(files) != len(want) {
		t.Fatalf("events/ has %d upload samples, the test knows %d: give every sample an expectation", len(files), len(want))
	}
	for _, f := range files {
		name := filepath.Base(f)
		exp, ok := want[name]
		if !ok {
			t.Fatalf("no expectation for %s", name)
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var req events.APIGatewayProxyRequest
		if err := json.Unmarshal(b, &req); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		resp, err := handle(ctx, req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if resp.StatusCode != exp.status || !strings.Contains(resp.Body, exp.body) {
			t.Errorf("%s: %d %s, want %d with %s", name, resp.StatusCode, resp.Body, exp.status, exp.body)
		}
		if resp.Headers["Access-Control-Allow-Origin"] == "" && resp.MultiValueHeaders["Access-Control-Allow-Origin"] == nil {
			t.Errorf("%s: no CORS header in %v", name, resp.Headers)
		}
	}

	// The one-chunk file is ready for the assembler; the two-chunk one has
	// its first chunk staged under its key and generation, never under a
	// client string.
	one := upload.UploadKey("public", "12-hello.txt", 12, 1048576, 1)
	two := upload.UploadKey("public", "20-two.bin", 20, 10, 2)
	ledger := &dynamoledger.Ledger{Client: db, Table: table}
	gen := func(key string) string {
		rec, err := ledger.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		return rec.Generation
	}
	if keys := awstest.Keys(t, s3c, bucket, "staging/"); len(keys) != 2 ||
		keys[0] != "staging/"+one+"/"+gen(one)+"/00000001" || keys[1] != "staging/"+two+"/"+gen(two)+"/00000001" {
		t.Errorf("staged objects = %v", keys)
	}
}

// Every file in events/ belongs to a function whose test feeds it.
func TestEveryEventFileIsExercised(t *testing.T) {
	files, _ := filepath.Glob("../../events/*")
	if len(files) == 0 {
		t.Fatal("no sample events")
	}
	for _, f := range files {
		name := filepath.Base(f)
		fn, _, _ := strings.Cut(name, "-")
		if _, err := os.Stat(filepath.Join("..", fn, "main_test.go")); err != nil {
			t.Errorf("%s is fed to no function's test (name it <function>-*, after a functions/ directory whose main_test.go feeds it)", name)
		}
	}
}
