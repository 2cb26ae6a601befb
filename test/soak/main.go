// Command soak is a bounded soak run of flowgate on this machine: many
// simulated flow.js users upload files of mixed sizes at once, in both
// methods and chunk modes, with shuffled and duplicate chunks, requests cut
// off mid-body and a few uploads abandoned half way, against the embedded
// server (-target local, what `make run` starts) or the AWS code path on
// MinIO and dynalite (-target dev, what `make dev` starts: three upload
// function instances under the Lambda emulator, the assembler fed by the
// emulated stream with duplicate deliveries, uploads expiring after 30 s
// idle and the emulated TTL removing records 15 s after their expiry, the
// re-drive every 20 s). Everything listens on 127.0.0.1 and stops by itself.
//
//	go run ./test/soak -duration 2m -target local
//	go run ./test/soak -duration 2m -target dev
//
// It reports uploads completed, lost (every chunk got 200, then the server
// said failed, or knew the upload no more), stuck (every chunk got 200, and
// neither complete nor failed with a reason -stuck-after later, 60 s by
// default), corrupt (complete with other bytes) and failed (a valid chunk
// refused for good), all of which but the first must be 0; under -target
// dev also what the stack did (stream duplicates, records given up and
// replayed, invocations per instance); and the
// server's resident memory after the warm-up and at the end (growth beyond
// -rss-factor and -rss-slack fails the run), its threads, and its open
// descriptors at rest by kind: files (more than -fd-slack over the start
// fails), client connections (any left fails), connections to storage.
// The server has no goroutine count to offer (no /metrics yet), so its
// threads and descriptors stand for leaks. It exits 1 if anything is
// wrong. FLOWGATE_SOAK_DURATION sets the default duration.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/flowgate/flowgate/internal/proc"
)

func main() {
	def := 2 * time.Minute
	if v := os.Getenv("FLOWGATE_SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			fmt.Fprintln(os.Stderr, "soak: FLOWGATE_SOAK_DURATION:", err)
			os.Exit(2)
		}
		def = d
	}
	var cfg Config
	flag.StringVar(&cfg.Target, "target", "local", "local (cmd/flowgate) or dev (the AWS path on MinIO and dynalite)")
	flag.DurationVar(&cfg.Duration, "duration", def, "how long to start new uploads")
	flag.IntVar(&cfg.Clients, "clients", 12, "simulated users uploading at once")
	flag.Uint64Var(&cfg.Seed, "seed", 0, "random seed (0: from the clock)")
	flag.Int64Var(&cfg.MaxFile, "max-file", 12<<20, "largest file in bytes")
	flag.DurationVar(&cfg.Grace, "grace", 90*time.Second, "how long uploads in flight may take to finish after -duration")
	flag.DurationVar(&cfg.StuckAfter, "stuck-after", 60*time.Second, "an upload whose every chunk got 200 and that is neither complete nor failed this long after is stuck")
	flag.Float64Var(&cfg.RSSFactor, "rss-factor", 1.5, "tolerated RSS growth factor from the warm-up to the end")
	flag.Int64Var(&cfg.RSSSlack, "rss-slack", 32<<20, "tolerated RSS growth in bytes on top of -rss-factor")
	flag.IntVar(&cfg.FDSlack, "fd-slack", 2, "tolerated extra open files (not sockets) at rest after the run")
	flag.Parse()
	if cfg.Duration <= 0 || cfg.Duration > 24*time.Hour {
		fmt.Fprintln(os.Stderr, "soak: -duration must be between 0 and 24h")
		os.Exit(2)
	}
	root, err := proc.Root()
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(2)
	}
	cfg.Root = root
	cfg.Progress = os.Stderr

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := Run(ctx, cfg)
	if rep != nil {
		fmt.Print(rep)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
	if !rep.Passed() {
		os.Exit(1)
	}
}
