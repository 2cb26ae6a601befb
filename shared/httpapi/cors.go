package httpapi

import (
	"net/http"
	"strings"
)

// CORS lets a static site on another origin call the API.
type CORS struct {
	// AllowedOrigins lists origins such as "https://example.com"; "*" or an
	// empty list allows any origin.
	AllowedOrigins []string
}

// allowedHeaders are the request headers a page may send: flow.js's own
// (Content-Type for the form, X-Requested-With from older pages) and
// Authorization for a JWT.
const allowedHeaders = "Authorization, Content-Type, X-Requested-With, X-Request-Id"

// apply sets the CORS response headers and reports whether the request may
// go on. A request without an Origin header (curl, a server) is not a
// cross-origin browser request and is left alone.
func (c CORS) apply(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	w.Header().Add("Vary", "Origin")
	if origin == "" {
		return true
	}
	if !c.allows(origin) {
		return false
	}
	// Echo the origin rather than "*": it works whether or not the page
	// sends credentials.
	w.Header().Set("Access-Control-Allow-Origin", origin)
	if r.Method == http.MethodOptions {
		w.Header().Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
		w.Header().Set("Access-Control-Allow-Headers", allowedHeaders)
		w.Header().Set("Access-Control-Max-Age", "600")
	}
	return true
}

func (c CORS) allows(origin string) bool {
	if len(c.AllowedOrigins) == 0 {
		return true
	}
	for _, o := range c.AllowedOrigins {
		if o == "*" || strings.EqualFold(strings.TrimSuffix(o, "/"), origin) {
			return true
		}
	}
	return false
}
