package deploy

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	awsmw "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"github.com/flowgate/flowgate/internal/testkit/awstest"
	"github.com/flowgate/flowgate/shared/awsdeploy"
	"github.com/flowgate/flowgate/shared/upload"
)

// opRecorder notes every operation the SDK sends.
type opRecorder struct {
	mu  sync.Mutex
	ops map[string]bool
}

func (r *opRecorder) middleware(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("recordOperation",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			r.mu.Lock()
			r.ops[strings.ToLower(awsmw.GetServiceID(ctx))+":"+awsmw.GetOperationName(ctx)] = true
			r.mu.Unlock()
			return next.HandleInitialize(ctx, in)
		}), middleware.After)
}

// The analysis of the code (calls_test.go) misses nothing the functions
// really do: the upload function's handler replays the sample API events
// (and a refused first chunk, whose bytes it cleans up), the assembler's
// handler the sample stream batch, against MinIO and dynalite, and every
// operation the SDK sent is one the analysis found.
func TestAnalysisCoversWhatRuns(t *testing.T) {
	ctx := context.Background()
	s3c, db := awstest.S3(t), awstest.DynamoDB(t)
	bucket, table := awstest.Bucket(t, s3c), awstest.Table(t, db)
	bus := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		io.WriteString(w, `{"FailedEntryCount":0,"Entries":[{"EventId":"1"}]}`)
	}))
	defer bus.Close()
	t.Setenv("AWS_ENDPOINT_URL_EVENTBRIDGE", bus.URL)

	deployment := func(rec *opRecorder) *awsdeploy.Deployment {
		cfg, err := awsdeploy.Load(getenvOf(map[string]string{"FLOWGATE_BUCKET": bucket, "FLOWGATE_TABLE": table, "FLOWGATE_EVENT_BUS": "uploads"}))
		if err != nil {
			t.Fatal(err)
		}
		awsCfg := awstest.Config(t)
		awsCfg.APIOptions = append(awsCfg.APIOptions, rec.middleware)
		return awsdeploy.NewWithAWS(cfg, awsCfg, slog.New(slog.DiscardHandler))
	}

	up := &opRecorder{ops: map[string]bool{}}
	api := httpadapter.New(deployment(up).Handler())
	files, _ := filepath.Glob("../events/upload-*.json")
	var reqs []events.APIGatewayProxyRequest
	for _, f := range files {
		var req events.APIGatewayProxyRequest
		b, err := os.ReadFile(f)
		if err == nil {
			err = json.Unmarshal(b, &req)
		}
		if err != nil {
			t.Fatal(err)
		}
		reqs = append(reqs, req)
	}
	// A first chunk whose file part is shorter than it says: refused, and
	// what it staged is discarded.
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, v := range map[string]string{"flowChunkNumber": "1", "flowChunkSize": "10", "flowCurrentChunkSize": "10",
		"flowTotalSize": "10", "flowIdentifier": "short", "flowFilename": "short.bin", "flowRelativePath": "short.bin", "flowTotalChunks": "1"} {
		mw.WriteField(k, v)
	}
	fw, _ := mw.CreateFormFile("file", "blob")
	io.WriteString(fw, "short")
	mw.Close()
	short := events.APIGatewayProxyRequest{HTTPMethod: "POST", Path: "/upload", Resource: "/upload",
		Headers: map[string]string{"Content-Type": mw.FormDataContentType()},
		Body:    base64.StdEncoding.EncodeToString(body.Bytes()), IsBase64Encoded: true}
	reqs = append(reqs, short)
	for _, req := range reqs {
		if _, err := api.ProxyWithContext(ctx, req); err != nil {
			t.Fatal(err)
		}
	}

	// TTL removes two.bin's record (dynalite has no TTL): the batch's
	// REMOVE then discards its chunks.
	two := upload.UploadKey("public", "20-two.bin", 20, 10, 2)
	if _, err := db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: &table, Key: map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: "U#" + two}, "sk": &types.AttributeValueMemberS{Value: "META"}}}); err != nil {
		t.Fatal(err)
	}
	as := &opRecorder{ops: map[string]bool{}}
	d := deployment(as)
	h := d.StreamHandler()
	var batch events.DynamoDBEvent
	b, err := os.ReadFile("../events/assemble-stream-batch.json")
	if err == nil {
		err = json.Unmarshal(b, &batch)
	}
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := h.Handle(ctx, batch); err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("assemble: %+v %v", resp, err)
	}

	for dir, rec := range map[string]*opRecorder{"upload": up, "assemble": as} {
		facts := functionFacts(t, dir)
		if len(rec.ops) < 3 {
			t.Errorf("%s: only %v ran; the replay did not exercise the function", dir, sortedKeys(rec.ops))
		}
		for op := range rec.ops {
			if !facts.Ops[op] {
				t.Errorf("%s sent %s, which the analysis of its code did not find", dir, op)
			}
		}
		t.Logf("%s ran %v; analysis found %v", dir, sortedKeys(rec.ops), sortedKeys(facts.Ops))
	}
	if !up.ops["s3:ListObjectsV2"] { // Discard lists what the chunk staged
		t.Error("the refused first chunk was not cleaned up (the replay no longer covers Discard)")
	}
}
