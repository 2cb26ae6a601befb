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
	"bufio"
	"context"
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
	// Uploads, if set, tracks the uploads in progress and limits new ones
	// per namespace (local mode; see Uploads).
	Uploads *Uploads
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
}

// Metrics is what the handler reports (metrics.Metrics implements it).
type Metrics interface {
	// ChunkReceived: a chunk was answered 200.
	ChunkReceived(bytes int64)
	// Rejected: a request was answered with an error status, for a reason
	// among the fixed words of reasonFor and the Reason* constants.
	Rejected(reason string, status int)
}

// Rejection reasons beyond those that follow from the status alone.
const (
	ReasonMissingToken   = "missing_token"
	ReasonInvalidToken   = "invalid_token"
	ReasonTooManyUploads = "too_many_uploads"
	ReasonBodyTooLarge   = "body_too_large"
	ReasonHeaderTooLarge = "header_too_large"
	ReasonDraining       = "draining"
)

// reasonFor names the rejection of a status when nothing more precise was
// said. The words are fixed: they become metric labels.
func reasonFor(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "invalid"
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "origin_not_allowed"
	case http.StatusNotFound:
		return "not_found"
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusRequestTimeout:
		return "body_timeout"
	case http.StatusConflict:
		return "conflict"
	case http.StatusRequestEntityTooLarge:
		return "limit_exceeded"
	case http.StatusUnsupportedMediaType:
		return "type_not_allowed"
	case upload.ChecksumMismatch:
		return "checksum_mismatch"
	case http.StatusTooManyRequests:
		return ReasonTooManyUploads
	case http.StatusRequestHeaderFieldsTooLarge:
		return ReasonHeaderTooLarge
	case http.StatusServiceUnavailable:
		return "unavailable"
	}
	return "status_" + strconv.Itoa(status)
}

// ReasonFor is reasonFor for other layers of the server (the local
// server's gate) that refuse requests before the handler sees them.
func ReasonFor(status int) string { return reasonFor(status) }

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

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusNoContent)
		return
	}

	switch r.URL.Path {
	case "/upload":
		switch r.Method {
		case http.MethodGet:
			h.test(rw, r)
		case http.MethodPost:
			h.post(rw, r)
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
		h.status(rw, r)
	case "/upload/config":
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", "GET, OPTIONS")
			writeError(w, http.StatusMethodNotAllowed, "use GET")
			return
		}
		h.serverConfig(rw, r)
	case "/upload/urls":
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST, OPTIONS")
			writeError(w, http.StatusMethodNotAllowed, "use POST")
			return
		}
		h.urls(rw, r)
	default:
		writeError(w, http.StatusNotFound, "no such endpoint")
	}
}

// test answers the test GET.
func (h *Handler) test(w *statusWriter, r *http.Request) {
	ns, ok := h.namespace(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	d, err := w.detect(mapKeys(q), queryFields(q))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	c, err := d.ParseChunk(queryFields(q), ns, h.Limits)
	setUpload(r, c.Key)
	if err == nil {
		// The name is known before any byte is sent (and the type too,
		// from Resumable.js): a file the site does not take fails here.
		err = h.allowed(c.Info)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	present, err := h.Service.Test(r.Context(), c.Info, c.Number)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if !present {
		// 204: not there, send it. Anything flow.js counts as a permanent
		// error (404, 413, 415, 500, 501) would fail the whole file instead;
		// Resumable.js sends the chunk on anything but 200 and 201.
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"chunk": c.Number, "present": true})
}

// post takes a chunk.
func (h *Handler) post(w *statusWriter, r *http.Request) {
	ns, ok := h.namespace(w, r)
	if !ok {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, h.Limits.MaxChunkSize+h.multipartOverhead())
	var (
		c    protocol.Chunk
		body upload.Body
		err  error
	)
	if mediaType(r) == "multipart/form-data" {
		br := readBuffers.Get().(*bufio.Reader)
		br.Reset(r.Body)
		defer func() {
			br.Reset(nil) // drop the request body
			readBuffers.Put(br)
		}()
		c, body, err = h.readMultipart(w, r, br, ns)
	} else {
		c, body, err = h.readOctet(w, r, ns)
	}
	setUpload(r, c.Key)
	if err == nil {
		if c.ContentType == "" {
			c.ContentType = upload.DefaultContentType
		}
		err = h.allowed(c.Info)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	body.Digests = c.Digests
	end := func(ok, ready bool) {}
	if h.Uploads != nil {
		end, err = h.Uploads.begin(r.Context(), c.Info, func(ctx context.Context) (upload.State, error) {
			st, err := h.Service.Status(ctx, c.Key)
			return st.State, err
		})
		if err != nil {
			h.fail(w, r, err)
			return
		}
	}
	ready, err := h.Service.Put(r.Context(), c.Info, c.Number, body)
	end(err == nil, ready)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if h.Metrics != nil {
		h.Metrics.ChunkReceived(c.Size)
	}
	writeJSON(w, http.StatusOK, map[string]any{"chunk": c.Number, "ready": ready})
}

// setUpload adds the upload key, once known, to the request's log scope.
func setUpload(r *http.Request, key string) {
	if key != "" {
		logctx.Add(r.Context(), slog.String("upload", key))
	}
}

// readOctet handles flow.js's method: 'octet': the body is the chunk and the
// fields are in the query string.
func (h *Handler) readOctet(w *statusWriter, r *http.Request, ns string) (protocol.Chunk, upload.Body, error) {
	q := r.URL.Query()
	d, err := w.detect(mapKeys(q), queryFields(q))
	if err != nil {
		return protocol.Chunk{}, upload.Body{}, err
	}
	c, err := d.ParseChunk(queryFields(q), ns, h.Limits)
	if err != nil {
		return c, upload.Body{}, err
	}
	if r.ContentLength >= 0 && r.ContentLength != c.Size {
		return c, upload.Body{}, badRequest("request body has " + strconv.FormatInt(r.ContentLength, 10) +
			" bytes, but " + d.CurrentChunkSizeField() + " is " + strconv.FormatInt(c.Size, 10))
	}
	if c.ContentType == "" {
		// The library sends the chunk as a slice of the file, with the
		// file's type (none when the browser does not know it).
		c.ContentType = upload.ContentType(r.Header.Get("Content-Type"))
	}
	if c.Digests, err = d.ParseDigests(queryFields(q)); err != nil {
		return c, upload.Body{}, err
	}
	return c, upload.Body{Reader: r.Body}, nil
}

// allowed checks a file against the allow-list: its name, and its type
// when known.
func (h *Handler) allowed(info upload.Info) error {
	if err := h.Allowed.CheckName(info.FileName); err != nil {
		return err
	}
	if info.ContentType == "" {
		return nil
	}
	return h.Allowed.CheckType(info.ContentType)
}

// readBuffers hold multipart bodies as they are read. The standard library's
// multipart reader buffers only 4 KiB, so reading a 1 MiB chunk through it
// takes 256 read system calls; given a larger bufio.Reader it uses that
// instead. With 64 KiB the server's CPU time for 1 GiB of 1 MiB chunks went
// from 3.7 s to 2.3 s (docs/benchmarks.md's machine).
var readBuffers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 64<<10) }}

// readMultipart reads the form fields from body (the request's body,
// buffered) up to the file part and returns the part as the chunk's body.
// The fields may come in any order and be mixed with extra ones (flow.js's
// `query` option); fields missing from the form are looked for in the query
// string (Resumable.js sends them in both). What follows the file part is
// checked by Finish, before the chunk is counted.
func (h *Handler) readMultipart(w *statusWriter, r *http.Request, body *bufio.Reader, ns string) (protocol.Chunk, upload.Body, error) {
	_, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || params["boundary"] == "" {
		return protocol.Chunk{}, upload.Body{}, badRequest("malformed multipart body: no boundary in Content-Type")
	}
	mr := multipart.NewReader(body, params["boundary"])
	query := r.URL.Query()
	form := map[string]string{}
	get := func(k string) (string, bool) {
		if v, ok := form[k]; ok {
			return v, true
		}
		return queryFields(query)(k)
	}
	has := func(k string) bool { _, ok := get(k); return ok }
	parts := 0
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return protocol.Chunk{}, upload.Body{}, badRequest("multipart body has no \"" + FileField + "\" part")
		}
		if err != nil {
			return protocol.Chunk{}, upload.Body{}, multipartErr(err)
		}
		if parts++; parts > h.maxParts() {
			return protocol.Chunk{}, upload.Body{}, badRequest("too many multipart parts")
		}
		name := p.FormName()
		if protocol.FilePart(name, FileField, has) {
			names := mapKeys(query)
			for k := range form {
				if _, inQuery := query[k]; !inQuery {
					names = append(names, k)
				}
			}
			d, err := w.detect(names, get)
			if err != nil {
				return protocol.Chunk{}, upload.Body{}, err
			}
			c, err := d.ParseChunk(get, ns, h.Limits)
			if err != nil {
				return c, upload.Body{}, err
			}
			if c.ContentType == "" {
				// flow.js appends the chunk as a slice of the file, which
				// keeps the file's type (application/octet-stream when the
				// browser does not know it).
				c.ContentType = upload.ContentType(p.Header.Get("Content-Type"))
			}
			if c.Digests, err = d.ParseDigests(get); err != nil {
				return c, upload.Body{}, err
			}
			return c, upload.Body{Reader: p, Finish: func() error { return h.rest(mr, parts, name) }}, nil
		}
		v, err := h.readField(p)
		if err != nil {
			return protocol.Chunk{}, upload.Body{}, err
		}
		if _, dup := form[name]; dup && protocol.IsField(name) {
			return protocol.Chunk{}, upload.Body{}, badRequest("field " + name + " given twice")
		}
		form[name] = v
	}
}

// rest reads what follows the file part (named file): extra fields are
// fine, a second file or a body that does not end properly is not.
func (h *Handler) rest(mr *multipart.Reader, parts int, file string) error {
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return multipartErr(err)
		}
		if parts++; parts > h.maxParts() {
			return badRequest("too many multipart parts")
		}
		if p.FormName() == file || p.FormName() == FileField {
			return badRequest("more than one \"" + file + "\" part")
		}
		if protocol.IsChecksumField(p.FormName()) {
			// Too late to check the chunk as it streamed: refuse rather
			// than let the client believe it was checked.
			return badRequest("field " + clip(p.FormName()) + " must come before the \"" + file + "\" part")
		}
		if _, err := h.readField(p); err != nil {
			return err
		}
	}
}

func (h *Handler) readField(p *multipart.Part) (string, error) {
	limit := h.maxFieldBytes()
	b, err := io.ReadAll(io.LimitReader(p, int64(limit)+1))
	if err != nil {
		return "", multipartErr(err)
	}
	if len(b) > limit {
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
	if errors.Is(err, io.ErrUnexpectedEOF) {
		// Cut off in the middle of a field: most likely in transit, so
		// answered as the upload service answers a chunk cut short, with a
		// status both libraries retry (see statuses.go).
		return &upload.InputError{Status: http.StatusRequestTimeout, Msg: "the request body ended in the middle of a form field (cut off or malformed)"}
	}
	return badRequest("malformed multipart body: " + err.Error())
}

// status answers GET /upload/status.
func (h *Handler) status(w *statusWriter, r *http.Request) {
	ns, ok := h.namespace(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	d, err := w.detect(mapKeys(q), queryFields(q))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	info, err := d.ParseUpload(queryFields(q), ns, h.Limits)
	setUpload(r, info.Key)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	st, err := h.Service.Status(r.Context(), info.Key)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (h *Handler) namespace(w *statusWriter, r *http.Request) (string, bool) {
	if h.Namespace == nil {
		return PublicNamespace, true
	}
	ns, err := h.Namespace(r)
	if err != nil {
		var ae *AuthError
		if errors.As(err, &ae) {
			if ae.Challenge != "" {
				w.Header().Set("WWW-Authenticate", ae.Challenge)
			}
			w.reason = ae.Reason
			if ae.Cause != nil {
				logctx.From(r.Context(), nil).InfoContext(r.Context(), "credentials refused", "err", ae.Cause)
			}
		}
		writeError(w, http.StatusUnauthorized, err.Error())
		return "", false
	}
	w.namespace = ns
	return ns, true
}

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
		w.refuse(ie.Status, "", ie.Msg)
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

// mapKeys lists the names of a query string's fields.
func mapKeys(q url.Values) []string {
	names := make([]string, 0, len(q))
	for k := range q {
		names = append(names, k)
	}
	return names
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
