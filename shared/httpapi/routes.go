// The API's routes: one ServeMux with Go's method patterns, the answers to a
// method a path does not have and to a path the API does not have.

package httpapi

import (
	"net/http"
	"path"
	"strings"
)

// endpoint is one of the API's paths and what it answers a method it does
// not have.
type endpoint struct {
	path  string
	allow string // the Allow header of a 405
	use   string // the message of a 405
	get   bool   // has a GET route, which Go's mux also gives HEAD
}

var endpoints = []endpoint{
	{"/upload", "GET, POST, OPTIONS", "use GET to test a chunk and POST to send one", true},
	{"/upload/status", "GET, OPTIONS", "use GET", true},
	{"/upload/config", "GET, OPTIONS", "use GET", true},
	{"/upload/urls", "POST, OPTIONS", "use POST", false},
}

// routes is the API's one mux. Each path answers its methods, a CORS
// preflight, and 405 with Allow for any other method (HEAD included: a GET
// pattern would take it); any other path gets a JSON 404. The answers of
// Go's mux itself (its text 404 and 405, its redirects) never show.
func (h *Handler) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /upload", h.scope(h.test))
	mux.Handle("POST /upload", h.scope(h.post))
	mux.Handle("GET /upload/status", h.scope(h.status))
	mux.Handle("GET /upload/config", h.scope(h.serverConfig))
	mux.Handle("POST /upload/urls", h.scope(h.urls))
	for _, e := range endpoints {
		mux.Handle("OPTIONS "+e.path, h.scope(preflight))
		mux.Handle(e.path, h.scope(e.methodNotAllowed)) // every method not routed above
		if e.get {
			mux.Handle("HEAD "+e.path, h.scope(e.methodNotAllowed))
		}
	}
	mux.HandleFunc("/", h.notFound)
	return mux
}

// preflight answers a CORS preflight; scope has set its headers.
func preflight(w *statusWriter, r *http.Request) {
	w.WriteHeader(http.StatusNoContent)
}

func (e endpoint) methodNotAllowed(w *statusWriter, r *http.Request) {
	w.Header().Set("Allow", e.allow)
	writeError(w, http.StatusMethodNotAllowed, e.use)
}

// notFound answers a path that is not the API's, with the CORS headers of
// any other answer so that a page on another origin can read it.
func (h *Handler) notFound(w http.ResponseWriter, r *http.Request) {
	if !h.CORS.apply(w, r) {
		writeError(w, http.StatusForbidden, "origin not allowed")
		return
	}
	writeError(w, http.StatusNotFound, "no such endpoint")
}

// cleanPath reports whether p is in the form Go's mux routes without
// redirecting: rooted, with no empty, . or .. segment.
func cleanPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c == p
}

// decodedPath makes the mux route r on its decoded path, as the API always
// has: an escaped slash (%2F) separates segments like any other.
func decodedPath(r *http.Request) *http.Request {
	if r.URL.RawPath == "" {
		return r
	}
	u := *r.URL
	u.RawPath = ""
	r2 := r.WithContext(r.Context())
	r2.URL = &u
	return r2
}
