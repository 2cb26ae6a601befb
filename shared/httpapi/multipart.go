// Reading a chunk POSTed as multipart/form-data: its fields, its file part and
// what follows it, within the handler's bounds.

package httpapi

import (
	"bufio"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"sync"

	"github.com/flowgate/flowgate/shared/protocol"
	"github.com/flowgate/flowgate/shared/upload"
)

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
		return &upload.InputError{Kind: upload.Interrupted, Msg: "the request body ended in the middle of a form field (cut off or malformed)"}
	}
	return badRequest("malformed multipart body: " + err.Error())
}
