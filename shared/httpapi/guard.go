package httpapi

import (
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
)

// Guarded is the API as a host mounts it that hands it every request, such
// as the Lambda proxy adapter (which passes on whatever path API Gateway
// sent): h, whose mux answers a path that is not the API's with a JSON 404,
// and a panic while serving becomes a JSON 500 (unless the answer had
// begun), with the CORS headers of any other answer, so that a page on
// another origin can read it rather than see a network error.
func (h *Handler) Guarded() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &startedWriter{ResponseWriter: w}
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			if p == http.ErrAbortHandler { // net/http's way to abort a response
				panic(p)
			}
			log := h.Log
			if log == nil {
				log = slog.Default()
			}
			log.ErrorContext(r.Context(), "panic while serving a request",
				"method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			if sw.started {
				return // too late for another status; the client sees a cut answer
			}
			if sw.Header().Get("Access-Control-Allow-Origin") == "" && !h.CORS.apply(sw, r) {
				return
			}
			writeError(sw, http.StatusInternalServerError, "internal error")
		}()
		h.ServeHTTP(sw, r)
	})
}

// startedWriter notes whether the answer has begun.
type startedWriter struct {
	http.ResponseWriter
	started bool
}

func (s *startedWriter) WriteHeader(code int) {
	s.started = true
	s.ResponseWriter.WriteHeader(code)
}

func (s *startedWriter) Write(b []byte) (int, error) {
	s.started = true
	return s.ResponseWriter.Write(b)
}

func (s *startedWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
