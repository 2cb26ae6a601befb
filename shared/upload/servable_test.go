package upload

import "testing"

func TestContentType(t *testing.T) {
	for in, want := range map[string]string{
		"":                             DefaultContentType,
		"image/PNG":                    "image/png",
		"text/plain; charset=UTF-8":    "text/plain; charset=UTF-8",
		"text/html;charset=\"utf-8\"":  "text/html; charset=utf-8",
		"image":                        DefaultContentType,
		"image/":                       DefaultContentType,
		"/png":                         DefaultContentType,
		"a/b/c":                        DefaultContentType,
		"image/png\r\nX-Evil: 1":       DefaultContentType,
		"image/png; x=\"\x00\"":        DefaultContentType,
		"application/vnd.ms-excel":     "application/vnd.ms-excel",
		"video/mp4 ":                   "video/mp4",
		string(make([]byte, 300)):      DefaultContentType,
		"application/x-www-form-urlen": "application/x-www-form-urlen",
	} {
		if got := ContentType(in); got != want {
			t.Errorf("ContentType(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestContentDisposition(t *testing.T) {
	for _, c := range []struct{ mode, name, want string }{
		{"", "report.pdf", `attachment; filename="report.pdf"`},
		{"inline", "photo.jpg", `inline; filename="photo.jpg"`},
		{"attachment", "Résumé.pdf", `attachment; filename="R_sum_.pdf"; filename*=UTF-8''R%C3%A9sum%C3%A9.pdf`},
		{"attachment", `a "quoted" \ 50%.txt`, `attachment; filename="a _quoted_ _ 50_.txt"; filename*=UTF-8''a%20%22quoted%22%20%5C%2050%25.txt`},
		{"attachment", "日本.txt", `attachment; filename="__.txt"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.txt`},
		{"bogus", "", "attachment"},
	} {
		if got := ContentDisposition(c.mode, c.name); got != c.want {
			t.Errorf("ContentDisposition(%q, %q) = %q, want %q", c.mode, c.name, got, c.want)
		}
	}
}

func TestAllowList(t *testing.T) {
	a, err := ParseAllowList(" image/*, application/pdf ,.PDF, .jpg")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, typ string
		ok        bool
	}{
		{"a.jpg", "image/jpeg", true},
		{"a.PDF", "application/pdf", true},
		{"a.pdf", "application/pdf; x=y", true},
		{"a.pdf", "text/html", false},
		{"a.html", "image/png", false},
		{"a", "image/png", false},
		{"a.jpg", "imagex/png", false},
	} {
		err := a.CheckName(c.name)
		if err == nil {
			err = a.CheckType(c.typ)
		}
		if (err == nil) != c.ok {
			t.Errorf("%s (%s): %v, want allowed=%v", c.name, c.typ, err, c.ok)
		}
	}
	if empty, _ := ParseAllowList(""); !empty.Empty() || empty.CheckName("x.exe") != nil || empty.CheckType("a/b") != nil {
		t.Error("an empty list refuses")
	}
	for _, bad := range []string{"image", "pdf", ".", ".a/b", "image/png;x=1", "*/*x", "ima ge/png"} {
		if _, err := ParseAllowList(bad); err == nil {
			t.Errorf("ParseAllowList(%q) took it", bad)
		}
	}
}
