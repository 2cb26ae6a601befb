package s3notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/testkit/jsonshape"

	"github.com/aws/aws-lambda-go/events"
)

// minioPost is what the pinned MinIO posts for an object created (recorded
// from it; see /work/notes/direct-s3.md), a 0-byte one without "size".
const minioPost = `{"EventName":"s3:ObjectCreated:Put","Key":"flowgate-dev/staging/0123456789abcdef0123456789abcdef/fedcba9876543210/00000002",
"Records":[{"eventVersion":"2.0","eventSource":"minio:s3","awsRegion":"us-east-1","eventTime":"2026-12-05T00:01:59.792Z",
"eventName":"s3:ObjectCreated:Put","userIdentity":{"principalId":"minioadmin"},
"requestParameters":{"principalId":"minioadmin","region":"us-east-1","sourceIPAddress":"127.0.0.1"},
"responseElements":{"x-amz-id-2":"dd9025bab4ad464b049177c95eb6ebf374d3b3fd1af9251148b658df7ac2e3e8","x-amz-request-id":"18EE3295AC5890AD"},
"s3":{"s3SchemaVersion":"1.0","configurationId":"Config","bucket":{"name":"flowgate-dev","ownerIdentity":{"principalId":"minioadmin"},"arn":"arn:aws:s3:::flowgate-dev"},
"object":{"key":"staging%2F0123456789abcdef0123456789abcdef%2Ffedcba9876543210%2F00000002","size":8388608,"eTag":"5d41402abc4b2a76b9719d911017c592",
"contentType":"application/octet-stream","userMetadata":{"content-type":"application/octet-stream"},"sequencer":"18EE3295AC5D5190"}},
"source":{"host":"127.0.0.1","port":"","userAgent":"Go-http-client/1.1"}}]}`

// MinIO's record becomes the event the template's rule gives the counting
// function: the same fields as events/count-s3-object-created.json, the
// values S3 would write (no "s3:" in the event's name, S3's source and
// version, the key encoded form-style), readable by aws-lambda-go.
func TestConvert(t *testing.T) {
	evs, keys, err := Convert([]byte(minioPost), "us-east-1")
	if err != nil || len(evs) != 1 {
		t.Fatalf("Convert: %v, %d events", err, len(evs))
	}
	if keys[0] != "staging/0123456789abcdef0123456789abcdef/fedcba9876543210/00000002" {
		t.Errorf("key %q", keys[0])
	}
	var ev events.S3Event
	if err := json.Unmarshal(evs[0], &ev); err != nil {
		t.Fatal(err)
	}
	r := ev.Records[0]
	if r.EventName != "ObjectCreated:Put" || r.EventSource != "aws:s3" || r.EventVersion != "2.1" || r.AWSRegion != "us-east-1" ||
		r.S3.Bucket.Name != "flowgate-dev" || r.S3.Object.URLDecodedKey != keys[0] || r.S3.Object.Size != 8388608 || r.EventTime.IsZero() {
		t.Errorf("converted: %+v", r)
	}
	sample, err := os.ReadFile("../../../events/count-s3-object-created.json")
	if err != nil {
		t.Fatal(err)
	}
	if a, b := paths(t, evs[0]), paths(t, sample); !slices.Equal(a, b) {
		t.Errorf("converted event has fields %v, the sample %v", a, b)
	}

	// A 0-byte object: MinIO leaves its size out; the event says 0.
	zero := strings.Replace(minioPost, `"size":8388608,`, "", 1)
	evs, _, err = Convert([]byte(zero), "us-east-1")
	if err != nil || !bytes.Contains(evs[0], []byte(`"size":0`)) {
		t.Errorf("a 0-byte object: %s, %v", evs, err)
	}
	for _, bad := range []string{"", "{}", `{"Records":[]}`, `{"Records":[{"s3":{"object":{"key":"%zz"}}}]}`} {
		if _, _, err := Convert([]byte(bad), "us-east-1"); err == nil {
			t.Errorf("Convert(%q) took it", bad)
		}
	}
}

// paths lists a JSON document's leaf paths.
func paths(t *testing.T, b []byte) []string {
	t.Helper()
	out, err := jsonshape.Paths(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Delivery as Lambda's asynchronous invocation: MinIO is answered at once,
// a failing event is tried twice more and then handed to the failure
// destination as Lambda's record of it, with the event inside; a post
// without MinIO's token is refused; a dropped event is never delivered.
func TestDelivery(t *testing.T) {
	r, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	invoked := map[string]int{}
	var failed [][]byte
	done := make(chan struct{}, 10)
	r.Start(Options{
		Invoke: func(ctx context.Context, ev []byte) ([]byte, error) {
			mu.Lock()
			defer mu.Unlock()
			var e events.S3Event
			json.Unmarshal(ev, &e)
			k := e.Records[0].S3.Object.URLDecodedKey
			invoked[k]++
			if strings.HasSuffix(k, "/00000002") {
				return nil, errors.New("failing")
			}
			done <- struct{}{}
			return []byte("null"), nil
		},
		Failed: func(ctx context.Context, rec []byte) error {
			mu.Lock()
			failed = append(failed, rec)
			mu.Unlock()
			done <- struct{}{}
			return nil
		},
		RetryDelays: []time.Duration{time.Millisecond, time.Millisecond},
		Drop:        func(key string) bool { return strings.HasSuffix(key, "/00000003") },
	})
	defer r.Stop()

	post := func(body, token string) int {
		req, _ := http.NewRequest("POST", r.Endpoint(), strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if post(minioPost, "wrong") != http.StatusUnauthorized {
		t.Error("a post without MinIO's token was taken")
	}
	for _, n := range []string{"00000001", "00000002", "00000003"} {
		if s := post(strings.ReplaceAll(minioPost, "00000002", n), r.token); s != http.StatusOK {
			t.Fatalf("post: %d", s)
		}
	}
	if s := post("not json", r.token); s != http.StatusOK {
		t.Errorf("an unusable post: %d; MinIO must be answered 2xx, or it posts it forever", s)
	}
	for range 2 {
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Fatal("no delivery")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	base := "staging/0123456789abcdef0123456789abcdef/fedcba9876543210/"
	if invoked[base+"00000001"] != 1 || invoked[base+"00000002"] != 3 || invoked[base+"00000003"] != 0 {
		t.Errorf("invocations: %v", invoked)
	}
	if len(failed) != 1 {
		t.Fatalf("failure records: %d", len(failed))
	}
	var rec struct {
		RequestContext struct{ Condition string } `json:"requestContext"`
		RequestPayload events.S3Event             `json:"requestPayload"`
	}
	if err := json.Unmarshal(failed[0], &rec); err != nil || rec.RequestContext.Condition != "RetriesExhausted" ||
		rec.RequestPayload.Records[0].S3.Object.URLDecodedKey != base+"00000002" {
		t.Errorf("failure record: %s (%v)", failed[0], err)
	}
	st := r.Stats()
	if st.Received != 3 || st.Dropped != 1 || st.Retried != 2 || st.Failed != 1 || st.Succeeded != 1 || st.Unusable != 1 {
		t.Errorf("stats: %+v", st)
	}
}
