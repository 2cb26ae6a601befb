// Command localaws installs and runs the local S3 (MinIO) and DynamoDB
// (dynalite) servers at their pinned versions.
//
//	localaws ensure   install both, and the Lambda Runtime Interface
//	                  Emulator, into the cache (idempotent)
//	localaws run      start both and print their environment; stop on Ctrl-C
//
// (`make dev` is internal/devstack/cmd/flowgate-dev.) `run` honours FLOWGATE_MINIO_ADDR (default 127.0.0.1:9000) and
// FLOWGATE_DYNALITE_ADDR (default 127.0.0.1:4567).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/flowgate/flowgate/internal/devstack/localaws"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: localaws ensure|run")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch os.Args[1] {
	case "ensure":
		ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
		defer cancel()
		minio, err := localaws.EnsureMinIO(ctx, os.Stderr)
		if err != nil {
			fail(err)
		}
		dynalite, err := localaws.EnsureDynalite(ctx, os.Stderr)
		if err != nil {
			fail(err)
		}
		rie, err := localaws.EnsureRIE(ctx, os.Stderr)
		if err != nil {
			fail(err)
		}
		fmt.Printf("minio:    %s\ndynalite: %s\nrie:      %s\n", minio, dynalite, rie)
	case "run":
		s, err := localaws.Start(ctx, localaws.Options{
			MinIOAddr:    envOr("FLOWGATE_MINIO_ADDR", "127.0.0.1:9000"),
			DynaliteAddr: envOr("FLOWGATE_DYNALITE_ADDR", "127.0.0.1:4567"),
		})
		if err != nil {
			fail(err)
		}
		defer s.Stop()
		for _, kv := range s.Env() {
			fmt.Println(kv)
		}
		fmt.Fprintln(os.Stderr, "localaws: running; Ctrl-C stops both servers")
		<-ctx.Done()
	default:
		fmt.Fprintln(os.Stderr, "usage: localaws ensure|run")
		os.Exit(2)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
