package apigw

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
)

// The emulated API Gateway hands binary bodies over in base64 and text ones
// as they are, keeps repeated query parameters and headers, and decodes the
// function's answer.
func TestEvents(t *testing.T) {
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
}

// counting is a function that answers 200 and counts its invocations.
type counting struct{ calls int }

func (c *counting) invoke(_ context.Context, event []byte) ([]byte, error) {
	c.calls++
	return []byte(`{"statusCode": 200, "headers": {"Access-Control-Allow-Origin": "https://site.example"}, "body": "ok"}`), nil
}

func post(t *testing.T, h http.Handler, body io.Reader, header map[string]string) (*http.Response, string) {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/upload", body)
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Origin", "https://site.example")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(out)
}

// An event over Lambda's 6 MB is refused as API Gateway refuses it: 413
// {"message": "Request Too Long"}, without CORS headers (REQUEST_TOO_LARGE
// cannot be customized) and without invoking the function. What counts is
// the whole event, headers included, not the body alone: here the base64
// body fits and the headers tip the event over.
func TestEventOverLambdaLimit(t *testing.T) {
	fn := &counting{}
	g := &Gateway{Invoke: fn.invoke, CORSOrigin: "https://site.example"}
	n := (MaxEvent - 64) / 4 * 3 // its base64 is 64 bytes short of the limit
	if base64.StdEncoding.EncodedLen(n) > MaxEvent {
		t.Fatal("the body alone is over the limit")
	}
	resp, out := post(t, g, strings.NewReader(strings.Repeat("x", n)), map[string]string{"X-Big": strings.Repeat("h", 200)})
	if resp.StatusCode != http.StatusRequestEntityTooLarge || out != `{"message": "Request Too Long"}` ||
		resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("oversize event: %d %q %v", resp.StatusCode, out, resp.Header)
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("REQUEST_TOO_LARGE carries CORS: %v", resp.Header)
	}
	if fn.calls != 0 {
		t.Errorf("the function was invoked %d times", fn.calls)
	}

	// Without the big header the event fits, and the function answers.
	resp, out = post(t, g, strings.NewReader(strings.Repeat("x", n-1000)), nil)
	if resp.StatusCode != http.StatusOK || out != "ok" || fn.calls != 1 {
		t.Errorf("event under the limit: %d %q, %d calls", resp.StatusCode, out, fn.calls)
	}
}

// A body over the REST API's 10 MB is refused with 413 and a plain-text
// message, also without CORS headers, whether or not its length is
// declared.
func TestBodyOverAPIGatewayLimit(t *testing.T) {
	fn := &counting{}
	g := &Gateway{Invoke: fn.invoke, CORSOrigin: "*"}
	big := strings.Repeat("x", MaxRequestBody+1)
	for _, declared := range []bool{true, false} {
		var body io.Reader = strings.NewReader(big)
		if !declared {
			body = io.MultiReader(body) // no length known: sent chunked
		}
		resp, out := post(t, g, body, nil)
		if resp.StatusCode != http.StatusRequestEntityTooLarge || out != "HTTP content length exceeded 10485760 bytes." ||
			resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("declared %v: %d %q %v", declared, resp.StatusCode, out, resp.Header)
		}
	}
	if fn.calls != 0 {
		t.Errorf("the function was invoked %d times", fn.calls)
	}
}

// A failed invocation, or an answer that is not a proxy response, is API
// Gateway's 502, and the template's DEFAULT_5XX adds CORS to it.
func TestFailedInvocation(t *testing.T) {
	for name, invoke := range map[string]Invoke{
		"error":    func(context.Context, []byte) ([]byte, error) { return nil, errors.New("the function crashed") },
		"null":     func(context.Context, []byte) ([]byte, error) { return []byte("null"), nil },
		"not JSON": func(context.Context, []byte) ([]byte, error) { return []byte("Task timed out"), nil },
		"bad base64": func(context.Context, []byte) ([]byte, error) {
			return []byte(`{"statusCode": 200, "isBase64Encoded": true, "body": "%%%"}`), nil
		},
	} {
		resp, out := post(t, &Gateway{Invoke: invoke, CORSOrigin: "https://site.example"}, strings.NewReader("x"), nil)
		if resp.StatusCode != http.StatusBadGateway || out != `{"message": "Internal server error"}` ||
			resp.Header.Get("Access-Control-Allow-Origin") != "https://site.example" {
			t.Errorf("%s: %d %q %v", name, resp.StatusCode, out, resp.Header)
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
