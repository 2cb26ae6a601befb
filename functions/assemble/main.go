// Command assemble is the assembler Lambda, triggered by the ledger table's
// DynamoDB stream: it assembles uploads that became ready and discards the
// chunks of uploads whose records expired (see package streamassemble).
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/flowgate/flowgate/shared/awsdeploy"
	"github.com/flowgate/flowgate/shared/streamassemble"
)

func main() {
	h, err := newHandler(context.Background(), os.Getenv)
	if err != nil {
		slog.Error("assemble function cannot start", "err", err)
		os.Exit(1)
	}
	lambda.Start(h.Handle)
}

// newHandler builds the function's handler from its environment.
func newHandler(ctx context.Context, getenv func(string) string) (*streamassemble.Handler, error) {
	d, err := awsdeploy.FromEnv(ctx, getenv)
	if err != nil {
		return nil, err
	}
	return d.StreamHandler(), nil
}
