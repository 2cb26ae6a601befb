package upload

import (
	"fmt"
	"mime"
	"path"
	"strings"
)

// What makes a finished file servable as it is: the type a browser gave
// it, a Content-Disposition that names it, and the allow-list that decides
// which files are taken at all.

// DefaultContentType is the type of a file whose type is unknown or not a
// well-formed MIME type.
const DefaultContentType = "application/octet-stream"

// maxContentTypeBytes bounds a content type (Resumable.js's field is
// bounded the same).
const maxContentTypeBytes = 255

// ContentType turns what a client said of a file's type into the type the
// finished file is served with: a well-formed MIME type, lowercased, with its
// parameters re-quoted, or DefaultContentType. A type the browser did not
// know (empty) is DefaultContentType too.
func ContentType(declared string) string {
	declared = strings.TrimSpace(declared)
	if declared == "" || len(declared) > maxContentTypeBytes {
		return DefaultContentType
	}
	for i := 0; i < len(declared); i++ {
		// A header value: printable ASCII only.
		if declared[i] < 0x20 || declared[i] >= 0x7f {
			return DefaultContentType
		}
	}
	mt, params, err := mime.ParseMediaType(declared)
	if err != nil || !strings.Contains(mt, "/") || strings.HasSuffix(mt, "/") || strings.HasPrefix(mt, "/") || strings.Count(mt, "/") != 1 {
		return DefaultContentType
	}
	out := mime.FormatMediaType(mt, params)
	if out == "" || len(out) > maxContentTypeBytes {
		return DefaultContentType
	}
	return out
}

// Disposition modes of the finished file (FLOWGATE_CONTENT_DISPOSITION).
const (
	// DispositionAttachment: a browser that opens the file's URL saves it
	// under its name. The default: a page, SVG or script that a user
	// uploaded never runs in the site's origin.
	DispositionAttachment = "attachment"
	// DispositionInline: a browser shows it (images, PDF, video), which a
	// site that serves its own users' files from a separate origin may want.
	DispositionInline = "inline"
)

// ContentDisposition is the Content-Disposition header of a finished file
// named name (RFC 6266): the name as an ASCII fallback in filename=, and,
// when it is not plain ASCII, exactly in filename*= (RFC 8187's UTF-8
// percent-encoding), which every current browser prefers.
func ContentDisposition(mode, name string) string {
	if mode != DispositionInline {
		mode = DispositionAttachment
	}
	if name == "" {
		return mode
	}
	var fallback strings.Builder
	plain := true
	for _, r := range name {
		switch {
		case r >= 0x20 && r < 0x7f && r != '"' && r != '\\' && r != '%':
			fallback.WriteRune(r)
		default:
			fallback.WriteByte('_')
			plain = false
		}
	}
	h := mode + `; filename="` + fallback.String() + `"`
	if !plain {
		h += "; filename*=UTF-8''" + encodeRFC8187(name)
	}
	return h
}

// encodeRFC8187 percent-encodes everything but RFC 8187's attr-char.
func encodeRFC8187(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$&+-.^_`|~", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// AllowList is which files are taken (FLOWGATE_ALLOWED_TYPES): MIME types
// ("image/png"), whole families ("image/*") and file name extensions
// (".pdf"), compared case-insensitively. With types listed, a file's type
// must be one of them; with extensions listed, its name must end with one;
// with both, both. The zero AllowList takes every file.
type AllowList struct {
	types []string // "image/png", or "image/" for image/*
	exts  []string // ".pdf"
}

// ParseAllowList reads a comma-separated list; an empty one allows all.
func ParseAllowList(s string) (AllowList, error) {
	var a AllowList
	for _, e := range strings.Split(s, ",") {
		e = strings.ToLower(strings.TrimSpace(e))
		switch {
		case e == "":
		case strings.HasPrefix(e, "."):
			if len(e) < 2 || strings.ContainsAny(e[1:], "./\\ *") {
				return AllowList{}, fmt.Errorf("%q is not an extension such as .pdf", e)
			}
			a.exts = append(a.exts, e)
		case strings.HasSuffix(e, "/*"):
			family := strings.TrimSuffix(e, "*")
			if strings.Contains(family, "*") || ContentType(family+"x") != family+"x" {
				return AllowList{}, fmt.Errorf("%q is not a type family such as image/*", e)
			}
			a.types = append(a.types, family)
		default:
			if ContentType(e) != e || strings.ContainsAny(e, ";*") {
				return AllowList{}, fmt.Errorf("%q is not a MIME type such as image/png, a family such as image/*, or an extension such as .pdf", e)
			}
			a.types = append(a.types, e)
		}
	}
	return a, nil
}

// Empty reports whether every file is allowed.
func (a AllowList) Empty() bool { return len(a.types) == 0 && len(a.exts) == 0 }

// String lists what is allowed, for messages.
func (a AllowList) String() string {
	var all []string
	for _, t := range a.types {
		if strings.HasSuffix(t, "/") {
			t += "*"
		}
		all = append(all, t)
	}
	return strings.Join(append(all, a.exts...), ", ")
}

// CheckName refuses a file whose name's extension is not allowed (the
// part of the check a test GET can make: it carries the name, not the type).
func (a AllowList) CheckName(name string) error {
	if len(a.exts) == 0 || name == "" {
		return nil
	}
	ext := strings.ToLower(path.Ext(name))
	for _, e := range a.exts {
		if ext == e {
			return nil
		}
	}
	return a.refuse(fmt.Sprintf("files named %q are not accepted here", clipName(name)))
}

// CheckType refuses a file whose type (as ContentType gives it) is not
// allowed.
func (a AllowList) CheckType(contentType string) error {
	if len(a.types) == 0 {
		return nil
	}
	mt, _, _ := strings.Cut(contentType, ";")
	for _, t := range a.types {
		if mt == t || strings.HasSuffix(t, "/") && strings.HasPrefix(mt, t) {
			return nil
		}
	}
	return a.refuse(fmt.Sprintf("files of type %s are not accepted here", mt))
}

// refuse is 415, which flow.js and Resumable.js both take as final: the
// file fails at once, with this message.
func (a AllowList) refuse(why string) error {
	return &InputError{Kind: Unsupported, Msg: why + " (allowed: " + a.String() + ")"}
}

func clipName(s string) string {
	if len(s) > 60 {
		return truncateUTF8(s, 60) + "…"
	}
	return s
}
