package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flowgate/flowgate/shared/checksum"
	"github.com/flowgate/flowgate/shared/protocol"
	"github.com/flowgate/flowgate/shared/upload"
)

// The direct data path's two endpoints:
//
//	GET  /upload/config   how this deployment takes chunks: {"dataPath": "proxy" | "direct", ...}
//	POST /upload/urls     (direct) a URL per chunk, to store it straight into the bucket
//
// With the direct data path, a page asks for URLs for a few chunks at a
// time (flow.js's preprocess option), then sends each chunk with its URL
// (flow.js's target option, method octet) to the store instead of the API;
// the test GET and the status stay here. A URL request is checked exactly
// as a chunk POST is (fields, geometry, limits, names, the allow-list,
// authentication), for each chunk, before any URL exists; it begins the
// upload (its record, and so the generation its chunks go under), and each
// URL can store exactly its chunk, of its size and checksum, once, for
// URLLife.
//
// The request, JSON:
//
//	{"fields": {"flowIdentifier": "…", "flowFilename": "…", …},      fields every chunk shares
//	 "contentType": "image/png",                                      the file's type (optional)
//	 "chunks": [{"flowChunkNumber": "1", "flowCurrentChunkSize": "8388608",
//	             "checksumCrc64nvme": "<base64 of 8 bytes>"}, …]}      at most MaxURLsPerRequest
//
// Every field of a chunk (its own and the shared ones, strings or
// integers) is one the client's library will append to the URL, exactly as
// given: they are signed into the URL, and only the library's own fields
// may be. The CRC-64/NVME of each chunk's bytes is required: the store
// refuses other bytes. The answer:
//
//	{"expires": "2026-01-01T00:15:00Z", "resumed": false,
//	 "chunks": [{"chunk": 1, "url": "https://…", "method": "PUT", "headers": {"If-None-Match": "*", …}},
//	            {"chunk": 2, "present": true}]}
//
// "present" means the chunk needs no sending (it is counted, or the upload
// is past receiving); the client's test GET says so too. "resumed" means
// the upload was under way before this request: a chunk not counted yet
// may be stored all the same (its notification not handled yet), which the
// test GET finds out (and counts), so a client that resumes tests every
// chunk before sending it; a client starting a new upload need not.

// Direct configures the direct data path of a Handler.
type Direct struct {
	// URLLife is how long a chunk URL works; 0 means DefaultURLLife.
	URLLife time.Duration
	// ChunkSize is the chunk size clients are told to use; 0 means
	// DefaultDirectChunkSize (never more than the limit).
	ChunkSize int64
}

const (
	// DefaultURLLife is a chunk URL's life: long enough to send a large
	// chunk on a slow line, short enough that a leaked URL is worth little.
	DefaultURLLife = 15 * time.Minute
	// DefaultDirectChunkSize is the chunk size suggested with the direct
	// data path: at least S3's 5 MiB part minimum, so that the assembly
	// copies each chunk inside S3, and large enough that the requests per
	// GiB (which is what costs) are few.
	DefaultDirectChunkSize = 8 << 20
	// MaxURLsPerRequest bounds the chunks of one URL request.
	MaxURLsPerRequest = 100
	// maxURLRequestBytes bounds a URL request's body: 100 chunks of a few
	// fields, and the shared fields with a long relative path.
	maxURLRequestBytes = 256 << 10
)

// Data paths, as GET /upload/config names them.
const (
	DataPathProxy  = "proxy"
	DataPathDirect = "direct"
)

func (d *Direct) urlLife() time.Duration {
	if d.URLLife > 0 {
		return d.URLLife
	}
	return DefaultURLLife
}

// serverConfig answers GET /upload/config.
func (h *Handler) serverConfig(w *statusWriter, r *http.Request) {
	if _, ok := h.namespace(w, r); !ok {
		return
	}
	cfg := map[string]any{"dataPath": DataPathProxy, "maxChunkSize": h.Limits.MaxChunkSize, "maxFileSize": h.Limits.MaxFileSize}
	if d := h.Direct; d != nil {
		size := d.ChunkSize
		if size <= 0 {
			size = DefaultDirectChunkSize
		}
		if h.Limits.MaxChunkSize > 0 {
			size = min(size, h.Limits.MaxChunkSize)
		}
		cfg["dataPath"] = DataPathDirect
		cfg["chunkSize"] = size
		cfg["maxUrlsPerRequest"] = MaxURLsPerRequest
		cfg["urlLifeSeconds"] = int(d.urlLife().Seconds())
	}
	writeJSON(w, http.StatusOK, cfg)
}

type urlsRequest struct {
	Fields      map[string]any   `json:"fields"`
	ContentType string           `json:"contentType"`
	Chunks      []map[string]any `json:"chunks"`
}

type urlAnswer struct {
	Chunk   int               `json:"chunk"`
	Present bool              `json:"present,omitempty"`
	URL     string            `json:"url,omitempty"`
	Method  string            `json:"method,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
}

// directChunk is one chunk of a URL request, checked.
type directChunk struct {
	protocol.Chunk
	fields []upload.Field // what the client will append, to sign
	crc64  string         // its CRC-64/NVME, as S3 writes it
}

// urls answers POST /upload/urls.
func (h *Handler) urls(w *statusWriter, r *http.Request) {
	ns, ok := h.namespace(w, r)
	if !ok {
		return
	}
	if h.Direct == nil {
		w.refuse(http.StatusConflict, "", "this server takes chunks at POST /upload, not with URLs: its data path is proxy (see GET /upload/config)")
		return
	}
	var req urlsRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxURLRequestBytes))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			h.fail(w, r, err)
			return
		}
		h.fail(w, r, badRequest("the body must be a JSON object with fields and chunks: "+clip(err.Error())))
		return
	}
	switch {
	case len(req.Chunks) == 0:
		h.fail(w, r, badRequest("no chunks asked for"))
		return
	case len(req.Chunks) > MaxURLsPerRequest:
		h.fail(w, r, &upload.InputError{Kind: upload.TooLarge, Msg: fmt.Sprintf("at most %d chunks per request", MaxURLsPerRequest)})
		return
	}
	chunks, err := h.directChunks(w, req, ns)
	if len(chunks) > 0 {
		setUpload(r, chunks[0].Key)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	info := chunks[0].Info
	if info.ContentType == "" {
		info.ContentType = upload.ContentType(req.ContentType)
	}
	if err := h.allowed(info); err != nil {
		h.fail(w, r, err)
		return
	}
	numbers := make([]int, len(chunks))
	for i, c := range chunks {
		numbers[i] = c.Number
	}
	life := h.Direct.urlLife()
	begun, err := h.Service.Begin(r.Context(), info, numbers, life)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	answers := make([]urlAnswer, len(chunks))
	var expires time.Time
	for i, c := range chunks {
		answers[i].Chunk = c.Number
		if begun.State.PastReceiving() || slices.Contains(begun.Counted, c.Number) {
			answers[i].Present = true
			continue
		}
		u, err := h.Service.SignChunk(r.Context(), info, begun.Generation, c.Number, c.fields, c.crc64, life)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		answers[i].URL, answers[i].Method, answers[i].Headers = u.URL, u.Method, u.Headers
		expires = u.Expires
	}
	out := map[string]any{"chunks": answers, "resumed": !begun.Created}
	if !expires.IsZero() {
		out["expires"] = expires.UTC().Format(time.RFC3339)
	}
	writeJSON(w, http.StatusOK, out)
}

// directChunks checks each chunk of a URL request as a chunk POST is
// checked, and that they are all of one file.
func (h *Handler) directChunks(w *statusWriter, req urlsRequest, ns string) ([]directChunk, error) {
	shared, err := stringFields(req.Fields)
	if err != nil {
		return nil, err
	}
	out := make([]directChunk, 0, len(req.Chunks))
	for i, c := range req.Chunks {
		own, err := stringFields(c)
		if err != nil {
			return out, err
		}
		all := map[string]string{}
		for k, v := range shared {
			all[k] = v
		}
		for k, v := range own {
			if sv, dup := shared[k]; dup && sv != v {
				return out, badRequest(fmt.Sprintf("chunk %d: field %s differs from the shared one", i+1, clip(k)))
			}
			all[k] = v
		}
		names := make([]string, 0, len(all))
		for k := range all {
			names = append(names, k)
		}
		get := func(k string) (string, bool) { v, ok := all[k]; return v, ok }
		d, err := w.detect(names, get)
		if err != nil {
			return out, err
		}
		pc, err := d.ParseChunk(get, ns, h.Limits)
		if err != nil {
			return out, err
		}
		if len(out) > 0 && pc.Key != out[0].Key {
			return out, badRequest("the chunks of one request must be of one file")
		}
		for _, o := range out {
			if o.Number == pc.Number {
				return out, badRequest(fmt.Sprintf("chunk %d asked for twice", pc.Number))
			}
		}
		digests, err := d.ParseDigests(get)
		if err != nil {
			return out, err
		}
		if digests.CRC64NVME == nil || digests.SHA256 != nil || digests.CRC32C != nil {
			return out, badRequest(fmt.Sprintf("chunk %d: give its %s, and no other checksum: the store checks the chunk against it", pc.Number, d.Prefix+protocol.FieldChecksumCRC64NVME))
		}
		dc := directChunk{Chunk: pc, crc64: checksum.Encode(*digests.CRC64NVME)}
		libFields := d.Names()
		for _, k := range names {
			switch {
			case k == d.Prefix+protocol.FieldChecksumCRC64NVME:
				continue // a header of the PUT, not a field of its URL
			case !slices.Contains(libFields, k):
				return out, badRequest(fmt.Sprintf("field %s is not one of %s's: only the library's own fields are signed into a chunk URL", clip(k), d.Library))
			case len(all[k]) > h.maxFieldBytes():
				return out, badRequest("field " + strconv.Quote(clip(k)) + " is too long")
			}
			dc.fields = append(dc.fields, upload.Field{Name: k, Value: all[k]})
		}
		slices.SortFunc(dc.fields, func(a, b upload.Field) int { return strings.Compare(a.Name, b.Name) })
		out = append(out, dc)
	}
	return out, nil
}

// stringFields reads a JSON object of fields: strings, or integers, which
// are written as JavaScript writes them (flow.js appends numbers so).
func stringFields(m map[string]any) (map[string]string, error) {
	out := make(map[string]string, len(m))
	for k, v := range m {
		switch v := v.(type) {
		case string:
			out[k] = v
		case json.Number:
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				return nil, badRequest("field " + strconv.Quote(clip(k)) + " must be a string or an integer")
			}
			out[k] = strconv.FormatInt(n, 10)
		default:
			return nil, badRequest("field " + strconv.Quote(clip(k)) + " must be a string or an integer")
		}
	}
	return out, nil
}
