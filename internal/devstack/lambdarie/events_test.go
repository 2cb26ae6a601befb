package lambdarie

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/flowgate/flowgate/internal/devstack/apigw"
	"github.com/flowgate/flowgate/internal/devstack/localaws"
	"github.com/flowgate/flowgate/internal/testkit/awstest"
	"github.com/flowgate/flowgate/shared/dynamoledger"
	"github.com/flowgate/flowgate/shared/s3store"
	"github.com/flowgate/flowgate/shared/upload"
)

// The tests in this file prove the functions as Lambda runs them: each
// function's release-built bootstrap under RIE, configured only through its
// environment, fed every sample event in events/ as raw JSON. What the
// handlers do with each event is proved in-process by functions/*/main_test.go;
// here it is the binary, its init, its environment and the runtime loop.

// awsEnv is the environment of a function on the AWS path: the local
// servers' endpoints and credentials, as localaws.RunTests set them for
// this process, and a fresh bucket and table.
func awsEnv(t *testing.T) (env []string, s3c *s3.Client, db *dynamodb.Client, bucket, table string) {
	t.Helper()
	s3c, db = awstest.S3(t), awstest.DynamoDB(t)
	bucket, table = awstest.Bucket(t, s3c), awstest.Table(t, db)
	env = append(localaws.Current().Env(), "FLOWGATE_BUCKET="+bucket, "FLOWGATE_TABLE="+table)
	return env, s3c, db, bucket, table
}

// sampleSecret signed events/authorizer-token.json (see functions/authorizer).
const sampleSecret = "flowgate-local-only-secret-0123456789"

func TestEveryEventThroughRIE(t *testing.T) {
	env, s3c, db, bucket, table := awsEnv(t)
	ctx := context.Background()
	uploadFn := start(t, Options{Function: "upload", Env: env})
	assembleFn := start(t, Options{Function: "assemble", Env: env})
	authorizerFn := start(t, Options{Function: "authorizer", Env: []string{
		"FLOWGATE_JWT_SECRET=" + sampleSecret, "FLOWGATE_JWT_ISSUER=https://flowgate.local/", "FLOWGATE_JWT_AUDIENCE=flowgate"}})
	consumerFn := start(t, Options{Function: "consumer"})
	countFn := start(t, Options{Function: "count", Env: append(env, "FLOWGATE_DATA_PATH=direct")})

	hello := upload.UploadKey("public", "12-hello.txt", 12, 1048576, 1)
	two := upload.UploadKey("public", "20-two.bin", 20, 10, 2)
	direct := upload.Info{Key: upload.UploadKey("public", "12-hello-direct.txt", 12, 1048576, 1), Namespace: "public",
		Identifier: "12-hello-direct.txt", FileName: "hello-direct.txt", RelativePath: "hello-direct.txt",
		TotalSize: 12, ChunkSize: 1048576, TotalChunks: 1}

	// The upload samples, in the order a client sends them: each answer is
	// a REST API proxy response with CORS headers.
	uploadAnswer := func(status int, body string) func(t *testing.T, out []byte, err error) {
		return func(t *testing.T, out []byte, err error) {
			var resp events.APIGatewayProxyResponse
			if err == nil {
				err = json.Unmarshal(out, &resp)
			}
			if err != nil {
				t.Fatalf("%v\n%s", err, uploadFn.Logs())
			}
			if resp.StatusCode != status || !strings.Contains(resp.Body, body) {
				t.Errorf("answer %d %q, want %d with %q", resp.StatusCode, resp.Body, status, body)
			}
			if resp.Headers["Access-Control-Allow-Origin"] == "" && resp.MultiValueHeaders["Access-Control-Allow-Origin"] == nil {
				t.Errorf("no CORS header in %v %v", resp.Headers, resp.MultiValueHeaders)
			}
		}
	}
	cases := []struct {
		file  string
		fn    *Instance
		check func(t *testing.T, out []byte, err error)
	}{
		{"upload-1-options-preflight.json", uploadFn, uploadAnswer(204, "")},
		{"upload-2-test-get.json", uploadFn, uploadAnswer(204, "")},
		{"upload-3-multipart-post.json", uploadFn, uploadAnswer(200, `"ready":true`)},
		{"upload-4-octet-post.json", uploadFn, uploadAnswer(200, `"ready":false`)},
		{"upload-5-test-get-after.json", uploadFn, uploadAnswer(200, `"present":true`)},

		// The batch: hello.txt became ready, the same record again, and the
		// TTL removal of two.bin's record (deleted below, before the batch,
		// as TTL would: dynalite has none). No record fails.
		{"assemble-stream-batch.json", assembleFn, func(t *testing.T, out []byte, err error) {
			var resp events.DynamoDBEventResponse
			if err == nil {
				err = json.Unmarshal(out, &resp)
			}
			if err != nil || len(resp.BatchItemFailures) != 0 {
				t.Fatalf("batch: %s %v\n%s", out, err, assembleFn.Logs())
			}
		}},

		// A valid token: an Allow policy for the stage, its subject the
		// principal.
		{"authorizer-token.json", authorizerFn, func(t *testing.T, out []byte, err error) {
			var resp events.APIGatewayCustomAuthorizerResponse
			if err == nil {
				err = json.Unmarshal(out, &resp)
			}
			if err != nil || resp.PrincipalID != "local-user-1" || len(resp.PolicyDocument.Statement) != 1 ||
				resp.PolicyDocument.Statement[0].Effect != "Allow" {
				t.Fatalf("authorizer: %s %v\n%s", out, err, authorizerFn.Logs())
			}
		}},

		// DataPath direct: S3 reports the chunk a browser stored (the
		// record begun and the chunk stored below, before the event): it
		// is counted, which makes the one-chunk upload ready.
		{"count-s3-object-created.json", countFn, func(t *testing.T, out []byte, err error) {
			var rep struct{ Counted int }
			if err == nil {
				err = json.Unmarshal(out, &rep)
			}
			if err != nil || rep.Counted != 1 {
				t.Fatalf("count: %s %v\n%s", out, err, countFn.Logs())
			}
			rec, err := (&dynamoledger.Ledger{Client: db, Table: table}).Get(ctx, direct.Key)
			if err != nil || rec.State != upload.StateReady {
				t.Fatalf("the counted upload: %+v %v", rec, err)
			}
		}},

		// The completion event: logged; aws-lambda-go answers null for a
		// handler that returns only an error.
		{"consumer-upload-completed.json", consumerFn, func(t *testing.T, out []byte, err error) {
			if err != nil || string(out) != "null" {
				t.Fatalf("consumer: %s %v\n%s", out, err, consumerFn.Logs())
			}
		}},
	}

	files, _ := filepath.Glob("../../../events/*.json")
	var names, known []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	for _, c := range cases {
		known = append(known, c.file)
	}
	slices.Sort(names)
	slices.Sort(known)
	if !slices.Equal(names, known) {
		t.Fatalf("events/ holds %v; this test sends %v: give every sample a case", names, known)
	}

	for _, c := range cases {
		payload := readEvent(t, c.file)
		if c.file == "assemble-stream-batch.json" {
			// TTL removes two.bin's record (dynalite has no TTL); the REMOVE
			// record names the generation it really had (they are random).
			rec, err := (&dynamoledger.Ledger{Client: db, Table: table}).Get(ctx, two)
			if err != nil {
				t.Fatal(err)
			}
			_, err = db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(table), Key: map[string]types.AttributeValue{
				"pk": &types.AttributeValueMemberS{Value: "U#" + two}, "sk": &types.AttributeValueMemberS{Value: "META"},
			}})
			if err != nil {
				t.Fatal(err)
			}
			var ev events.DynamoDBEvent
			if err := json.Unmarshal(payload, &ev); err != nil {
				t.Fatal(err)
			}
			for _, r := range ev.Records {
				if r.EventName == "REMOVE" {
					r.Change.OldImage["gen"] = events.NewStringAttribute(rec.Generation)
				}
			}
			if payload, err = json.Marshal(ev); err != nil {
				t.Fatal(err)
			}
		}
		if c.file == "count-s3-object-created.json" {
			// The upload the sample names: its record begun (its URLs
			// asked for), its chunk stored by a browser with its checksum.
			b, err := (&dynamoledger.Ledger{Client: db, Table: table}).Begin(ctx, direct, []int{1}, time.Now().Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			store := &s3store.Store{Client: s3c, Bucket: bucket}
			if err := store.PutChunk(ctx, direct, b.Generation, 1, strings.NewReader("hello direct")); err != nil {
				t.Fatal(err)
			}
			var ev events.S3Event
			if err := json.Unmarshal(payload, &ev); err != nil {
				t.Fatal(err)
			}
			ev.Records[0].S3.Bucket.Name = bucket
			ev.Records[0].S3.Object.Key = store.ChunkKey(direct.Key, b.Generation, 1)
			if payload, err = json.Marshal(ev); err != nil {
				t.Fatal(err)
			}
		}
		t.Run(c.file, func(t *testing.T) {
			out, err := c.fn.Invoke(ctx, payload)
			c.check(t, out, err)
		})
	}

	// What the functions did, seen from outside: hello.txt assembled from
	// the chunk the upload function stored, two.bin's chunk discarded, the
	// completion logged by the assembler (no event bus configured) and the
	// consumer, and the upload function's CloudWatch metric lines, which it
	// writes only when it finds itself in Lambda.
	out, err := s3c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String("files/" + hello + "-")})
	if err != nil || len(out.Contents) != 1 {
		t.Fatalf("finished objects of hello.txt: %v %v", out, err)
	}
	obj, err := s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: out.Contents[0].Key})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(obj.Body)
	obj.Body.Close()
	if string(got) != "hello, world" {
		t.Errorf("hello.txt assembled as %q", got)
	}
	// (The direct upload is ready, its assembly left to the stream.)
	if keys := slices.DeleteFunc(awstest.Keys(t, s3c, bucket, "staging/"), func(k string) bool {
		return strings.HasPrefix(k, "staging/"+direct.Key+"/")
	}); len(keys) != 0 {
		t.Errorf("staged chunks left: %v", keys)
	}
	if logs := assembleFn.Logs(); strings.Count(logs, `"msg":"upload completed"`) != 1 || !strings.Contains(logs, hello) {
		t.Errorf("the assembler did not log hello.txt's completion once:\n%s", logs)
	}
	if !strings.Contains(consumerFn.Logs(), `"msg":"upload completed"`) {
		t.Errorf("the consumer logged no completion:\n%s", consumerFn.Logs())
	}
	if logs := uploadFn.Logs(); !strings.Contains(logs, `"ChunksReceived"`) {
		t.Errorf("the upload function wrote no embedded-metric lines:\n%s", logs)
	}
}

// A token signed with another secret is refused the way API Gateway expects
// of a TOKEN authorizer (which it then answers with 401): the function's
// error "Unauthorized", as RIE reports it.
func TestAuthorizerRefusesThroughRIE(t *testing.T) {
	fn := start(t, Options{Function: "authorizer", Env: []string{"FLOWGATE_JWT_SECRET=" + strings.Repeat("s", 40)}})
	_, err := fn.Invoke(context.Background(), readEvent(t, "authorizer-token.json"))
	var fe *FunctionError
	if !errors.As(err, &fe) || fe.Message != "Unauthorized" {
		t.Fatalf("token signed with another secret: %v", err)
	}
}

// RIE passes a function at most 6 MiB + 100 bytes of event and cuts a longer
// one short without a word (Lambda itself refuses it with 413 before the
// function runs). An event of exactly that size reaches the upload function
// whole, and it answers; one byte more and the function sees a truncated
// document it cannot parse. This is why make dev's API Gateway emulation
// (internal/devstack/apigw) refuses an oversize event before invoking.
func TestRIEPayloadLimit(t *testing.T) {
	env, _, _, _, _ := awsEnv(t)
	fn := start(t, Options{Function: "upload", Env: env})
	const limit = 6*1024*1024 + 100
	ctx := context.Background()

	for _, size := range []int{limit, limit + 1} {
		ev := octetEvent(t, size)
		if len(ev) != size {
			t.Fatalf("made an event of %d bytes, want %d", len(ev), size)
		}
		out, err := fn.Invoke(ctx, ev)
		if size == limit {
			var resp events.APIGatewayProxyResponse
			if err == nil {
				err = json.Unmarshal(out, &resp)
			}
			if err != nil || resp.StatusCode < 400 || resp.StatusCode >= 500 {
				t.Errorf("event of %d bytes: %s %v, want the function's 4xx", size, out, err)
			}
			continue
		}
		var fe *FunctionError
		if !errors.As(err, &fe) || fe.Message != "unexpected EOF" {
			t.Errorf("event of %d bytes: %s %v, want the function failing on a cut-short event", size, out, err)
		}
	}
}

// octetEvent is a REST API proxy event of exactly size bytes: an octet POST
// whose base64 body fills it (its flow fields are missing: the function
// answers 400 when it gets the event whole).
func octetEvent(t *testing.T, size int) []byte {
	t.Helper()
	ev := events.APIGatewayProxyRequest{
		Resource: "/upload", Path: "/upload", HTTPMethod: "POST",
		Headers:         map[string]string{"Content-Type": "application/octet-stream", "Origin": "https://example.com"},
		IsBase64Encoded: true,
		RequestContext:  events.APIGatewayProxyRequestContext{Stage: "v1", HTTPMethod: "POST", ResourcePath: "/upload", Path: "/v1/upload"},
	}
	// The body is base64, in groups of four characters; the remainder
	// goes into a header.
	ev.Headers["X-Pad"] = ""
	empty, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	n := size - len(empty)
	ev.Body = strings.Repeat("AAAA", n/4)
	ev.Headers["X-Pad"] = strings.Repeat("p", n%4)
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// make dev's API Gateway emulation in front of the upload function's real
// bootstrap: a binary chunk is stored byte for byte; a chunk over the
// function's limit whose event still fits Lambda's gets the function's 413,
// with CORS; a chunk whose event does not fit gets API Gateway's 413, which
// carries no CORS headers (REQUEST_TOO_LARGE cannot be customized), and the
// function never sees it.
func TestGatewayInFrontOfRIE(t *testing.T) {
	env, s3c, _, bucket, _ := awsEnv(t)
	fn := start(t, Options{Function: "upload", Env: env})
	srv := httptest.NewServer(&apigw.Gateway{Invoke: fn.Invoke, CORSOrigin: "*"})
	defer srv.Close()

	send := func(id string, data []byte) (*http.Response, string) {
		t.Helper()
		n := strconv.Itoa(len(data))
		q := url.Values{"flowChunkNumber": {"1"}, "flowChunkSize": {n}, "flowCurrentChunkSize": {n}, "flowTotalSize": {n},
			"flowIdentifier": {id}, "flowFilename": {id + ".bin"}, "flowRelativePath": {id + ".bin"}, "flowTotalChunks": {"1"}}
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/upload?"+q.Encode(), bytes.NewReader(data))
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set("Origin", "https://site.example")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(body)
	}

	data := make([]byte, 300_000)
	for i := range data {
		data[i] = byte(i * 7 % 256) // every byte value, most of it not UTF-8
	}
	resp, body := send("binary", data)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != "https://site.example" {
		t.Fatalf("binary chunk: %d %s %v\n%s", resp.StatusCode, body, resp.Header, fn.Logs())
	}
	staged := awstest.Keys(t, s3c, bucket, "staging/"+upload.UploadKey("public", "binary", int64(len(data)), int64(len(data)), 1)+"/")
	if len(staged) != 1 || !strings.HasSuffix(staged[0], "/00000001") {
		t.Fatalf("staged chunks of the binary upload: %v (all: %v)", staged, awstest.Keys(t, s3c, bucket, "staging/"))
	}
	key := staged[0]
	obj, err := s3c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("staged chunk %s: %v", key, err)
	}
	stored, _ := io.ReadAll(obj.Body)
	obj.Body.Close()
	if !bytes.Equal(stored, data) {
		t.Errorf("the stored chunk differs from the one sent (%d bytes stored)", len(stored))
	}

	// Over FLOWGATE_MAX_CHUNK_SIZE (4,500,000 by default), inside Lambda's
	// 6 MB once base64-encoded: the function refuses it.
	resp, body = send("over-chunk-limit", make([]byte, 4_600_000))
	if resp.StatusCode != http.StatusRequestEntityTooLarge || resp.Header.Get("Access-Control-Allow-Origin") != "https://site.example" ||
		!strings.Contains(body, `"error"`) {
		t.Errorf("chunk over the function's limit: %d %s %v", resp.StatusCode, body, resp.Header)
	}

	// Its event over Lambda's 6 MB: API Gateway refuses it.
	before := strings.Count(fn.Logs(), "START RequestId:")
	resp, body = send("over-lambda-limit", make([]byte, 4_800_000))
	if resp.StatusCode != http.StatusRequestEntityTooLarge || body != `{"message": "Request Too Long"}` ||
		resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("chunk over Lambda's limit: %d %s %v", resp.StatusCode, body, resp.Header)
	}
	if after := strings.Count(fn.Logs(), "START RequestId:"); after != before {
		t.Errorf("the function was invoked for an event over the limit")
	}
}
