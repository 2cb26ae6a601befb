// Command bench is `make bench`: it measures flowgate's throughput, chunk
// latency, memory, completion time and (on the AWS path) request cost, and
// sets each number against a ceiling measured in the same run on the same
// machine, because the machines this runs on are shared and noisy.
//
//	go run ./bench                              the full run (under 10 minutes)
//	go run ./bench -quick                       small sizes (under a minute), what CI may run
//	go run ./bench -out docs/benchmarks.md      also write the report there
//	go run ./bench -only local-1gib,lambda -v   some scenarios, every step logged
//	go run ./bench -only s3-2gib -profile prof  servers under pprof: CPU, allocations and an
//	                                            execution trace per scenario (go tool trace
//	                                            -pprof=syscall turns it into a profile of the
//	                                            time blocked in system calls)
//
// What runs, all on 127.0.0.1, in temporary directories, stopped on exit and
// on signals:
//
//   - the embedded server, built from ./cmd/flowgate and run as its own
//     process, as users run it; its peak RSS is read from /proc;
//   - the AWS path: the upload service (S3 chunk store, DynamoDB ledger,
//     the same HTTP handler) and the assembler's stream handler, run as a
//     process of their own (this binary, re-executed in a server role)
//     against MinIO and dynalite started by package localaws, with every
//     S3 and DynamoDB request counted through SDK middleware;
//   - the ceilings: a loopback HTTP server that reads and discards the same
//     requests, a raw sequential write of the same bytes to the same disk
//     (and, for the record, the same chunks written to it each with its
//     own fdatasync, at the client's concurrency), raw PutObject of the
//     same chunks to the same MinIO at the same concurrency, and a raw
//     stream copy of the same bytes through MinIO;
//   - the upload Lambda's cold start, its bootstrap under the AWS Lambda
//     Runtime Interface Emulator (package lambdarie), and the zip size of
//     every function built as SAM builds it.
//
// The load client is package flowclient, which behaves like flow.js.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	// Re-executed as one of the servers the benchmark runs (see roles.go).
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runRole(role))
	}

	var opt Options
	flag.BoolVar(&opt.Quick, "quick", false, "small sizes: the whole run takes under a minute")
	out := flag.String("out", "", "also write the report (markdown) to this file")
	flag.StringVar(&opt.Only, "only", "", "run only the scenarios whose id contains one of these comma-separated strings (e.g. local,s3-2gib)")
	flag.BoolVar(&opt.NoS3, "no-s3", false, "skip the AWS path (MinIO and dynalite) and the Lambda measurements")
	flag.StringVar(&opt.ProfileDir, "profile", "", "run the servers in-process under pprof (CPU and heap profiles per scenario, written to this directory) instead of the flowgate binary")
	flag.BoolVar(&opt.Verbose, "v", false, "log every step of every scenario")
	flag.Parse()
	opt.Log = os.Stderr

	// Ctrl-C or SIGTERM cancels the run; deferred cleanup stops every child
	// process and removes the temporary directories. A second signal kills
	// the children at once and exits.
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "\nbench: %v: stopping\n", s)
		cancel()
		<-sigs
		killAllChildren()
		os.Exit(130)
	}()

	began := time.Now()
	rep, err := Run(ctx, opt)
	cancel()
	if rep != nil {
		md := rep.Markdown()
		fmt.Println(md)
		if *out != "" && err == nil {
			if werr := os.WriteFile(*out, []byte(md), 0o644); werr != nil {
				fmt.Fprintln(os.Stderr, "bench:", werr)
				os.Exit(1)
			}
			fmt.Fprintf(os.Stderr, "bench: report written to %s\n", *out)
		}
	}
	fmt.Fprintf(os.Stderr, "bench: finished in %s\n", time.Since(began).Round(time.Second))
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: FAILED:", strings.TrimSpace(err.Error()))
		os.Exit(1)
	}
}
