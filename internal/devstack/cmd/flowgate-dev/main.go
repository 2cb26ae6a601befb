// Command flowgate-dev is `make dev`: the serverless deployment on this
// machine (see package devserver), until Ctrl-C.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/flowgate/flowgate/internal/devstack/devserver"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// JSON lines, as the Lambda functions and `make run` log.
	var level slog.Level
	if v := os.Getenv("FLOWGATE_LOG_LEVEL"); v != "" {
		if err := level.UnmarshalText([]byte(v)); err != nil {
			fmt.Fprintln(os.Stderr, "FLOWGATE_LOG_LEVEL:", err)
			os.Exit(2)
		}
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)
	if err := devserver.Run(ctx, os.Environ(), os.Stdout, os.Stderr, log); err != nil {
		fmt.Fprintln(os.Stderr, "flowgate-dev:", err)
		os.Exit(1)
	}
}
