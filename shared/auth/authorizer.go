package auth

import (
	"context"
	"errors"
	"log/slog"
	"strings"

	"github.com/aws/aws-lambda-go/events"
)

// ErrUnauthorized is what a Lambda authorizer returns to make API Gateway
// answer 401: API Gateway recognises exactly this message.
var ErrUnauthorized = errors.New("Unauthorized")

// Authorizer is an API Gateway TOKEN authorizer (the token comes from the
// Authorization header). A valid token gets an Allow policy whose principal
// is the token's subject, which the upload function uses as the caller's
// namespace; anything else is refused with 401.
//
// API Gateway caches the policy for the token (see template.yaml) and
// applies it to every route of the API, so the policy allows the whole
// stage of this API rather than only the method first asked for: a policy
// for the one method would refuse the next request, a POST after a GET, that
// hits the cache.
type Authorizer struct {
	Verifier *Verifier
	Log      *slog.Logger
}

// Handle is the Lambda handler.
func (a *Authorizer) Handle(ctx context.Context, ev events.APIGatewayCustomAuthorizerRequest) (events.APIGatewayCustomAuthorizerResponse, error) {
	resource, ok := StageResource(ev.MethodArn)
	if !ok {
		a.log().WarnContext(ctx, "authorizer: unexpected method ARN", "methodArn", ev.MethodArn)
		return events.APIGatewayCustomAuthorizerResponse{}, ErrUnauthorized
	}
	id, err := a.Verifier.Verify(ev.AuthorizationToken)
	if err != nil {
		a.log().InfoContext(ctx, "authorizer: token refused", "err", err)
		return events.APIGatewayCustomAuthorizerResponse{}, ErrUnauthorized
	}
	return events.APIGatewayCustomAuthorizerResponse{
		PrincipalID: id.Subject,
		PolicyDocument: events.APIGatewayCustomAuthorizerPolicy{
			Version: "2012-10-17",
			Statement: []events.IAMPolicyStatement{{
				Action:   []string{"execute-api:Invoke"},
				Effect:   "Allow",
				Resource: []string{resource},
			}},
		},
		// Reaches the function as requestContext.authorizer.sub.
		Context: map[string]any{"sub": id.Subject},
	}, nil
}

// StageResource turns the ARN of the method being called,
// arn:aws:execute-api:REGION:ACCOUNT:API/STAGE/METHOD/PATH, into the ARN
// of every method of that API's stage: arn:aws:execute-api:REGION:ACCOUNT:API/STAGE/*.
func StageResource(methodArn string) (string, bool) {
	parts := strings.SplitN(methodArn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "execute-api" || parts[3] == "" || parts[4] == "" {
		return "", false
	}
	segs := strings.Split(parts[5], "/")
	if len(segs) < 3 || segs[0] == "" || segs[1] == "" || strings.Contains(segs[0]+segs[1], "*") {
		return "", false
	}
	return strings.Join(parts[:5], ":") + ":" + segs[0] + "/" + segs[1] + "/*", true
}

func (a *Authorizer) log() *slog.Logger {
	if a.Log != nil {
		return a.Log
	}
	return slog.Default()
}
