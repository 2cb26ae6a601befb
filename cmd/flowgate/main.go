// Command flowgate is the embedded deployment: the upload API and the demo
// page on one HTTP server, storing under a data directory. `make run` starts it.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/flowgate/flowgate/shared/config"
	"github.com/flowgate/flowgate/shared/localserver"
	"github.com/flowgate/flowgate/shared/logformat"
)

func main() {
	cfg, err := config.LoadLocal(os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "flowgate: configuration:", err)
		os.Exit(2)
	}
	// With FLOWGATE_AUTH=jwt: the FLOWGATE_JWT_* settings, as shared/auth reads them.
	verifier, err := localserver.LoadVerifier(cfg, os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "flowgate: configuration:", err)
		os.Exit(2)
	}
	// JSON lines for machines; on a terminal, short human lines and a banner.
	log := logformat.New(os.Stderr, cfg.LogFormat, cfg.LogLevel)
	slog.SetDefault(log)
	opts := []localserver.Option{localserver.WithVerifier(verifier)}
	if logformat.Resolve(cfg.LogFormat, os.Stderr) == logformat.Text {
		opts = append(opts, localserver.WithBanner(os.Stderr))
	}
	srv, err := localserver.New(cfg, log, opts...)
	if err != nil {
		log.Error("start", "err", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := srv.Run(ctx); err != nil {
		log.Error("serve", "err", err)
		os.Exit(1)
	}
}
