package protocol

import (
	"sort"
	"strconv"
	"strings"
)

// Library is the client library whose field names a request uses.
type Library int

const (
	// FlowJS names its fields flowChunkNumber, flowIdentifier, ...
	FlowJS Library = iota
	// ResumableJS, flow.js's ancestor, names the same fields
	// resumableChunkNumber, resumableIdentifier, ..., adds resumableType
	// (the file's MIME type), and puts its parameterNamespace option in
	// front of every name.
	ResumableJS
)

func (l Library) String() string {
	if l == ResumableJS {
		return "Resumable.js"
	}
	return "flow.js"
}

// field is one of the protocol's fields, whatever a library calls it.
type field int

const (
	fChunkNumber field = iota
	fChunkSize
	fCurrentChunkSize
	fTotalSize
	fIdentifier
	fFilename
	fRelativePath
	fTotalChunks
	fType // Resumable.js only: the file's MIME type
	nFields
)

// Each library's name for each field; "" where it has none.
var names = [2][nFields]string{
	FlowJS: {FieldChunkNumber, FieldChunkSize, FieldCurrentChunkSize, FieldTotalSize,
		FieldIdentifier, FieldFilename, FieldRelativePath, FieldTotalChunks, ""},
	ResumableJS: {"resumableChunkNumber", "resumableChunkSize", "resumableCurrentChunkSize", "resumableTotalSize",
		"resumableIdentifier", "resumableFilename", "resumableRelativePath", "resumableTotalChunks", "resumableType"},
}

// MaxPrefixBytes bounds a Resumable.js parameterNamespace. The prefix only
// ever serves to look fields up; a long one is a sign of a broken client.
const MaxPrefixBytes = 64

// Dialect is how a request names its fields: flow.js's names, or
// Resumable.js's after the prefix its parameterNamespace option adds
// (usually none). Field values mean the same in both: the upload key of a
// file is the same whichever library sends it, so a file started by one can
// be resumed by the other.
type Dialect struct {
	Library Library
	Prefix  string // Resumable.js's parameterNamespace; always "" for flow.js
}

// Flow is flow.js's dialect, the default of a request that names no field
// of either library.
var Flow = Dialect{Library: FlowJS}

func (d Dialect) name(f field) string {
	n := names[d.Library][f]
	if n == "" {
		return ""
	}
	return d.Prefix + n
}

// Names lists the names of the dialect's fields.
func (d Dialect) Names() []string {
	var out []string
	for f := field(0); f < nFields; f++ {
		if n := d.name(f); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// CurrentChunkSizeField is the name of the field that declares the chunk's
// size, for messages about a body that disagrees with it.
func (d Dialect) CurrentChunkSizeField() string { return d.name(fCurrentChunkSize) }

// IsField reports whether name is a field of either library, after any
// prefix: the fields a request must not carry twice.
func IsField(name string) bool {
	_, ok := resumablePrefix(name)
	return ok || IsFlowField(name)
}

// resumablePrefix splits a name ending in one of Resumable.js's field names
// into the prefix before it.
func resumablePrefix(name string) (string, bool) {
	for _, n := range names[ResumableJS] {
		if strings.HasSuffix(name, n) {
			return name[:len(name)-len(n)], true
		}
	}
	return "", false
}

// FilePart reports whether a multipart part named name carries the chunk,
// where base is the part name client libraries use (their
// fileParameterName option, "file" by default): a part named base, or
// prefix+base from Resumable.js, which puts its parameterNamespace in front
// of the file part's name too, when the request also has
// prefix+"resumableIdentifier" (has looks a field up among those read so far
// and the query string; Resumable.js sends its fields before the file, and
// in the query string as well).
func FilePart(name, base string, has func(name string) bool) bool {
	if name == base {
		return true
	}
	prefix, ok := strings.CutSuffix(name, base)
	return ok && has(prefix+names[ResumableJS][fIdentifier])
}

// Detect tells which library named the fields of a request, from the names
// of every field it carries (query string and form together) and a way to
// read their values.
//
// A request with Resumable.js's names is Resumable.js's, whatever prefix its
// parameterNamespace put in front of them (found from the names themselves:
// the prefix of the resumableIdentifier field, or of any other of its fields
// when that one is missing); one with flow.js's names, or with neither, is
// flow.js's. A request that carries fields of both is refused unless every
// field it gives in one family it also gives in the other with the same
// value (a page adding the other library's fields through its `query`
// option, say); such a request is taken as Resumable.js's. Fields of two
// different prefixes are refused too. Nothing else of the request is
// checked here: ParseChunk and ParseUpload do that.
func Detect(fieldNames []string, get Fields) (Dialect, error) {
	prefixes := map[string]bool{}
	withID := map[string]bool{} // prefixes of a resumableIdentifier field
	for _, n := range fieldNames {
		if p, ok := resumablePrefix(n); ok {
			prefixes[p] = true
			if strings.HasSuffix(n, names[ResumableJS][fIdentifier]) {
				withID[p] = true
			}
		}
	}
	if len(prefixes) == 0 {
		return Flow, nil
	}
	var prefix string
	switch {
	case len(prefixes) == 1:
		for p := range prefixes {
			prefix = p
		}
	case len(withID) == 1:
		// Another name merely ends like a Resumable.js field (a custom
		// `query` field, say): the identifier's prefix is the one.
		for p := range withID {
			prefix = p
		}
	default:
		list := make([]string, 0, len(prefixes))
		for p := range prefixes {
			list = append(list, strconv.Quote(clip(p)))
		}
		sort.Strings(list)
		return Flow, bad("Resumable.js fields with more than one parameterNamespace prefix: %s", strings.Join(list, ", "))
	}
	if len(prefix) > MaxPrefixBytes {
		return Flow, bad("Resumable.js parameterNamespace %q is longer than %d bytes", clip(prefix), MaxPrefixBytes)
	}
	if err := checkText("Resumable.js parameterNamespace", prefix); err != nil {
		return Flow, err
	}
	d := Dialect{Library: ResumableJS, Prefix: prefix}
	flowAny := anyFlowField(get)
	for f := field(0); f < nFields; f++ {
		fn, rn := Flow.name(f), d.name(f)
		if fn == "" {
			continue
		}
		_, fok := get(fn)
		_, rok := get(rn)
		if fok && !rok {
			return Flow, bad("request mixes flow.js and Resumable.js fields: it has %s but not %s; send one library's fields only", fn, rn)
		}
		if rok && !fok && flowAny {
			return Flow, bad("request mixes flow.js and Resumable.js fields: it has %s but not %s; send one library's fields only", rn, fn)
		}
	}
	for f := field(0); f < nFields; f++ {
		if fn := Flow.name(f); fn != "" {
			fv, fok := get(fn)
			if rv, _ := get(d.name(f)); fok && fv != rv {
				return Flow, bad("%s and %s differ (%q and %q); send one library's fields only", fn, d.name(f), clip(fv), clip(rv))
			}
		}
	}
	return d, nil
}

func anyFlowField(get Fields) bool {
	for f := field(0); f < nFields; f++ {
		if n := Flow.name(f); n != "" {
			if _, ok := get(n); ok {
				return true
			}
		}
	}
	return false
}
