package flowclient

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// DefaultChunkSize is flow.js's default chunkSize option (1 MiB).
const DefaultChunkSize = 1 << 20

// The fields flow.js sends with every request (FlowChunk.getParams).
const (
	FieldChunkNumber      = "flowChunkNumber"
	FieldChunkSize        = "flowChunkSize"
	FieldCurrentChunkSize = "flowCurrentChunkSize"
	FieldTotalSize        = "flowTotalSize"
	FieldIdentifier       = "flowIdentifier"
	FieldFilename         = "flowFilename"
	FieldRelativePath     = "flowRelativePath"
	FieldTotalChunks      = "flowTotalChunks"
)

// Field is one name=value pair. Requests carry fields in a fixed order, the
// order flow.js builds them in, so that a server reading fields by position
// (a bug this client is meant to expose) reads them as a browser would send them.
type Field struct {
	Name, Value string
}

// Geometry is how flow.js cuts one file into chunks and names it.
type Geometry struct {
	Size           int64
	ChunkSize      int64
	ForceChunkSize bool
	TotalChunks    int
	Identifier     string
	Filename       string
	RelativePath   string
}

// NewGeometry computes the geometry flow.js 2.14.1 would use for a file of
// size bytes called name, uploaded with opts.
func NewGeometry(opts Options, size int64, name string) (Geometry, error) {
	if size < 0 {
		return Geometry{}, fmt.Errorf("flowclient: negative file size %d", size)
	}
	cs := opts.ChunkSize
	if cs == 0 {
		cs = DefaultChunkSize
	}
	if cs < 0 {
		return Geometry{}, fmt.Errorf("flowclient: negative chunk size %d", cs)
	}
	if name == "" {
		return Geometry{}, errors.New("flowclient: empty file name")
	}
	// FlowFile: relativePath = file.relativePath || file.webkitRelativePath || name.
	rel := opts.RelativePath
	if rel == "" {
		rel = name
	}
	id := opts.Identifier
	if id == "" {
		id = DefaultIdentifier(size, rel)
	}
	return Geometry{
		Size:           size,
		ChunkSize:      cs,
		ForceChunkSize: opts.ForceChunkSize,
		TotalChunks:    TotalChunks(size, cs, opts.ForceChunkSize),
		Identifier:     id,
		Filename:       name,
		RelativePath:   rel,
	}, nil
}

// TotalChunks is FlowFile.bootstrap: max(round(size/chunkSize), 1) where round
// is floor, or ceil with forceChunkSize. A file smaller than one chunk, even an
// empty one, is one chunk.
func TotalChunks(size, chunkSize int64, force bool) int {
	n := size / chunkSize
	if force && size%chunkSize != 0 {
		n++
	}
	return int(max(n, 1))
}

var notIdentifierChar = regexp.MustCompile(`[^0-9a-zA-Z_-]`)

// DefaultIdentifier is Flow.generateUniqueIdentifier without a custom
// function: size + "-" + the relative path (or name) with every character
// outside [0-9a-zA-Z_-] removed. Two different files of the same size and name
// get the same identifier, which is why servers need namespaces.
func DefaultIdentifier(size int64, relativePathOrName string) string {
	return strconv.FormatInt(size, 10) + "-" + notIdentifierChar.ReplaceAllString(relativePathOrName, "")
}

// Bounds returns the byte range [start, end) of chunk n (1-based). It is
// FlowChunk.computeEndByte: every chunk is ChunkSize long, except that without
// forceChunkSize a chunk followed by less than ChunkSize bytes runs to the end
// of the file (so the last chunk is up to 2*ChunkSize-1 bytes), and with it the
// last chunk is whatever is left.
func (g Geometry) Bounds(n int) (start, end int64) {
	offset := int64(n - 1)
	start = offset * g.ChunkSize
	end = min(g.Size, (offset+1)*g.ChunkSize)
	if g.Size-end < g.ChunkSize && !g.ForceChunkSize {
		end = g.Size
	}
	return start, end
}

// Params are the fields of chunk n, in FlowChunk.getParams order.
func (g Geometry) Params(n int) []Field {
	start, end := g.Bounds(n)
	return []Field{
		{FieldChunkNumber, strconv.Itoa(n)},
		{FieldChunkSize, strconv.FormatInt(g.ChunkSize, 10)},
		{FieldCurrentChunkSize, strconv.FormatInt(end-start, 10)},
		{FieldTotalSize, strconv.FormatInt(g.Size, 10)},
		{FieldIdentifier, g.Identifier},
		{FieldFilename, g.Filename},
		{FieldRelativePath, g.RelativePath},
		{FieldTotalChunks, strconv.Itoa(g.TotalChunks)},
	}
}

// StatusParams are the fields that name the upload as a whole: those of a test
// GET without the two that belong to one chunk.
func (g Geometry) StatusParams() []Field {
	var out []Field
	for _, f := range g.Params(1) {
		if f.Name != FieldChunkNumber && f.Name != FieldCurrentChunkSize {
			out = append(out, f)
		}
	}
	return out
}

// withExtras is flow.js's extend(query, getParams()): the extra fields (the
// `query` option) come first, in sorted key order since a Go map has none, and
// the flow fields follow; a flow field wins over an extra of the same name
// and, as in a JavaScript object, keeps the extra's position.
func withExtras(extras map[string]string, params []Field) []Field {
	if len(extras) == 0 {
		return params
	}
	flow := make(map[string]string, len(params))
	for _, p := range params {
		flow[p.Name] = p.Value
	}
	keys := make([]string, 0, len(extras))
	for k := range extras {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]Field, 0, len(keys)+len(params))
	placed := make(map[string]bool)
	for _, k := range keys {
		if v, ok := flow[k]; ok {
			out = append(out, Field{k, v})
			placed[k] = true
			continue
		}
		out = append(out, Field{k, extras[k]})
	}
	for _, p := range params {
		if !placed[p.Name] {
			out = append(out, p)
		}
	}
	return out
}

// encodeQuery joins fields as FlowChunk.prepareXhrRequest does:
// encodeURIComponent(k) + "=" + encodeURIComponent(v), joined by "&".
func encodeQuery(fields []Field) string {
	parts := make([]string, len(fields))
	for i, f := range fields {
		parts[i] = encodeURIComponent(f.Name) + "=" + encodeURIComponent(f.Value)
	}
	return strings.Join(parts, "&")
}

// encodeURIComponent escapes every UTF-8 byte except A-Z a-z 0-9 - _ . ! ~ * ' ( ),
// exactly like JavaScript's function of that name (space is %20, not +).
func encodeURIComponent(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("-_.!~*'()", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// withQuery is FlowChunk.getTarget: append the query to target with "?" or,
// if target already has a query, "&".
func withQuery(target, query string) string {
	if query == "" {
		return target
	}
	if strings.Contains(target, "?") {
		return target + "&" + query
	}
	return target + "?" + query
}
