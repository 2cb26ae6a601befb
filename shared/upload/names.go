package upload

import (
	"path"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxSafeNameBytes keeps finished names well inside the 255-byte limit of
// common file systems and leaves room in a 1,024-byte S3 key.
const maxSafeNameBytes = 180

// SafeFileName turns a validated client file name into the name of the
// finished file: only letters, digits and a few punctuation marks survive,
// anything else becomes '_', a leading dot is replaced (no hidden files), and
// long names are cut while keeping the extension. The result is never empty,
// "." or "..", and never contains a separator. It is only ever used inside a
// directory or prefix named by the upload key, so it needs to be harmless,
// not unique.
func SafeFileName(name string) string {
	name = strings.ToValidUTF8(name, "_")
	var b strings.Builder
	for _, r := range name {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		case strings.ContainsRune("._-+=,@() ", r):
			b.WriteRune(r)
		default:
			b.WriteRune('_')
		}
	}
	s := strings.TrimSpace(b.String())
	if strings.HasPrefix(s, ".") {
		s = "_" + s[1:]
	}
	if len(s) > maxSafeNameBytes {
		ext := path.Ext(s)
		if len(ext) > 16 {
			ext = ""
		}
		s = truncateUTF8(s[:len(s)-len(ext)], maxSafeNameBytes-len(ext)) + ext
	}
	if s == "" || s == "_" && name == "" {
		return "file"
	}
	return s
}

// truncateUTF8 cuts s to at most n bytes without splitting a rune.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
