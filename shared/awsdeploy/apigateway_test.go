package awsdeploy

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
)

// The emulated API Gateway hands binary bodies over in base64 and text ones
// as they are, keeps repeated query parameters and headers, and refuses a
// body over the Lambda payload limit before the function sees it.
func TestAPIGatewayEvents(t *testing.T) {
	var got events.APIGatewayProxyRequest
	srv := httptest.NewServer(APIGateway(func(_ context.Context, r events.APIGatewayProxyRequest) (events.APIGatewayProxyResponse, error) {
		got = r
		return events.APIGatewayProxyResponse{StatusCode: 201, Body: base64.StdEncoding.EncodeToString([]byte{0, 1, 2}),
			IsBase64Encoded: true, Headers: map[string]string{"X-Test": "yes"}}, nil
	}))
	defer srv.Close()

	body := "\x00\xffbinary"
	resp, err := http.Post(srv.URL+"/upload?a=1&a=2", "multipart/form-data; boundary=xyz", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 || string(out) != "\x00\x01\x02" || resp.Header.Get("X-Test") != "yes" {
		t.Fatalf("response %d %q %v", resp.StatusCode, out, resp.Header)
	}
	dec, _ := base64.StdEncoding.DecodeString(got.Body)
	if !got.IsBase64Encoded || string(dec) != body || got.HTTPMethod != "POST" || got.Path != "/upload" ||
		strings.Join(got.MultiValueQueryStringParameters["a"], ",") != "1,2" ||
		got.Headers["Content-Type"] != "multipart/form-data; boundary=xyz" {
		t.Fatalf("event = %+v", got)
	}

	// flow.js's octet method sends the file's own type: binary too ("*/*").
	resp, err = http.Post(srv.URL+"/upload", "text/plain", strings.NewReader("plain\xff"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if dec, _ := base64.StdEncoding.DecodeString(got.Body); !got.IsBase64Encoded || string(dec) != "plain\xff" {
		t.Fatalf("text body: %+v", got)
	}

	got = events.APIGatewayProxyRequest{}
	big := strings.Repeat("x", 4_800_000) // 6.4 MB once base64-encoded
	resp, err = http.Post(srv.URL+"/upload", "application/octet-stream", strings.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || got.HTTPMethod != "" {
		t.Fatalf("oversize body: %d, function called: %v", resp.StatusCode, got.HTTPMethod != "")
	}
}

func TestLoad(t *testing.T) {
	env := map[string]string{"FLOWGATE_BUCKET": "b", "FLOWGATE_TABLE": "t"}
	c, err := Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.Limits.MaxChunkSize != LambdaMaxChunk || c.StagingPrefix != "staging/" || c.FinishedPrefix != "files/" || c.EventBus != "" {
		t.Fatalf("defaults = %+v", c)
	}
	env = map[string]string{"FLOWGATE_STAGING_PREFIX": "files/x/", "FLOWGATE_ASSEMBLY_CONCURRENCY": "0"}
	_, err = Load(func(k string) string { return env[k] })
	for _, want := range []string{"FLOWGATE_BUCKET", "FLOWGATE_TABLE", "overlap", "FLOWGATE_ASSEMBLY_CONCURRENCY"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %s", err, want)
		}
	}
}

func TestIsBinary(t *testing.T) {
	explicit := []string{"multipart/form-data", "application/octet-stream", "image/*"}
	for _, tt := range []struct {
		types       []string
		contentType string
		want        bool
	}{
		{explicit, "multipart/form-data; boundary=xyz", true},
		{explicit, "application/octet-stream", true},
		{explicit, "image/png", true},
		{explicit, "video/mp4", false},
		{explicit, "text/plain; charset=utf-8", false},
		{explicit, "", false},
		{explicit, "not a type", false},
		{[]string{"*/*"}, "video/mp4", true},
		{[]string{"*/*"}, "", true},
		{[]string{"application/json"}, "", true},
		{BinaryMediaTypes, "video/mp4", true},
		{BinaryMediaTypes, "", true},
	} {
		if got := IsBinary(tt.types, tt.contentType); got != tt.want {
			t.Errorf("IsBinary(%v, %q) = %v, want %v", tt.types, tt.contentType, got, tt.want)
		}
	}
}
