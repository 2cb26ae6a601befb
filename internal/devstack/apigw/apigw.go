// Package apigw emulates API Gateway's REST API Lambda proxy integration
// (payload 1.0) in front of the upload function, for `make dev` and tests:
// sam local start-api without Docker. Each HTTP request becomes the event API
// Gateway would send (binary media types base64-encoded, single- and
// multi-value headers and query parameters), the function's answer becomes
// the HTTP response, and the errors API Gateway answers itself are answered
// as it answers them (see Gateway).
//
// The function is anything that takes a raw JSON event and gives back a raw
// JSON answer (Invoke): make dev's instances of the real bootstrap under the
// Lambda Runtime Interface Emulator (internal/devstack/lambdarie); or, for unit
// tests, a handler in this process handed the event as a Go value
// (APIGateway, Gateway.Handler).
package apigw

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// Limits API Gateway enforces before the function runs.
const (
	// MaxRequestBody is a REST API's payload limit: 10 MB (10,485,760
	// bytes) of request body, as the client sent it.
	MaxRequestBody = 10 << 20
	// MaxEvent is what Lambda takes in one synchronous invocation: 6 MB
	// (6,291,456 bytes) of event, the whole JSON document, base64 body and
	// headers included.
	MaxEvent = 6_291_456
)

// BinaryMediaTypes are the media types the REST API declares binary (see
// template.yaml, whose tests hold the two lists equal): their bodies reach
// the function base64-encoded, untouched. multipart/form-data is flow.js's
// default method; with method "octet" flow.js sends the chunk with the
// file's own type (image/png, video/mp4, ...), so "*/*" makes every body
// binary: a type left out would reach the function as text, and any byte
// that is not valid UTF-8 would be mangled.
var BinaryMediaTypes = []string{"multipart/form-data", "application/octet-stream", "*/*"}

// RESTHandler is a Lambda handler for REST API proxy events (payload 1.0).
type RESTHandler func(context.Context, events.APIGatewayProxyRequest) (events.APIGatewayProxyResponse, error)

// Invoke invokes the function synchronously: event in, answer out, both raw
// JSON; an error means the invocation failed (the function returned an
// error, crashed or could not start).
type Invoke func(ctx context.Context, event []byte) ([]byte, error)

// APIGateway serves an in-process handler through a Gateway whose gateway
// responses carry "Access-Control-Allow-Origin: *", as the template's do
// with its default AllowedOrigins.
func APIGateway(h RESTHandler) http.Handler {
	return &Gateway{Handler: h, CORSOrigin: "*"}
}

// Gateway answers HTTP requests as API Gateway's REST API does with a Lambda
// proxy integration in front of Invoke. What API Gateway answers itself
// (AWS's documentation of REST API quotas and gateway response types, and
// what clients observe):
//
//   - a body over MaxRequestBody: 413, a plain-text message;
//   - an event over MaxEvent: 413 {"message": "Request Too Long"} (gateway
//     response REQUEST_TOO_LARGE), without invoking the function;
//   - a failed invocation or an answer that is not a proxy response: 502
//     {"message": "Internal server error"}.
//
// The template customizes DEFAULT_4XX and DEFAULT_5XX with CORS headers, so
// the 502 carries CORSOrigin; REQUEST_TOO_LARGE cannot be customized (AWS
// documents it), so neither 413 carries CORS headers and a browser page
// sees a network error rather than the 413.
type Gateway struct {
	// Invoke is the function, invoked with the event's JSON.
	Invoke Invoke
	// Handler, if set instead, is the function in this process, handed
	// the event as a Go value. That value can carry bytes that are not
	// UTF-8 (in a query parameter, say), which the JSON of a real
	// invocation cannot: there they arrive as U+FFFD.
	Handler RESTHandler
	// CORSOrigin is the Access-Control-Allow-Origin of the customized
	// gateway responses: the first of the template's AllowedOrigins.
	// Empty adds none.
	CORSOrigin string
}

func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > MaxRequestBody {
		tooLongBody(w)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxRequestBody+1))
	if err != nil {
		http.Error(w, "could not read the request", http.StatusBadRequest)
		return
	}
	if len(body) > MaxRequestBody {
		tooLongBody(w)
		return
	}
	req := proxyEvent(r, body)
	event, err := json.Marshal(req)
	if err != nil {
		g.internalError(w)
		return
	}
	if len(event) > MaxEvent {
		// REQUEST_TOO_LARGE, before the function runs; its headers cannot
		// be customized, so no CORS.
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		io.WriteString(w, `{"message": "Request Too Long"}`)
		return
	}

	var out []byte
	if g.Handler != nil {
		var resp events.APIGatewayProxyResponse
		if resp, err = g.Handler(r.Context(), req); err == nil {
			out, err = json.Marshal(resp)
		}
	} else {
		out, err = g.Invoke(r.Context(), event)
	}
	if err != nil {
		g.internalError(w)
		return
	}
	var resp events.APIGatewayProxyResponse
	if err := json.Unmarshal(out, &resp); err != nil || resp.StatusCode < 100 || resp.StatusCode > 599 {
		g.internalError(w) // a malformed Lambda proxy response
		return
	}
	payload := []byte(resp.Body)
	if resp.IsBase64Encoded {
		if payload, err = base64.StdEncoding.DecodeString(resp.Body); err != nil {
			g.internalError(w)
			return
		}
	}
	for k, v := range resp.Headers {
		w.Header().Set(k, v)
	}
	for k, vs := range resp.MultiValueHeaders {
		w.Header()[http.CanonicalHeaderKey(k)] = vs
	}
	w.WriteHeader(resp.StatusCode)
	w.Write(payload)
}

// tooLongBody is API Gateway's answer to a body over its payload limit.
func tooLongBody(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	// The body may not have been read: do not keep the connection.
	w.Header().Set("Connection", "close")
	w.WriteHeader(http.StatusRequestEntityTooLarge)
	io.WriteString(w, "HTTP content length exceeded "+strconv.Itoa(MaxRequestBody)+" bytes.")
}

// internalError is API Gateway's answer to a failed invocation (gateway
// response INTEGRATION_FAILURE, through the template's DEFAULT_5XX).
func (g *Gateway) internalError(w http.ResponseWriter) {
	if g.CORSOrigin != "" {
		w.Header().Set("Access-Control-Allow-Origin", g.CORSOrigin)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadGateway)
	io.WriteString(w, `{"message": "Internal server error"}`)
}

// proxyEvent is the payload 1.0 event for a request.
func proxyEvent(r *http.Request, body []byte) events.APIGatewayProxyRequest {
	req := events.APIGatewayProxyRequest{
		Resource:                        r.URL.Path,
		Path:                            r.URL.Path,
		HTTPMethod:                      r.Method,
		Headers:                         map[string]string{},
		MultiValueHeaders:               map[string][]string{},
		QueryStringParameters:           map[string]string{},
		MultiValueQueryStringParameters: map[string][]string{},
		RequestContext: events.APIGatewayProxyRequestContext{
			RequestID: "local-" + time.Now().Format("150405.000000"), Stage: "local",
			HTTPMethod: r.Method, ResourcePath: r.URL.Path, Path: r.URL.Path,
			Identity:         events.APIGatewayRequestIdentity{SourceIP: strings.Split(r.RemoteAddr, ":")[0], UserAgent: r.UserAgent()},
			RequestTimeEpoch: time.Now().UnixMilli(),
		},
	}
	for k, vs := range r.Header {
		req.Headers[k] = vs[len(vs)-1]
		req.MultiValueHeaders[k] = vs
	}
	for k, vs := range r.URL.Query() {
		req.QueryStringParameters[k] = vs[len(vs)-1]
		req.MultiValueQueryStringParameters[k] = vs
	}
	if IsBinary(BinaryMediaTypes, r.Header.Get("Content-Type")) {
		req.Body, req.IsBase64Encoded = base64.StdEncoding.EncodeToString(body), true
	} else {
		req.Body = string(body)
	}
	return req
}

// IsBinary reports whether API Gateway, with these binary media types,
// hands a body of this Content-Type to the function base64-encoded: an
// exact type, "type/*" or "*/*" matches. A request without a Content-Type
// counts as application/json, as API Gateway takes it.
func IsBinary(binaryTypes []string, contentType string) bool {
	mt := "application/json"
	if contentType != "" {
		var err error
		if mt, _, err = mime.ParseMediaType(contentType); err != nil {
			return false
		}
	}
	major, _, _ := strings.Cut(mt, "/")
	for _, b := range binaryTypes {
		if b == "*/*" || b == mt || b == major+"/*" {
			return true
		}
	}
	return false
}
