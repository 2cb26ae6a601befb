package httpapi

import (
	"errors"
	"net/http"
	"strings"
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

// AuthError is a Namespace failure that asks the client for credentials: the
// handler answers 401 with Msg, sets WWW-Authenticate to Challenge (when
// set) and counts the refusal under Reason. Cause, if set, is logged but not
// shown to the client.
type AuthError struct {
	Challenge string
	Reason    string
	Msg       string
	Cause     error
}

func (e *AuthError) Error() string { return e.Msg }

// BearerRealm names the protection space in WWW-Authenticate challenges.
const BearerRealm = "flowgate"

// JWTNamespacePrefix starts the namespace of a caller identified by a JSON
// Web Token; the token's subject follows. It is the prefix the AWS
// deployment gives callers verified by its JWT authorizer, so a user has the
// same namespace, and the same upload keys, on both deployments.
const JWTNamespacePrefix = "jwt:"

// BearerNamespace identifies the caller by the token in an
// "Authorization: Bearer <token>" header, which verify checks and turns into
// the caller's subject (shared/auth's Verifier, say). The namespace is
// JWTNamespacePrefix + subject. A request without a token, with another
// scheme, with two Authorization headers, or with a token verify refuses
// gets 401 with a Bearer challenge (RFC 6750); the reason verify gives is
// logged, not sent.
func BearerNamespace(verify func(token string) (subject string, err error)) func(*http.Request) (string, error) {
	missing := &AuthError{
		Challenge: `Bearer realm="` + BearerRealm + `"`,
		Reason:    ReasonMissingToken,
		Msg:       "authentication required: send Authorization: Bearer <token>",
	}
	invalid := func(msg string, cause error) *AuthError {
		return &AuthError{
			Challenge: `Bearer realm="` + BearerRealm + `", error="invalid_token"`,
			Reason:    ReasonInvalidToken,
			Msg:       msg,
			Cause:     cause,
		}
	}
	return func(r *http.Request) (string, error) {
		values := r.Header.Values("Authorization")
		switch {
		case len(values) == 0 || strings.TrimSpace(values[0]) == "":
			return "", missing
		case len(values) > 1:
			return "", invalid("more than one Authorization header", nil)
		}
		scheme, token, _ := strings.Cut(strings.TrimSpace(values[0]), " ")
		token = strings.TrimSpace(token)
		if !strings.EqualFold(scheme, "Bearer") || token == "" {
			return "", invalid("the Authorization header must be: Bearer <token>", nil)
		}
		sub, err := verify(token)
		if err != nil {
			return "", invalid("invalid or expired token", err)
		}
		if sub == "" || !validNamespace(sub) {
			return "", invalid("the token's subject cannot name a namespace", nil)
		}
		return JWTNamespacePrefix + sub, nil
	}
}
