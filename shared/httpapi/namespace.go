package httpapi

import (
	"errors"
	"net/http"
	"unicode"
	"unicode/utf8"
)

// maxNamespaceBytes bounds a namespace; it is hashed into keys, so its length
// only matters for logs.
const maxNamespaceBytes = 256

// HeaderNamespace trusts a request header for the caller's namespace, for a
// server behind an authenticating proxy that sets it (oauth2-proxy's
// X-Forwarded-User, say). An empty header name means anonymous: everyone
// shares the public namespace. Only use it where clients cannot reach the
// server except through that proxy.
func HeaderNamespace(header string) func(*http.Request) (string, error) {
	if header == "" {
		return nil
	}
	return func(r *http.Request) (string, error) {
		v := r.Header.Get(header)
		if v == "" {
			return "", errors.New("missing " + header + " header")
		}
		if !validNamespace(v) {
			return "", errors.New("invalid " + header + " header")
		}
		return "user:" + v, nil
	}
}

// validNamespace refuses what could garble a log line or hide one name behind
// another: invalid UTF-8, control characters, overly long values.
func validNamespace(s string) bool {
	if len(s) > maxNamespaceBytes || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return false
		}
	}
	return true
}
