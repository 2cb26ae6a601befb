package publish

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"

	"github.com/flowgate/flowgate/shared/upload"
)

// There is no local EventBridge server, so this test stands one up that
// speaks the wire protocol (JSON 1.1, target AWSEvents.PutEvents) and drives
// it with the real SDK client: what is checked is the request AWS would get.
func TestEventBridgePublish(t *testing.T) {
	var mu sync.Mutex
	var got []map[string]any
	reply := `{"FailedEntryCount":0,"Entries":[{"EventId":"e-1"}]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Amz-Target") != "AWSEvents.PutEvents" {
			http.Error(w, "unexpected target "+r.Header.Get("X-Amz-Target"), http.StatusBadRequest)
			return
		}
		if !strings.Contains(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256") {
			http.Error(w, "unsigned", http.StatusForbidden)
			return
		}
		b, _ := io.ReadAll(r.Body)
		var body struct{ Entries []map[string]any }
		if err := json.Unmarshal(b, &body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, body.Entries...)
		out := reply
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		io.WriteString(w, out)
	}))
	defer srv.Close()

	client := eventbridge.New(eventbridge.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(srv.URL),
		Credentials:      credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
		RetryMaxAttempts: 1,
	})
	pub := EventBridge{Client: client, Bus: "uploads"}
	ev := upload.Event{
		UploadKey: "0123456789abcdef0123456789abcdef", Namespace: "public", Identifier: "42-a.bin",
		FileName: "a.bin", RelativePath: "dir/a.bin", Location: "s3://b/files/k-g/a.bin",
		Bucket: "b", Object: "files/k-g/a.bin", Size: 42, Chunks: 1, ETag: "abc",
		StartedAt: time.Unix(1700000000, 0).UTC(), CompletedAt: time.Unix(1700000060, 0).UTC(),
	}
	if err := pub.Publish(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("%d entries sent, want 1", len(got))
	}
	e := got[0]
	if e["Source"] != "flowgate" || e["DetailType"] != "Upload Completed" || e["EventBusName"] != "uploads" {
		t.Fatalf("entry = %v", e)
	}
	var detail upload.Event
	if err := json.Unmarshal([]byte(e["Detail"].(string)), &detail); err != nil {
		t.Fatalf("detail is not JSON: %v", err)
	}
	if detail != ev {
		t.Fatalf("detail = %+v, want %+v", detail, ev)
	}
	// The documented field names consumers match on.
	for _, field := range []string{`"uploadKey"`, `"bucket"`, `"key"`, `"size"`, `"chunks"`, `"etag"`, `"completedAt"`} {
		if !strings.Contains(e["Detail"].(string), field) {
			t.Errorf("detail lacks %s: %s", field, e["Detail"])
		}
	}

	// An entry EventBridge refuses is an error, so the pipeline retries.
	mu.Lock()
	reply = `{"FailedEntryCount":1,"Entries":[{"ErrorCode":"InternalFailure","ErrorMessage":"try again"}]}`
	mu.Unlock()
	if err := pub.Publish(context.Background(), ev); err == nil || !strings.Contains(err.Error(), "InternalFailure") {
		t.Fatalf("refused entry: err = %v", err)
	}
}
