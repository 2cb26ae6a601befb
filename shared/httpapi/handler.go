// Package httpapi speaks flow.js's HTTP protocol on top of an upload.Service:
//
//	GET     /upload          test chunk: 200 present, 204 send it
//	POST    /upload          a chunk, multipart/form-data or a raw body
//	GET     /upload/status   where a file is: receiving ... complete
//	OPTIONS both             CORS preflight
//
// The same Handler serves the embedded server and, through the Lambda proxy
// adapter, API Gateway.
package httpapi

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/flowgate/flowgate/shared/protocol"
	"github.com/flowgate/flowgate/shared/upload"
)

// FileField is the multipart part that carries the chunk (flow.js's
// fileParameterName, "file" by default).
const FileField = "file"

const (
	// maxFieldBytes bounds one form field other than the file; flow.js's
	// fields are short and a relative path is at most 1 KiB.
	maxFieldBytes = 4 << 10
	// maxParts bounds the parts of one multipart body: the eight flow fields,
	// the file and whatever few extra fields the page's `query` option adds.
	maxParts = 64
	// multipartOverhead is what a multipart body may carry on top of the
	// chunk itself: boundaries, part headers and fields.
	multipartOverhead = maxParts * (maxFieldBytes + 512)
)

// Handler serves the upload API.
type Handler struct {
	Service *upload.Service
	Limits  protocol.Limits
	CORS    CORS
	// Namespace tells whose uploads a request touches; nil means everyone
	// shares one public namespace. An error answers 401.
	Namespace func(*http.Request) (string, error)
	Log       *slog.Logger
}

// PublicNamespace is the namespace of anonymous callers.
const PublicNamespace = "public"

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rw := &statusWriter{ResponseWriter: w}
	w = rw
	w.Header().Set("Cache-Control", "no-store")
	reqID := requestID(r)
	w.Header().Set("X-Request-Id", reqID)
	var key string
	defer func() {
		h.log().LogAttrs(r.Context(), logLevel(rw.status), "request",
			slog.String("requestId", reqID), slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", rw.status), slog.String("upload", key),
			slog.Float64("seconds", time.Since(start).Seconds()))
	}()

	if !h.CORS.apply(w, r) {
		writeError(w, http.StatusForbidden, "origin not allowed")
		return
	}
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusNoContent)
		return
	}

	switch r.URL.Path {
	case "/upload":
		switch r.Method {
		case http.MethodGet:
			key = h.test(w, r)
		case http.MethodPost:
			key = h.post(w, r)
		default:
			w.Header().Set("Allow", "GET, POST, OPTIONS")
			writeError(w, http.StatusMethodNotAllowed, "use GET to test a chunk and POST to send one")
		}
	case "/upload/status":
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", "GET, OPTIONS")
			writeError(w, http.StatusMethodNotAllowed, "use GET")
			return
		}
		key = h.status(w, r)
	default:
		writeError(w, http.StatusNotFound, "no such endpoint")
	}
}

// test answers the test GET.
func (h *Handler) test(w http.ResponseWriter, r *http.Request) string {
	ns, ok := h.namespace(w, r)
	if !ok {
		return ""
	}
	c, err := protocol.ParseChunk(queryFields(r.URL.Query()), ns, h.Limits)
	if err != nil {
		h.fail(w, r, err)
		return ""
	}
	present, err := h.Service.Test(r.Context(), c.Info, c.Number)
	if err != nil {
		h.fail(w, r, err)
		return c.Key
	}
	if !present {
		// 204: not there, send it. Anything flow.js counts as a permanent
		// error (404, 413, 415, 500, 501) would fail the whole file instead.
		w.WriteHeader(http.StatusNoContent)
		return c.Key
	}
	writeJSON(w, http.StatusOK, map[string]any{"chunk": c.Number, "present": true})
	return c.Key
}

// post takes a chunk.
func (h *Handler) post(w http.ResponseWriter, r *http.Request) string {
	ns, ok := h.namespace(w, r)
	if !ok {
		return ""
	}
	r.Body = http.MaxBytesReader(w, r.Body, h.Limits.MaxChunkSize+multipartOverhead)
	var (
		c    protocol.Chunk
		body upload.Body
		err  error
	)
	if mediaType(r) == "multipart/form-data" {
		c, body, err = h.readMultipart(r, ns)
	} else {
		c, body, err = h.readOctet(r, ns)
	}
	if err != nil {
		h.fail(w, r, err)
		return c.Key
	}
	ready, err := h.Service.Put(r.Context(), c.Info, c.Number, body)
	if err != nil {
		h.fail(w, r, err)
		return c.Key
	}
	writeJSON(w, http.StatusOK, map[string]any{"chunk": c.Number, "ready": ready})
	return c.Key
}

// readOctet handles flow.js's method: 'octet': the body is the chunk and the
// fields are in the query string.
func (h *Handler) readOctet(r *http.Request, ns string) (protocol.Chunk, upload.Body, error) {
	c, err := protocol.ParseChunk(queryFields(r.URL.Query()), ns, h.Limits)
	if err != nil {
		return c, upload.Body{}, err
	}
	if r.ContentLength >= 0 && r.ContentLength != c.Size {
		return c, upload.Body{}, badRequest("request body has " + strconv.FormatInt(r.ContentLength, 10) +
			" bytes, but " + protocol.FieldCurrentChunkSize + " is " + strconv.FormatInt(c.Size, 10))
	}
	return c, upload.Body{Reader: r.Body}, nil
}

// readMultipart reads the form fields up to the file part and returns the
// part as the chunk's body. The fields may come in any order and be mixed
// with extra ones (flow.js's `query` option); fields missing from the form
// are looked for in the query string. What follows the file part is checked
// by Finish, before the chunk is counted.
func (h *Handler) readMultipart(r *http.Request, ns string) (protocol.Chunk, upload.Body, error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return protocol.Chunk{}, upload.Body{}, badRequest("malformed multipart body: " + err.Error())
	}
	form := map[string]string{}
	parts := 0
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return protocol.Chunk{}, upload.Body{}, badRequest("multipart body has no \"" + FileField + "\" part")
		}
		if err != nil {
			return protocol.Chunk{}, upload.Body{}, multipartErr(err)
		}
		if parts++; parts > maxParts {
			return protocol.Chunk{}, upload.Body{}, badRequest("too many multipart parts")
		}
		name := p.FormName()
		if name == FileField {
			get := func(k string) (string, bool) {
				if v, ok := form[k]; ok {
					return v, true
				}
				return queryFields(r.URL.Query())(k)
			}
			c, err := protocol.ParseChunk(get, ns, h.Limits)
			if err != nil {
				return c, upload.Body{}, err
			}
			return c, upload.Body{Reader: p, Finish: func() error { return rest(mr, parts) }}, nil
		}
		v, err := readField(p)
		if err != nil {
			return protocol.Chunk{}, upload.Body{}, err
		}
		if _, dup := form[name]; dup && protocol.IsFlowField(name) {
			return protocol.Chunk{}, upload.Body{}, badRequest("field " + name + " given twice")
		}
		form[name] = v
	}
}

// rest reads what follows the file part: extra fields are fine, a second
// file or a body that does not end properly is not.
func rest(mr *multipart.Reader, parts int) error {
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return multipartErr(err)
		}
		if parts++; parts > maxParts {
			return badRequest("too many multipart parts")
		}
		if p.FormName() == FileField {
			return badRequest("more than one \"" + FileField + "\" part")
		}
		if _, err := readField(p); err != nil {
			return err
		}
	}
}

func readField(p *multipart.Part) (string, error) {
	b, err := io.ReadAll(io.LimitReader(p, maxFieldBytes+1))
	if err != nil {
		return "", multipartErr(err)
	}
	if len(b) > maxFieldBytes {
		return "", badRequest("form field " + strconv.Quote(clip(p.FormName())) + " is too long")
	}
	return string(b), nil
}

func multipartErr(err error) error {
	var mbe *http.MaxBytesError
	var ie *upload.InputError
	if errors.As(err, &mbe) || errors.As(err, &ie) {
		return err // a size limit (413) or a stalled body (408) keeps its meaning
	}
	return badRequest("malformed multipart body: " + err.Error())
}

// status answers GET /upload/status.
func (h *Handler) status(w http.ResponseWriter, r *http.Request) string {
	ns, ok := h.namespace(w, r)
	if !ok {
		return ""
	}
	info, err := protocol.ParseUpload(queryFields(r.URL.Query()), ns, h.Limits)
	if err != nil {
		h.fail(w, r, err)
		return ""
	}
	st, err := h.Service.Status(r.Context(), info.Key)
	if err != nil {
		h.fail(w, r, err)
		return info.Key
	}
	writeJSON(w, http.StatusOK, st)
	return info.Key
}

func (h *Handler) namespace(w http.ResponseWriter, r *http.Request) (string, bool) {
	if h.Namespace == nil {
		return PublicNamespace, true
	}
	ns, err := h.Namespace(r)
	if err != nil {
		writeError(w, http.StatusUnauthorized, err.Error())
		return "", false
	}
	return ns, true
}

// fail answers an error: the client's own mistakes with their 4xx, anything
// else with 503, which flow.js retries rather than failing the file.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ie *upload.InputError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ie):
		writeError(w, ie.Status, ie.Msg)
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, "request body is over the size limit")
	default:
		h.log().ErrorContext(r.Context(), "request failed", "err", err, "requestId", w.Header().Get("X-Request-Id"))
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "storage is unavailable; try again")
	}
}

func (h *Handler) log() *slog.Logger {
	if h.Log != nil {
		return h.Log
	}
	return slog.Default()
}

// queryFields looks fields up in a query string. A field given twice is
// treated as absent-and-wrong by taking neither: flow.js never repeats one.
func queryFields(q url.Values) protocol.Fields {
	return func(k string) (string, bool) {
		v, ok := q[k]
		if !ok || len(v) != 1 {
			return "", false
		}
		return v[0], true
	}
}

func mediaType(r *http.Request) string {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return ""
	}
	return mt
}

func badRequest(msg string) error {
	return &upload.InputError{Status: http.StatusBadRequest, Msg: msg}
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

// statusWriter remembers the status for the request's log line.
type statusWriter struct {
	http.ResponseWriter
	status int
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
