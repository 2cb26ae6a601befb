// Answering: the status and JSON body of a refusal, the request id, and the
// writer that remembers what was answered for the log line and the metrics.

package httpapi

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/flowgate/flowgate/shared/logctx"
	"github.com/flowgate/flowgate/shared/protocol"
	"github.com/flowgate/flowgate/shared/upload"
)

// fail answers an error: the client's own mistakes with their 4xx, anything
// else with 503, which both libraries retry rather than failing the file.
// The status is the one the library that sent the request understands
// (answerStatus).
func (h *Handler) fail(w *statusWriter, r *http.Request, err error) {
	var ie *upload.InputError
	var mbe *http.MaxBytesError
	var tm *TooManyUploads
	switch {
	case errors.As(err, &ie):
		w.refuse(statusOf(ie.Kind), "", ie.Msg)
	case errors.As(err, &mbe):
		w.refuse(http.StatusRequestEntityTooLarge, ReasonBodyTooLarge, "request body is over the size limit")
	case errors.As(err, &tm):
		retryAfter(w, tm.RetryAfter)
		writeError(w, http.StatusTooManyRequests, tm.Error())
	default:
		logctx.From(r.Context(), nil).ErrorContext(r.Context(), "request failed", "err", err)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "storage is unavailable; try again")
	}
}

func badRequest(msg string) error {
	return &upload.InputError{Kind: upload.BadInput, Msg: msg}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40]
	}
	return s
}

// requestID keeps an id given by a proxy in front (API Gateway's is set by
// the Lambda adapter) or makes one, so log lines of a request can be found.
func requestID(r *http.Request) string {
	for _, h := range []string{"X-Request-Id", "X-Amzn-Request-Id"} {
		if v := r.Header.Get(h); v != "" && len(v) <= 128 && validToken(v) {
			return v
		}
	}
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func validToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

func logLevel(status int) slog.Level {
	switch {
	case status >= 500:
		return slog.LevelError
	case status >= 400:
		return slog.LevelWarn
	}
	return slog.LevelInfo
}

// statusWriter remembers, for the request's log line and metrics, the
// status, the reason of a refusal when more precise than the status, and
// the caller's namespace; and, for choosing the status of a refusal, which
// library sent the request.
type statusWriter struct {
	http.ResponseWriter
	status    int
	reason    string
	namespace string
	library   protocol.Library
}

// detect tells which library sent the request (protocol.Detect) and
// remembers it for the answer.
func (s *statusWriter) detect(names []string, get protocol.Fields) (protocol.Dialect, error) {
	d, err := protocol.Detect(names, get)
	if err == nil {
		s.library = d.Library
	}
	return d, err
}

// refuse answers a refusal of the client's request with the status the
// library that sent it understands (answerStatus). The reason, for
// metrics, is that of the status the condition has in the API (reasonFor
// when empty), whatever status the library is told.
func (s *statusWriter) refuse(status int, reason, msg string) {
	if reason == "" {
		reason = reasonFor(status)
	}
	s.reason = reason
	writeError(s, answerStatus(s.library, status), msg)
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }
