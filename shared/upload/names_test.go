package upload

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSafeFileName(t *testing.T) {
	for in, want := range map[string]string{
		"photo.jpg":           "photo.jpg",
		"../../etc/passwd":    "_._.._etc_passwd",
		".bashrc":             "_bashrc",
		`a\b:c*d?.txt`:        "a_b_c_d_.txt",
		"résumé 2024 (1).pdf": "résumé 2024 (1).pdf",
		"":                    "file",
		"\x00":                "_",
	} {
		if got := SafeFileName(in); got != want {
			t.Errorf("SafeFileName(%q) = %q, want %q", in, got, want)
		}
	}
	long := strings.Repeat("é", 200) + ".tar.gz"
	got := SafeFileName(long)
	if len(got) > maxSafeNameBytes || !strings.HasSuffix(got, ".gz") || !utf8.ValidString(got) {
		t.Errorf("long name cut to %q (%d bytes)", got, len(got))
	}
}

// FuzzSafeFileName: whatever the input, the result is one harmless name.
func FuzzSafeFileName(f *testing.F) {
	for _, s := range []string{"photo.jpg", "../x", ".", "..", "\xff\xfe", "a/b\\c", strings.Repeat("x", 300) + ".txt"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		got := SafeFileName(name)
		if got == "" || got == "." || got == ".." || strings.HasPrefix(got, ".") {
			t.Fatalf("SafeFileName(%q) = %q", name, got)
		}
		if strings.ContainsAny(got, "/\\\x00:*?\"<>|\n\r") || !utf8.ValidString(got) || len(got) > maxSafeNameBytes {
			t.Fatalf("SafeFileName(%q) = %q", name, got)
		}
	})
}
