// The upload endpoints' handlers: the test GET, the chunk POST (octet body;
// multipart.go reads the other kind) and the status GET, and who the caller is.

package httpapi

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/flowgate/flowgate/shared/logctx"
	"github.com/flowgate/flowgate/shared/protocol"
	"github.com/flowgate/flowgate/shared/upload"
)

// test answers the test GET.
func (h *Handler) test(w *statusWriter, r *http.Request) {
	ns, d, fields, ok := h.fromQuery(w, r)
	if !ok {
		return
	}
	c, err := d.ParseChunk(fields, ns, h.Limits)
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
	body = overLimit(body)
	body.Digests = c.Digests
	ready, err := h.Service.Put(r.Context(), c.Info, c.Number, body)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if h.Metrics != nil {
		h.Metrics.ChunkReceived(c.Size)
	}
	writeJSON(w, http.StatusOK, map[string]any{"chunk": c.Number, "ready": ready})
}

// overLimit gives the body-size limit's error (an *http.MaxBytesError) the
// service's words, in the chunk's bytes and in what follows them, so that the
// service answers it as a body over a limit rather than one it could not read.
func overLimit(b upload.Body) upload.Body {
	if b.Reader != nil {
		b.Reader = overLimitReader{b.Reader}
	}
	if finish := b.Finish; finish != nil {
		b.Finish = func() error { return overLimitErr(finish()) }
	}
	return b
}

type overLimitReader struct{ io.Reader }

func (r overLimitReader) Read(p []byte) (int, error) {
	n, err := r.Reader.Read(p)
	return n, overLimitErr(err)
}

func overLimitErr(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &upload.InputError{Kind: upload.TooLarge, Msg: "request body is over the size limit"}
	}
	return err
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
	d, fields, err := w.query(r)
	if err != nil {
		return protocol.Chunk{}, upload.Body{}, err
	}
	c, err := d.ParseChunk(fields, ns, h.Limits)
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
	if c.Digests, err = d.ParseDigests(fields); err != nil {
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

// status answers GET /upload/status.
func (h *Handler) status(w *statusWriter, r *http.Request) {
	ns, d, fields, ok := h.fromQuery(w, r)
	if !ok {
		return
	}
	info, err := d.ParseUpload(fields, ns, h.Limits)
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

// fromQuery reads who calls and the fields of a GET (the test GET, the
// status GET): the caller's namespace, which library sent the fields, and
// the fields. If it cannot, it has answered, and returns false.
func (h *Handler) fromQuery(w *statusWriter, r *http.Request) (string, protocol.Dialect, protocol.Fields, bool) {
	ns, ok := h.namespace(w, r)
	if !ok {
		return "", protocol.Dialect{}, nil, false
	}
	d, fields, err := w.query(r)
	if err != nil {
		h.fail(w, r, err)
		return "", protocol.Dialect{}, nil, false
	}
	return ns, d, fields, true
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
