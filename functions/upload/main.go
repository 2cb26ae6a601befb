// Command upload is the upload Lambda: API Gateway (REST API, Lambda proxy
// integration, payload 1.0) in front of the same net/http handler the
// embedded server runs, with chunks in S3 and the ledger in DynamoDB.
package main

import (
	"context"

	"github.com/aws/aws-lambda-go/events"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"github.com/flowgate/flowgate/shared/awsdeploy"
)

func main() { awsdeploy.Start("upload", newHandler) }

// newHandler builds the function's handler from its environment.
func newHandler(ctx context.Context, getenv func(string) string) (func(context.Context, events.APIGatewayProxyRequest) (events.APIGatewayProxyResponse, error), error) {
	d, err := awsdeploy.FromEnv(ctx, getenv)
	if err != nil {
		return nil, err
	}
	// The adapter decodes base64 bodies (binary media types) and keeps the
	// multipart boundary in Content-Type intact.
	return httpadapter.New(d.Handler()).ProxyWithContext, nil
}
