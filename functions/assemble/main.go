// Command assemble is the assembler Lambda, triggered by the ledger table's
// DynamoDB stream: it assembles uploads that became ready and discards the
// chunks of uploads whose records expired (see package streamassemble).
package main

import (
	"context"

	"github.com/flowgate/flowgate/shared/awsdeploy"
	"github.com/flowgate/flowgate/shared/streamassemble"
)

func main() {
	awsdeploy.Start("assemble", func(ctx context.Context, getenv func(string) string) (any, error) {
		h, err := newHandler(ctx, getenv)
		if err != nil {
			return nil, err
		}
		return h.Handle, nil // the method: Lambda takes a function
	})
}

// newHandler builds the function's handler from its environment.
func newHandler(ctx context.Context, getenv func(string) string) (*streamassemble.Handler, error) {
	d, err := awsdeploy.FromEnv(ctx, getenv)
	if err != nil {
		return nil, err
	}
	return d.StreamHandler(), nil
}
