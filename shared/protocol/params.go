// Package protocol reads and checks the fields flow.js 2.x and Resumable.js
// 1.x send with every test GET, chunk POST and status request. It knows
// nothing of HTTP bodies or storage: it tells which library named the fields
// (Detect), then turns their values into a validated upload.Info and a chunk
// number, or into an *upload.InputError that says what is wrong in the
// client's own field names.
package protocol

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/flowgate/flowgate/shared/upload"
)

// The fields flow.js sends (FlowChunk.getParams in flow.js 2.14.1).
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

// IsFlowField reports whether name is one of the fields above.
func IsFlowField(name string) bool {
	switch name {
	case FieldChunkNumber, FieldChunkSize, FieldCurrentChunkSize, FieldTotalSize,
		FieldIdentifier, FieldFilename, FieldRelativePath, FieldTotalChunks:
		return true
	}
	return false
}

// Limits are the configured bounds a request is checked against.
type Limits struct {
	MaxFileSize  int64 // bytes of a whole file
	MaxChunkSize int64 // bytes of one chunk as sent (the last one included)
	MaxChunks    int   // chunks of one file
}

// Bounds on names. A file name of more than 255 bytes cannot exist on common
// file systems; a relative path is a few of them.
const (
	MaxIdentifierBytes   = 255
	MaxFilenameBytes     = 255
	MaxRelativePathBytes = 1024
	// MaxTypeBytes bounds Resumable.js's resumableType, a MIME type.
	MaxTypeBytes = 255
)

// Fields looks a field up by name; ok is false when the client did not send it.
type Fields func(name string) (value string, ok bool)

// Chunk is one validated chunk request.
type Chunk struct {
	upload.Info
	Number int   // 1-based
	Offset int64 // where the chunk starts in the file
	Size   int64 // bytes the chunk must carry
	// Digests are the checksums the client sent for the chunk (see
	// checksums.go), read by ParseDigests: only a POST has a chunk to check.
	Digests upload.Digests
}

// ParseChunk validates the fields of a test GET or a chunk POST, named as
// flow.js names them.
func ParseChunk(get Fields, namespace string, lim Limits) (Chunk, error) {
	return Flow.ParseChunk(get, namespace, lim)
}

// ParseUpload validates the fields that name an upload, named as flow.js
// names them, for the status request.
func ParseUpload(get Fields, namespace string, lim Limits) (upload.Info, error) {
	return Flow.ParseUpload(get, namespace, lim)
}

// ParseChunk validates the fields of a test GET or a chunk POST.
func (d Dialect) ParseChunk(get Fields, namespace string, lim Limits) (Chunk, error) {
	info, err := d.parseInfo(get, namespace, lim, true)
	if err != nil {
		return Chunk{}, err
	}
	n, err := number(get, d.name(fChunkNumber), true)
	if err != nil {
		return Chunk{}, err
	}
	if n < 1 || n > int64(info.TotalChunks) {
		return Chunk{}, bad("%s must be between 1 and %d", d.name(fChunkNumber), info.TotalChunks)
	}
	c := Chunk{Info: info, Number: int(n)}
	c.Offset, c.Size = info.ChunkBounds(c.Number)
	declared, err := number(get, d.name(fCurrentChunkSize), true)
	if err != nil {
		return Chunk{}, err
	}
	if declared != c.Size {
		return Chunk{}, bad("%s is %d, but chunk %d of this file has %d bytes", d.name(fCurrentChunkSize), declared, c.Number, c.Size)
	}
	if c.Size > lim.MaxChunkSize {
		return Chunk{}, tooLarge("chunk of %d bytes is over the limit of %d bytes; use a smaller chunkSize", c.Size, lim.MaxChunkSize)
	}
	return c, nil
}

// ParseUpload validates the fields that name an upload, for the status
// request: the same as a test GET, with the chunk fields and file name optional.
func (d Dialect) ParseUpload(get Fields, namespace string, lim Limits) (upload.Info, error) {
	return d.parseInfo(get, namespace, lim, false)
}

func (d Dialect) parseInfo(get Fields, namespace string, lim Limits, needName bool) (upload.Info, error) {
	var info upload.Info
	idField := d.name(fIdentifier)
	id, ok := get(idField)
	if !ok || id == "" {
		return info, bad("missing %s", idField)
	}
	if err := checkIdentifier(idField, id); err != nil {
		return info, err
	}
	total, err := number(get, d.name(fTotalSize), true)
	if err != nil {
		return info, err
	}
	if total > lim.MaxFileSize {
		return info, tooLarge("file of %d bytes is over the limit of %d bytes", total, lim.MaxFileSize)
	}
	chunkSize, err := number(get, d.name(fChunkSize), true)
	if err != nil {
		return info, err
	}
	if chunkSize < 1 {
		return info, bad("%s must be at least 1", d.name(fChunkSize))
	}
	chunks, err := number(get, d.name(fTotalChunks), true)
	if err != nil {
		return info, err
	}
	// flow.js and Resumable.js count max(floor(size/chunkSize), 1) chunks,
	// or the ceiling of that with forceChunkSize: true. Either is fine;
	// anything else is a lie about the file.
	floor := max(total/chunkSize, 1)
	ceil := max((total+chunkSize-1)/chunkSize, 1)
	if chunks != floor && chunks != ceil {
		return info, bad("%s is %d, but a file of %d bytes in chunks of %d has %d (or %d with forceChunkSize)",
			d.name(fTotalChunks), chunks, total, chunkSize, floor, ceil)
	}
	if chunks > int64(lim.MaxChunks) {
		return info, tooLarge("file of %d chunks is over the limit of %d chunks; use a larger chunkSize", chunks, lim.MaxChunks)
	}

	nameField := d.name(fFilename)
	name, ok := get(nameField)
	if !ok {
		name = ""
	}
	if ok || needName {
		if err := checkFilename(nameField, name); err != nil {
			return info, err
		}
	}
	relField := d.name(fRelativePath)
	rel, ok := get(relField)
	if !ok || rel == "" {
		rel = name
	} else if err := checkRelativePath(relField, rel); err != nil {
		return info, err
	}
	var contentType string
	if typeField := d.name(fType); typeField != "" {
		// Resumable.js sends the file's MIME type (empty when the browser
		// does not know it): the finished file's type. flow.js sends none;
		// the HTTP layer takes the type of the chunk's body instead.
		if t, ok := get(typeField); ok {
			if err := checkType(typeField, t); err != nil {
				return info, err
			}
			if t != "" {
				contentType = upload.ContentType(t)
			}
		}
	}

	info = upload.Info{
		Key:          upload.UploadKey(namespace, id, total, chunkSize, int(chunks)),
		Namespace:    namespace,
		Identifier:   id,
		FileName:     name,
		RelativePath: rel,
		TotalSize:    total,
		ChunkSize:    chunkSize,
		TotalChunks:  int(chunks),
		ContentType:  contentType,
	}
	return info, nil
}

// number reads a field as a non-negative decimal integer. flow.js sends plain
// digits; signs, spaces, exponents and hex are refused rather than guessed at.
func number(get Fields, field string, required bool) (int64, error) {
	s, ok := get(field)
	if !ok || s == "" {
		if required {
			return 0, bad("missing %s", field)
		}
		return -1, nil
	}
	if len(s) > 18 {
		return 0, bad("%s is too large", field)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, bad("%s must be a whole number, not %q", field, clip(s))
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, bad("%s must be a whole number, not %q", field, clip(s))
	}
	return v, nil
}

// checkIdentifier: the identifier is hashed, never used as a name, but odd
// bytes in it are still a sign of a broken or hostile client.
func checkIdentifier(field, id string) error {
	if len(id) > MaxIdentifierBytes {
		return bad("%s is longer than %d bytes", field, MaxIdentifierBytes)
	}
	if err := checkText(field, id); err != nil {
		return err
	}
	if strings.ContainsAny(id, `/\`) {
		return bad("%s must not contain / or \\", field)
	}
	return nil
}

func checkFilename(field, name string) error {
	if name == "" {
		return bad("missing %s", field)
	}
	if len(name) > MaxFilenameBytes {
		return bad("%s is longer than %d bytes", field, MaxFilenameBytes)
	}
	if err := checkText(field, name); err != nil {
		return err
	}
	if strings.ContainsAny(name, `/\`) {
		return bad("%s must be a name, not a path", field)
	}
	if name == "." || name == ".." {
		return bad("%s must be a name, not %q", field, name)
	}
	return nil
}

// checkRelativePath accepts what a browser gives for a file picked inside a
// folder ("photos/2024/a.jpg") and nothing that could climb out of a folder or
// start at a root.
func checkRelativePath(field, p string) error {
	if len(p) > MaxRelativePathBytes {
		return bad("%s is longer than %d bytes", field, MaxRelativePathBytes)
	}
	if err := checkText(field, p); err != nil {
		return err
	}
	if strings.Contains(p, `\`) {
		return bad("%s must use / between folders", field)
	}
	if strings.HasPrefix(p, "/") || hasDrive(p) {
		return bad("%s must be relative", field)
	}
	for _, seg := range strings.Split(p, "/") {
		switch seg {
		case "":
			return bad("%s has an empty folder name", field)
		case ".", "..":
			return bad("%s must not contain . or .. folders", field)
		}
		if len(seg) > MaxFilenameBytes {
			return bad("%s has a name longer than %d bytes", field, MaxFilenameBytes)
		}
	}
	return nil
}

// checkType accepts a MIME type as a browser gives it for a file (File.type,
// empty when unknown).
func checkType(field, t string) error {
	if len(t) > MaxTypeBytes {
		return bad("%s is longer than %d bytes", field, MaxTypeBytes)
	}
	return checkText(field, t)
}

// hasDrive spots a Windows drive prefix such as "C:".
func hasDrive(p string) bool {
	return len(p) >= 2 && p[1] == ':' && (p[0]|0x20) >= 'a' && (p[0]|0x20) <= 'z'
}

// checkText refuses invalid UTF-8 and control characters (NUL, newlines,
// escapes, the C1 range and the Unicode format characters that reorder text).
func checkText(field, s string) error {
	if !utf8.ValidString(s) {
		return bad("%s is not valid UTF-8", field)
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return bad("%s must not contain control characters", field)
		}
	}
	return nil
}

func clip(s string) string {
	if len(s) > 24 {
		return s[:24] + "…"
	}
	return s
}

func bad(format string, args ...any) error {
	return &upload.InputError{Kind: upload.BadInput, Msg: fmt.Sprintf(format, args...)}
}

func tooLarge(format string, args ...any) error {
	return &upload.InputError{Kind: upload.TooLarge, Msg: fmt.Sprintf(format, args...)}
}
