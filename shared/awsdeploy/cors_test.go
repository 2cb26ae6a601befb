package awsdeploy

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"github.com/flowgate/flowgate/shared/upload"
)

// brokenLedger panics on any call, as a bug in a ledger would.
type brokenLedger struct{ upload.Ledger }

// Every answer the upload function gives carries the CORS header a page on
// another origin needs to read it: its errors, a path that is not the API's
// (the adapter passes on whatever path API Gateway sends), a method the API
// does not serve, and a panic while serving, which becomes a JSON 500 (the
// function keeps running) rather than a failed invocation.
func TestEveryAnswerCarriesCORS(t *testing.T) {
	cfg, err := Load(envMap{"FLOWGATE_BUCKET": "b", "FLOWGATE_TABLE": "t", "FLOWGATE_ALLOWED_ORIGINS": "https://site.example"}.get)
	if err != nil {
		t.Fatal(err)
	}
	d := NewWithAWS(cfg, aws.Config{Region: "us-east-1"}, slog.New(slog.DiscardHandler))
	d.Service = &upload.Service{Store: d.Store, Ledger: brokenLedger{}}
	fn := httpadapter.New(d.Handler()).ProxyWithContext
	testGet := map[string]string{"flowChunkNumber": "1", "flowChunkSize": "10", "flowCurrentChunkSize": "10",
		"flowTotalSize": "10", "flowIdentifier": "id", "flowFilename": "a.txt", "flowRelativePath": "a.txt", "flowTotalChunks": "1"}

	for _, tt := range []struct {
		name, method, path string
		query              map[string]string
		status             int
	}{
		{"bad request", "GET", "/upload", nil, http.StatusBadRequest},
		{"unknown path", "GET", "/v1/upload", nil, http.StatusNotFound},
		{"preflight of an unknown path", "OPTIONS", "/elsewhere", nil, http.StatusNotFound},
		{"unknown method", "DELETE", "/upload", nil, http.StatusMethodNotAllowed},
		{"panic", "GET", "/upload", testGet, http.StatusInternalServerError},
	} {
		resp, err := fn(context.Background(), events.APIGatewayProxyRequest{
			HTTPMethod: tt.method, Path: tt.path, Resource: tt.path, QueryStringParameters: tt.query,
			Headers: map[string]string{"Origin": "https://site.example"},
		})
		if err != nil {
			t.Fatalf("%s: the invocation failed: %v", tt.name, err)
		}
		var body struct{ Error string }
		if resp.StatusCode != tt.status || json.Unmarshal([]byte(resp.Body), &body) != nil || body.Error == "" {
			t.Errorf("%s: %d %q, want %d with a JSON error", tt.name, resp.StatusCode, resp.Body, tt.status)
		}
		origin := resp.Headers["Access-Control-Allow-Origin"]
		if vs := resp.MultiValueHeaders["Access-Control-Allow-Origin"]; origin == "" && len(vs) > 0 {
			origin = vs[0]
		}
		if origin != "https://site.example" {
			t.Errorf("%s: Access-Control-Allow-Origin %q (headers %v %v)", tt.name, origin, resp.Headers, resp.MultiValueHeaders)
		}
	}
}
