package awsdeploy

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"
)

// The namespace comes from the identity API Gateway verified, which the
// Lambda proxy adapter carries in the request's context; client headers that
// look like one are never read.
func TestGatewayNamespace(t *testing.T) {
	cognito := map[string]any{"claims": map[string]any{"sub": "c0ffee", "email": "a@example.com"}}
	lambdaAuth := map[string]any{"principalId": "alice", "sub": "alice", "integrationLatency": 12}
	subOnly := map[string]any{"sub": "bob"}
	tests := []struct {
		mode       string
		authorizer map[string]any
		header     string // a spoofed X-Forwarded-User / context header
		want       string // "" means refused (401)
	}{
		{AuthCognito, cognito, "", "cognito:c0ffee"},
		{AuthCognito, lambdaAuth, "", ""},
		{AuthCognito, nil, "mallory", ""},
		{AuthCognito, map[string]any{"claims": map[string]any{"sub": 7}}, "", ""},
		{AuthJWT, lambdaAuth, "", "jwt:alice"},
		{AuthJWT, subOnly, "", "jwt:bob"},
		{AuthJWT, cognito, "", ""},
		{AuthJWT, nil, "mallory", ""},
		{AuthJWT, map[string]any{"principalId": "a\x00b"}, "", ""},
		{AuthJWT, map[string]any{"principalId": strings.Repeat("x", 300)}, "", ""},
	}
	for _, tt := range tests {
		ns := GatewayNamespace(tt.mode)
		var got string
		var gotErr error
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got, gotErr = ns(r)
			w.WriteHeader(http.StatusNoContent)
		})
		ev := events.APIGatewayProxyRequest{
			HTTPMethod: "GET", Path: "/upload", Headers: map[string]string{"X-Forwarded-User": tt.header},
			RequestContext: events.APIGatewayProxyRequestContext{Authorizer: tt.authorizer, Stage: "v1"},
		}
		if _, err := httpadapter.New(h).ProxyWithContext(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		if (tt.want == "") != (gotErr != nil) || got != tt.want {
			t.Errorf("%s %v: namespace %q, %v; want %q", tt.mode, tt.authorizer, got, gotErr, tt.want)
		}
	}
	if GatewayNamespace(AuthNone) != nil {
		t.Error("anonymous mode must leave the public namespace (a nil Namespace)")
	}
	// Outside API Gateway (a plain request) there is no verified identity.
	r, _ := http.NewRequest("GET", "/upload", nil)
	if _, err := GatewayNamespace(AuthJWT)(r); err == nil {
		t.Error("a request without an API Gateway context got a namespace")
	}
}

// With an auth mode on, the upload API answers 401 to a caller API Gateway
// did not authenticate, and anonymous mode keeps serving everyone.
func TestHandlerAuthMode(t *testing.T) {
	for mode, want := range map[string]int{AuthNone: http.StatusNoContent, AuthJWT: http.StatusUnauthorized, AuthCognito: http.StatusUnauthorized} {
		cfg, err := Load(func(k string) string {
			return map[string]string{"FLOWGATE_BUCKET": "b", "FLOWGATE_TABLE": "t", "FLOWGATE_AUTH": mode}[k]
		})
		if err != nil {
			t.Fatal(err)
		}
		d := &Deployment{Config: cfg, Log: slog.New(slog.DiscardHandler)}
		// A test GET without the fields stops at the namespace or at
		// validation, before any storage is touched.
		resp, err := httpadapter.New(d.Handler()).ProxyWithContext(context.Background(), events.APIGatewayProxyRequest{
			HTTPMethod: "GET", Path: "/upload", Headers: map[string]string{"Origin": "https://site.example"},
		})
		if err != nil {
			t.Fatal(err)
		}
		if mode == AuthNone {
			want = http.StatusBadRequest
		}
		if resp.StatusCode != want {
			t.Errorf("%s: %d %s, want %d", mode, resp.StatusCode, resp.Body, want)
		}
	}
}

func TestLoadAuth(t *testing.T) {
	base := map[string]string{"FLOWGATE_BUCKET": "b", "FLOWGATE_TABLE": "t"}
	load := func(extra ...string) error {
		env := map[string]string{}
		for k, v := range base {
			env[k] = v
		}
		for i := 0; i < len(extra); i += 2 {
			env[extra[i]] = extra[i+1]
		}
		_, err := Load(func(k string) string { return env[k] })
		return err
	}
	for _, mode := range AuthModes {
		if err := load("FLOWGATE_AUTH", mode); err != nil {
			t.Errorf("%s: %v", mode, err)
		}
	}
	if err := load("FLOWGATE_AUTH", "oauth"); err == nil {
		t.Error("an unknown auth mode was accepted")
	}
	if err := load("FLOWGATE_AUTH", AuthJWT, "FLOWGATE_NAMESPACE_HEADER", "X-Forwarded-User"); err == nil {
		t.Error("an auth mode together with a trusted header was accepted")
	}
	if err := load("FLOWGATE_EXPIRY", "2d"); err != nil {
		t.Errorf("expiry in days: %v", err)
	}
}
