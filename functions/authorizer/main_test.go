package main

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
)

// sampleSecret signed events/authorizer-token.json (a token for local use
// only, valid until 2099); env.json.example sets it for sam local.
const sampleSecret = "flowgate-local-only-secret-0123456789"

func sample(t *testing.T) events.APIGatewayCustomAuthorizerRequest {
	t.Helper()
	var ev events.APIGatewayCustomAuthorizerRequest
	b, err := os.ReadFile("../../events/authorizer-token.json")
	if err == nil {
		err = json.Unmarshal(b, &ev)
	}
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func env(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }

// The sample TOKEN event gets an Allow policy for the whole stage, with the
// token's subject as principal; the same token fails against another issuer,
// audience or secret.
func TestSampleEvent(t *testing.T) {
	ok := map[string]string{
		"FLOWGATE_JWT_SECRET": sampleSecret, "FLOWGATE_JWT_ISSUER": "https://flowgate.local/",
		"FLOWGATE_JWT_AUDIENCE": "flowgate", "FLOWGATE_LOG_LEVEL": "error",
	}
	h, err := newHandler(env(ok))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := h(context.Background(), sample(t))
	if err != nil {
		t.Fatal(err)
	}
	if resp.PrincipalID != "local-user-1" || len(resp.PolicyDocument.Statement) != 1 ||
		resp.PolicyDocument.Statement[0].Effect != "Allow" ||
		strings.Join(resp.PolicyDocument.Statement[0].Resource, ",") != "arn:aws:execute-api:us-east-1:123456789012:abc123/v1/*" {
		t.Fatalf("response = %+v", resp)
	}

	for name, change := range map[string][2]string{
		"issuer":   {"FLOWGATE_JWT_ISSUER", "https://other.example/"},
		"audience": {"FLOWGATE_JWT_AUDIENCE", "other"},
		"secret":   {"FLOWGATE_JWT_SECRET", strings.Repeat("s", 40)},
	} {
		e := map[string]string{}
		for k, v := range ok {
			e[k] = v
		}
		e[change[0]] = change[1]
		h, err := newHandler(env(e))
		if err != nil {
			t.Fatal(err)
		}
		if resp, err := h(context.Background(), sample(t)); err == nil || err.Error() != "Unauthorized" {
			t.Errorf("other %s: %+v, %v; want Unauthorized", name, resp, err)
		}
	}
}

// Without a key the function refuses to start rather than let anyone in.
func TestNeedsAKey(t *testing.T) {
	if _, err := newHandler(env(nil)); err == nil {
		t.Fatal("started without a key")
	}
}
