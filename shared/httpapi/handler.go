// Package httpapi speaks flow.js's HTTP protocol, and Resumable.js's (the
// same protocol under other field names), on top of an upload.Service:
//
//	GET     /upload          test chunk: 200 present, 204 send it
//	POST    /upload          a chunk, multipart/form-data or a raw body
//	GET     /upload/status   where a file is: receiving ... complete
//	GET     /upload/config   how chunks are taken: proxy (POST /upload) or direct (direct.go)
//	POST    /upload/urls     the direct data path: URLs to store chunks with
//	OPTIONS each             CORS preflight
//
// The same Handler serves the embedded server and, through the Lambda proxy
// adapter, API Gateway. Which library sent a request is told by its field
// names (protocol.Detect); the statuses of refusals are chosen so that each
// library retries or gives up as it should (statuses.go).
//
// Every request gets a log scope (package logctx) with its request id, to
// which the upload key is added as soon as it is known: every line logged
// for the request, by the handler, the upload service or the pipeline it
// may run, carries both.
package httpapi

import (
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/flowgate/flowgate/shared/logctx"
	"github.com/flowgate/flowgate/shared/protocol"
	"github.com/flowgate/flowgate/shared/upload"
)

// FileField is the multipart part that carries the chunk (flow.js's and
// Resumable.js's fileParameterName, "file" by default; Resumable.js puts its
// parameterNamespace in front of it).
const FileField = "file"

const (
	// DefaultMaxFieldBytes bounds one form field other than the file;
	// flow.js's fields are short and a relative path is at most 1 KiB.
	DefaultMaxFieldBytes = 4 << 10
	// DefaultMaxParts bounds the parts of one multipart body: the eight flow
	// fields (nine from Resumable.js), the file and whatever few extra fields
	// the page's `query` option adds.
	DefaultMaxParts = 64
	// partHeaderBytes is what one part may add on top of its content:
	// boundary and part headers.
	partHeaderBytes = 512
)

// Handler serves the upload API.
type Handler struct {
	Service *upload.Service
	Limits  protocol.Limits
	CORS    CORS
	// Namespace tells whose uploads a request touches; nil means everyone
	// shares one public namespace. An error answers 401 (with
	// WWW-Authenticate when it is an *AuthError).
	Namespace func(*http.Request) (string, error)
	Log       *slog.Logger
	// Metrics, if set, counts the chunks taken and the requests refused.
	Metrics Metrics
	// MaxFieldBytes and MaxParts bound a multipart body's form fields; 0
	// means DefaultMaxFieldBytes and DefaultMaxParts.
	MaxFieldBytes int
	MaxParts      int
	// Allowed lists the types and extensions of files taken (empty: all);
	// any other is refused with 415 at its first request.
	Allowed upload.AllowList
	// Direct, if set, is the direct data path (direct.go): clients store
	// chunks in the store themselves, with URLs from POST /upload/urls.
	Direct *Direct

	routesOnce sync.Once
	mux        *http.ServeMux
}

func (h *Handler) maxFieldBytes() int {
	if h.MaxFieldBytes > 0 {
		return h.MaxFieldBytes
	}
	return DefaultMaxFieldBytes
}

func (h *Handler) maxParts() int {
	if h.MaxParts > 0 {
		return h.MaxParts
	}
	return DefaultMaxParts
}

// multipartOverhead is what a multipart body may carry on top of the chunk
// itself: boundaries, part headers and fields.
func (h *Handler) multipartOverhead() int64 {
	return int64(h.maxParts()) * int64(h.maxFieldBytes()+partHeaderBytes)
}

// PublicNamespace is the namespace of anonymous callers.
const PublicNamespace = "public"

// ServeHTTP answers a request to the API. Its paths and methods are routed
// by one ServeMux (routes.go); any other path is a JSON 404.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.routesOnce.Do(func() { h.mux = h.routes() })
	if !cleanPath(r.URL.Path) {
		// The mux would redirect it to its clean form; the API knows no
		// such path.
		h.notFound(w, r)
		return
	}
	h.mux.ServeHTTP(w, decodedPath(r))
}

// scope is what every request to one of the API's routes goes through
// before its handler: its log scope and request id, the log line and metric
// of its answer, and the CORS check.
func (h *Handler) scope(next func(*statusWriter, *http.Request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rw := &statusWriter{ResponseWriter: w}
		w = rw
		w.Header().Set("Cache-Control", "no-store")
		reqID := requestID(r)
		w.Header().Set("X-Request-Id", reqID)
		ctx := logctx.Start(r.Context(), h.Log, slog.String("requestId", reqID))
		r = r.WithContext(ctx)
		defer func() {
			if rw.status >= 400 && h.Metrics != nil {
				reason := rw.reason
				if reason == "" {
					reason = reasonFor(rw.status)
				}
				h.Metrics.Rejected(reason, rw.status)
			}
			attrs := []slog.Attr{slog.String("method", r.Method), slog.String("path", r.URL.Path),
				slog.Int("status", rw.status), slog.Float64("seconds", time.Since(start).Seconds())}
			if rw.namespace != "" {
				attrs = append(attrs, slog.String("namespace", rw.namespace))
			}
			logctx.From(ctx, nil).LogAttrs(ctx, logLevel(rw.status), "request", attrs...)
		}()

		if !h.CORS.apply(w, r) {
			writeError(w, http.StatusForbidden, "origin not allowed")
			return
		}
		next(rw, r)
	})
}
