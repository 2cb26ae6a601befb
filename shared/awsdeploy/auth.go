package awsdeploy

import (
	"errors"
	"net/http"
	"unicode"
	"unicode/utf8"

	"github.com/awslabs/aws-lambda-go-api-proxy/core"
)

// Auth modes (FLOWGATE_AUTH). API Gateway verifies the caller before the
// upload function runs; the function only reads the verified identity that
// API Gateway put in the request context, never a client header.
const (
	// AuthNone: anonymous, every caller shares the public namespace.
	AuthNone = "none"
	// AuthCognito: a Cognito user pool authorizer; the namespace is the
	// token's "sub" claim.
	AuthCognito = "cognito"
	// AuthJWT: a Lambda authorizer (functions/authorizer) that verifies a
	// JWT; the namespace is the principal it returns (the token's subject).
	AuthJWT = "jwt"
)

// AuthModes lists the valid FLOWGATE_AUTH values.
var AuthModes = []string{AuthNone, AuthCognito, AuthJWT}

// maxIdentityBytes bounds an identity taken as a namespace.
const maxIdentityBytes = 256

// GatewayNamespace returns the httpapi.Handler Namespace function for an
// auth mode: nil (the public namespace) for AuthNone; otherwise one that
// reads the identity API Gateway verified from the request's context (the
// Lambda proxy adapter puts the event's request context there) and fails,
// which the handler answers with 401, when there is none.
func GatewayNamespace(mode string) func(*http.Request) (string, error) {
	var identity func(map[string]any) string
	switch mode {
	case AuthCognito:
		identity = func(a map[string]any) string {
			claims, _ := a["claims"].(map[string]any)
			sub, _ := claims["sub"].(string)
			return sub
		}
	case AuthJWT:
		identity = func(a map[string]any) string {
			if p, _ := a["principalId"].(string); p != "" {
				return p
			}
			sub, _ := a["sub"].(string)
			return sub
		}
	default:
		return nil
	}
	return func(r *http.Request) (string, error) {
		rc, ok := core.GetAPIGatewayContextFromContext(r.Context())
		if !ok {
			return "", errors.New("no API Gateway request context")
		}
		id := identity(rc.Authorizer)
		if id == "" {
			return "", errors.New("no verified identity")
		}
		if !validIdentity(id) {
			return "", errors.New("unusable identity")
		}
		return mode + ":" + id, nil
	}
}

func validIdentity(s string) bool {
	if len(s) > maxIdentityBytes || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return false
		}
	}
	return true
}
