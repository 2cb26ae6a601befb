// Command authorizer is the API Gateway TOKEN authorizer of the JWT auth
// mode: it verifies the bearer token of each request (package auth) and
// answers with an Allow policy whose principal, the token's subject, becomes
// the caller's upload namespace; any other token gets 401.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"

	"github.com/flowgate/flowgate/shared/auth"
)

func main() {
	h, err := newHandler(os.Getenv)
	if err != nil {
		slog.Error("authorizer function cannot start", "err", err)
		os.Exit(1)
	}
	lambda.Start(h)
}

// newHandler builds the function's handler from its environment.
func newHandler(getenv func(string) string) (func(context.Context, events.APIGatewayCustomAuthorizerRequest) (events.APIGatewayCustomAuthorizerResponse, error), error) {
	cfg, err := auth.Load(getenv)
	if err != nil {
		return nil, err
	}
	v, err := auth.New(cfg)
	if err != nil {
		return nil, err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	return (&auth.Authorizer{Verifier: v, Log: log}).Handle, nil
}
