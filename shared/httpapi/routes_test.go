package httpapi_test

import (
	"net/http"
	"testing"

	"github.com/flowgate/flowgate/shared/httpapi"
)

// TestRoutes: a method a path does not have is a JSON 405 with the path's
// Allow header (HEAD too, though Go's mux lets a GET route take it); every
// path of the API answers a CORS preflight; any other path, a path Go's mux
// would redirect to its clean form among them, is a JSON 404, preflight or
// not; an escaped slash separates segments. None of Go's mux's own answers
// (text 404 and 405, redirects) shows.
func TestRoutes(t *testing.T) {
	e := newEnv(t, func(h *httpapi.Handler) { h.CORS = httpapi.CORS{AllowedOrigins: []string{"https://site.example"}} })
	send := func(method, path string, hdr ...string) resp {
		t.Helper()
		req, err := http.NewRequest(method, e.srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		setHeaders(req, hdr)
		return e.do(req)
	}
	origin := []string{"Origin", "https://site.example"}

	for _, c := range []struct{ path, allow, use string }{
		{"/upload", "GET, POST, OPTIONS", "use GET to test a chunk and POST to send one"},
		{"/upload/status", "GET, OPTIONS", "use GET"},
		{"/upload/config", "GET, OPTIONS", "use GET"},
		{"/upload/urls", "POST, OPTIONS", "use POST"},
	} {
		for _, m := range []string{http.MethodHead, http.MethodPut, http.MethodDelete, http.MethodPatch, "PROPFIND"} {
			r := send(m, c.path, origin...)
			if r.status != 405 || r.header.Get("Allow") != c.allow || r.header.Get("Access-Control-Allow-Origin") != "https://site.example" {
				t.Errorf("%s %s: %d Allow %q, want 405 Allow %q with CORS", m, c.path, r.status, r.header.Get("Allow"), c.allow)
			}
			if m != http.MethodHead {
				wantStatus(t, r, 405, c.use)
			}
		}
		if c.allow == "GET, OPTIONS" {
			wantStatus(t, send(http.MethodPost, c.path), 405, c.use)
		}
		r := send(http.MethodOptions, c.path, append(origin, "Access-Control-Request-Method", "POST")...)
		if r.status != 204 || r.header.Get("Access-Control-Allow-Methods") != "GET, POST, OPTIONS" || r.header.Get("Cache-Control") != "no-store" {
			t.Errorf("preflight of %s: %d %v, want 204 with CORS headers", c.path, r.status, r.header)
		}
		wantStatus(t, send(http.MethodOptions, c.path, "Origin", "https://elsewhere.example"), 403, "origin not allowed")
	}

	for _, p := range []string{"/", "/uploads", "/upload/", "/upload/status/x", "/upload/../upload", "//upload", "/upload/./status", "/UPLOAD"} {
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodOptions} {
			r := send(m, p, origin...)
			wantStatus(t, r, 404, "no such endpoint")
			if r.header.Get("Access-Control-Allow-Origin") != "https://site.example" {
				t.Errorf("%s %s: no CORS header on the 404", m, p)
			}
		}
	}
	// An escaped slash is a slash, as in the path the handler reads.
	wantStatus(t, send(http.MethodGet, "/upload%2Fconfig"), 200, "")
}
