package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-lambda-go/events"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"

	"github.com/flowgate/flowgate/internal/proc"
	"github.com/flowgate/flowgate/shared/awsdeploy"
	"github.com/flowgate/flowgate/shared/config"
	"github.com/flowgate/flowgate/shared/dynamoledger"
	"github.com/flowgate/flowgate/shared/localserver"
	"github.com/flowgate/flowgate/shared/publish"
	"github.com/flowgate/flowgate/shared/streamassemble"
)

// The benchmark re-executes its own binary to run servers as processes of
// their own (so their memory can be read from /proc and they compete for
// the CPU as a real server would). roleEnv names the role.
const (
	roleEnv    = "FLOWGATE_BENCH_ROLE"
	profileEnv = "FLOWGATE_BENCH_PROFILE" // write CPU and heap profiles with this path prefix
)

const (
	roleDiscard     = "discard"     // the HTTP ceiling: read every request body and drop it
	roleS3Server    = "s3server"    // the AWS code path against MinIO and dynalite
	roleLocalServer = "localserver" // the embedded server in-process, for -profile
)

func runRole(role string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch role {
	case roleDiscard:
		err = serve(ctx, discardHandler())
	case roleS3Server:
		err = runS3Server(ctx)
	case roleLocalServer:
		err = runLocalServer(ctx)
	case roleDirectServer:
		err = runDirectServer(ctx)
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench %s: %v\n", role, err)
		return 1
	}
	return 0
}

// serve serves h on FLOWGATE_ADDR until ctx ends, under pprof if asked.
func serve(ctx context.Context, h http.Handler) error {
	ln, err := net.Listen("tcp", os.Getenv("FLOWGATE_ADDR"))
	if err != nil {
		return err
	}
	stopProfile, err := startProfile()
	if err != nil {
		return err
	}
	defer stopProfile()
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	return proc.Serve(ctx, srv, ln)
}

// startProfile starts a CPU profile if FLOWGATE_BENCH_PROFILE is set; the
// function it returns stops it and writes a heap profile beside it.
func startProfile() (func(), error) {
	prefix := os.Getenv(profileEnv)
	if prefix == "" {
		return func() {}, nil
	}
	f, err := os.Create(prefix + ".cpu.pprof")
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	// Sample every allocation of 64 KiB or more (the default, 512 KiB, would
	// miss the buffers that matter here).
	runtime.MemProfileRate = 64 << 10
	// An execution trace too: `go tool trace -pprof=syscall` turns it into a
	// profile of the time spent blocked in system calls (fsync, say), which a
	// CPU profile does not see.
	tf, err := os.Create(prefix + ".trace")
	if err != nil {
		pprof.StopCPUProfile()
		f.Close()
		return nil, err
	}
	if err := trace.Start(tf); err != nil {
		tf.Close()
		pprof.StopCPUProfile()
		f.Close()
		return nil, err
	}
	return func() {
		trace.Stop()
		tf.Close()
		pprof.StopCPUProfile()
		f.Close()
		if h, err := os.Create(prefix + ".heap.pprof"); err == nil {
			pprof.Lookup("allocs").WriteTo(h, 0)
			h.Close()
		}
	}, nil
}

// discardHandler is the HTTP ceiling: it answers flow.js's requests as a
// server that has nothing to store would. A POST's body (multipart or
// octet, whatever it is) is read to its end and dropped, then answered 200;
// a test GET is answered 204 ("send it").
func discardHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPost:
			buf := bufPool.Get().(*[]byte)
			_, err := io.CopyBuffer(io.Discard, r.Body, *buf)
			bufPool.Put(buf)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"chunk":0,"ready":false}`)
		case http.MethodGet:
			w.WriteHeader(http.StatusNoContent)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	})
	return mux
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// runLocalServer is cmd/flowgate in this process: for -profile only, since
// the benchmark otherwise runs the real binary.
func runLocalServer(ctx context.Context) error {
	cfg, err := config.LoadLocal(os.Getenv)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	srv, err := localserver.New(cfg, log)
	if err != nil {
		return err
	}
	stopProfile, err := startProfile()
	if err != nil {
		return err
	}
	defer stopProfile()
	return srv.Run(ctx)
}

// countedDeployment is the AWS path as the functions build it (settings
// from the environment), with every S3 and DynamoDB request it makes
// counted.
func countedDeployment(ctx context.Context) (*awsdeploy.Deployment, *awsCounter, error) {
	cfg, err := awsdeploy.Load(os.Getenv)
	if err != nil {
		return nil, nil, err
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, nil, err
	}
	counter := newAWSCounter()
	awsCfg.APIOptions = append(awsCfg.APIOptions, counter.register)
	return awsdeploy.NewWithAWS(cfg, awsCfg, log), counter, nil
}

// runS3Server is the AWS code path as one process: the upload function's
// handler stack (package awsdeploy: S3 chunk store, DynamoDB ledger, the
// HTTP handler the embedded server runs too), served over plain HTTP
// without the API Gateway envelope, and the assembler function's stream
// handler, fed directly by the service's OnReady (there is no stream on
// dynalite). Completion events go to FLOWGATE_WEBHOOK_URL as well as the
// log. Every S3 and DynamoDB request is counted; GET /bench/counters
// reports the counts and POST /bench/reset zeroes them.
func runS3Server(ctx context.Context) error {
	d, counter, err := countedDeployment(ctx)
	if err != nil {
		return err
	}
	if url := os.Getenv("FLOWGATE_WEBHOOK_URL"); url != "" {
		d.Publisher = publish.All{d.Publisher, publish.Webhook{URL: url}}
	}
	setup, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = d.CreateResources(setup)
	cancel()
	if err != nil {
		return err
	}

	workers := 8
	if v, err := strconv.Atoi(os.Getenv("FLOWGATE_ASSEMBLY_WORKERS")); err == nil && v > 0 {
		workers = v
	}
	stream := d.StreamHandler()
	q := newReadyQueue(workers, stream)
	q.took = func(d time.Duration) { counter.invocation("assemble", d) }
	d.Service.OnReady = q.enqueue
	bg, stopBG := context.WithCancel(context.Background())
	defer stopBG()
	go q.run(bg)

	counter.reset() // setup is not part of any scenario
	mux := http.NewServeMux()
	api := d.Handler()
	mux.Handle("/upload", counter.timed("upload", api))
	mux.Handle("/upload/status", counter.timed("upload", api))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /bench/counters", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(counter.snapshot())
	})
	mux.HandleFunc("POST /bench/reset", func(w http.ResponseWriter, r *http.Request) {
		counter.reset()
		w.WriteHeader(http.StatusNoContent)
	})
	return serve(ctx, mux)
}

// readyQueue hands each upload that became ready to the assembler's stream
// handler, as one DynamoDB stream record, with a few uploads assembled at
// once (on AWS, concurrent invocations). A record the handler reports as
// failed is handed over again a little later, as Lambda retries it.
type readyQueue struct {
	stream *streamassemble.Handler
	took   func(time.Duration) // told each batch's duration, if set
	work   chan string
	n      int
	seq    int64
	mu     sync.Mutex
}

func newReadyQueue(n int, stream *streamassemble.Handler) *readyQueue {
	return &readyQueue{stream: stream, work: make(chan string, 100_000), n: n}
}

func (q *readyQueue) enqueue(key string) {
	select {
	case q.work <- key:
	default:
		go func() { q.work <- key }()
	}
}

func (q *readyQueue) run(ctx context.Context) {
	var wg sync.WaitGroup
	for range q.n {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case key := <-q.work:
					began := time.Now()
					resp, err := q.stream.Handle(ctx, q.event(key))
					if q.took != nil {
						q.took(time.Since(began))
					}
					if err != nil || len(resp.BatchItemFailures) > 0 {
						time.AfterFunc(200*time.Millisecond, func() { q.enqueue(key) })
					}
				}
			}
		})
	}
	wg.Wait()
}

// event is the stream record of the upload's META item turning ready, as
// the table's stream (filtered to status = ready) delivers it.
func (q *readyQueue) event(key string) events.DynamoDBEvent {
	q.mu.Lock()
	q.seq++
	seq := q.seq
	q.mu.Unlock()
	return events.DynamoDBEvent{Records: []events.DynamoDBEventRecord{{
		EventID:   "bench:" + key,
		EventName: "MODIFY",
		Change: events.DynamoDBStreamRecord{
			SequenceNumber: strconv.FormatInt(seq, 10),
			NewImage:       dynamoledger.ReadyImage(key),
		},
	}}}
}

// selfBinary is this program, to re-execute in a role.
func selfBinary() (string, error) {
	p, err := os.Executable()
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(p)
}
