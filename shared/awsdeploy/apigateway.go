package awsdeploy

import (
	"context"
	"encoding/base64"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// APIGatewayMaxPayload is what API Gateway passes to a Lambda function
// synchronously: 6 MB (6,291,456 bytes) of event, after base64.
const APIGatewayMaxPayload = 6_291_456

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

// APIGateway serves a REST API proxy handler over plain HTTP the way API
// Gateway invokes it: each request becomes a payload 1.0 event (binary media
// types base64-encoded, single- and multi-value headers and query
// parameters), bodies over the Lambda payload limit are refused with 413
// before the function sees them, and the response is decoded back. `make
// dev` puts it in front of the upload function's handler, and tests use it
// to drive that handler with a real HTTP client: sam local start-api without
// Docker.
func APIGateway(h RESTHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, APIGatewayMaxPayload+1))
		if err != nil {
			http.Error(w, "could not read the request", http.StatusBadRequest)
			return
		}
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
		if len(req.Body) > APIGatewayMaxPayload {
			// What API Gateway answers before invoking the function.
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			io.WriteString(w, `{"message":"Request Too Long"}`)
			return
		}

		resp, err := h(r.Context(), req)
		if err != nil {
			// API Gateway's answer to a failed invocation.
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadGateway)
			io.WriteString(w, `{"message": "Internal server error"}`)
			return
		}
		for k, v := range resp.Headers {
			w.Header().Set(k, v)
		}
		for k, vs := range resp.MultiValueHeaders {
			w.Header()[http.CanonicalHeaderKey(k)] = vs
		}
		out := []byte(resp.Body)
		if resp.IsBase64Encoded {
			if out, err = base64.StdEncoding.DecodeString(resp.Body); err != nil {
				w.WriteHeader(http.StatusBadGateway)
				return
			}
		}
		w.WriteHeader(resp.StatusCode)
		w.Write(out)
	})
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
