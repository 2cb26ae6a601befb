package main

import (
	"archive/zip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/flowgate/flowgate/shared/flowclient"
)

// zipSize is one function's deployment package.
type zipSize struct {
	Function  string
	Bootstrap int64 // the binary
	Zip       int64 // the zip SAM would upload
}

// lambdaBuildFlags are how SAM builds a Go function for provided.al2023,
// with CGO_ENABLED=0: no RPC shim, no local paths, no symbols.
var lambdaBuildFlags = []string{"-tags", "lambda.norpc", "-trimpath", "-ldflags=-s -w"}

// zipSizes builds every functions/* for linux/arm64 and zips its bootstrap.
func zipSizes(ctx context.Context, root, dir string) ([]zipSize, error) {
	entries, err := os.ReadDir(filepath.Join(root, "functions"))
	if err != nil {
		return nil, err
	}
	var out []zipSize
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		name := e.Name()
		bin := filepath.Join(dir, name, "bootstrap")
		env := []string{"GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0"}
		if err := goBuild(ctx, root, bin, "./functions/"+name, env, lambdaBuildFlags...); err != nil {
			return nil, err
		}
		zipPath := filepath.Join(dir, name+".zip")
		if err := zipFile(zipPath, bin, "bootstrap"); err != nil {
			return nil, err
		}
		bi, err := os.Stat(bin)
		if err != nil {
			return nil, err
		}
		zi, err := os.Stat(zipPath)
		if err != nil {
			return nil, err
		}
		out = append(out, zipSize{Function: name, Bootstrap: bi.Size(), Zip: zi.Size()})
	}
	return out, nil
}

func zipFile(zipPath, src, name string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(zipPath)
	if err != nil {
		return err
	}
	zw := zip.NewWriter(out)
	h := &zip.FileHeader{Name: name, Method: zip.Deflate}
	h.SetMode(0o755)
	w, err := zw.CreateHeader(h)
	if err == nil {
		_, err = io.Copy(w, in)
	}
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// coldStarts is the upload function's cold start, measured several times.
type coldStarts struct {
	Runs int
	// Init is process start -> the runtime's first request for an event
	// (everything main does before lambda.Start's loop: configuration, SDK
	// clients); First is process start -> the first event's response
	// (a flow.js test GET, which reads the DynamoDB ledger).
	Init, First []time.Duration
	Arch        string
}

// coldStart runs the upload function as Lambda would: a fresh process
// (built with SAM's flags, for this machine's architecture) whose runtime
// client talks to an emulated Lambda runtime API (the two endpoints it
// needs, served here). Each run is a new process with a new event: a test
// GET for a chunk of an unknown upload, answered 204 after a read of the
// DynamoDB ledger on dynalite.
func (r *runner) coldStart(ctx context.Context) (*coldStarts, error) {
	bin := filepath.Join(r.tmp, "upload-native", "bootstrap")
	if err := goBuild(ctx, r.root, bin, "./functions/upload", []string{"CGO_ENABLED=0"}, lambdaBuildFlags...); err != nil {
		return nil, err
	}
	runs := 7
	if r.opt.Quick {
		runs = 3
	}
	cs := &coldStarts{Runs: runs, Arch: runtime.GOOS + "/" + runtime.GOARCH}
	for i := range runs {
		init, first, err := r.coldStartOnce(ctx, bin, i)
		if err != nil {
			return nil, err
		}
		cs.Init = append(cs.Init, init)
		cs.First = append(cs.First, first)
	}
	return cs, nil
}

func (r *runner) coldStartOnce(ctx context.Context, bin string, i int) (init, first time.Duration, err error) {
	event, err := testGetEvent(fmt.Sprintf("coldstart-%s-%d", r.runID, i))
	if err != nil {
		return 0, 0, err
	}
	rt := &runtimeAPI{event: event, next: make(chan time.Time, 1), done: make(chan runtimeResult, 1)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, err
	}
	srv := &http.Server{Handler: rt, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()

	env := r.aws.serverEnv(
		"AWS_LAMBDA_RUNTIME_API="+ln.Addr().String(),
		"AWS_LAMBDA_FUNCTION_NAME=flowgate-upload",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=1024",
		"AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
	)
	start := time.Now()
	c, err := startChild("upload-function", bin, nil, env, r.tmp, filepath.Join(r.tmp, fmt.Sprintf("coldstart-%d.log", i)))
	if err != nil {
		return 0, 0, err
	}
	defer c.stop()
	var next time.Time
	select {
	case next = <-rt.next:
	case <-c.exited:
		return 0, 0, fmt.Errorf("the function exited before asking for an event\n%s", c.tail())
	case <-time.After(30 * time.Second):
		return 0, 0, fmt.Errorf("the function never asked for an event\n%s", c.tail())
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
	select {
	case res := <-rt.done:
		if res.err != "" {
			return 0, 0, fmt.Errorf("the function failed: %s\n%s", res.err, c.tail())
		}
		var resp events.APIGatewayProxyResponse
		if err := json.Unmarshal(res.body, &resp); err != nil || resp.StatusCode != http.StatusNoContent {
			return 0, 0, fmt.Errorf("the function answered %s (want statusCode 204)\n%s", res.body, c.tail())
		}
		return next.Sub(start), res.at.Sub(start), nil
	case <-c.exited:
		return 0, 0, fmt.Errorf("the function exited before answering\n%s", c.tail())
	case <-time.After(30 * time.Second):
		return 0, 0, fmt.Errorf("the function never answered\n%s", c.tail())
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
}

// runtimeAPI is as much of the Lambda runtime API as one invocation needs:
// GET /2018-06-01/runtime/invocation/next hands out the event (once; later
// calls wait, as they do between invocations), POST
// /2018-06-01/runtime/invocation/<id>/response or /error takes the result.
type runtimeAPI struct {
	event []byte
	once  sync.Once
	next  chan time.Time
	done  chan runtimeResult
}

type runtimeResult struct {
	at   time.Time
	body []byte
	err  string
}

const requestID = "8476a536-e9f4-11e8-9739-2dfe598c3fcd"

func (rt *runtimeAPI) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	now := time.Now()
	const base = "/2018-06-01/runtime/"
	switch {
	case req.Method == http.MethodGet && req.URL.Path == base+"invocation/next":
		served := false
		rt.once.Do(func() {
			served = true
			rt.next <- now
			w.Header().Set("Lambda-Runtime-Aws-Request-Id", requestID)
			w.Header().Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(30*time.Second).UnixMilli(), 10))
			w.Header().Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:flowgate-upload")
			w.Header().Set("Lambda-Runtime-Trace-Id", "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1")
			w.Header().Set("Content-Type", "application/json")
			w.Write(rt.event)
		})
		if !served {
			<-req.Context().Done() // the next invocation never comes
		}
	case req.Method == http.MethodPost && strings.HasPrefix(req.URL.Path, base+"invocation/"):
		body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
		res := runtimeResult{at: now, body: body}
		if strings.HasSuffix(req.URL.Path, "/error") {
			res.err = string(body)
		}
		select {
		case rt.done <- res:
		default:
		}
		w.WriteHeader(http.StatusAccepted)
	case req.Method == http.MethodPost && req.URL.Path == base+"init/error":
		body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
		select {
		case rt.done <- runtimeResult{at: now, err: "init error: " + string(body)}:
		default:
		}
		w.WriteHeader(http.StatusAccepted)
	default:
		http.NotFound(w, req)
	}
}

// testGetEvent is API Gateway's (REST API, Lambda proxy) event for
// flow.js's test GET of chunk 1 of a 1 MiB file.
func testGetEvent(id string) ([]byte, error) {
	opts := flowclient.Options{ChunkSize: mib, ForceChunkSize: true, Identifier: id}
	g, err := flowclient.NewGeometry(opts, mib, "a.bin")
	if err != nil {
		return nil, err
	}
	q, mq := map[string]string{}, map[string][]string{}
	for _, f := range g.Params(1) {
		q[f.Name], mq[f.Name] = f.Value, []string{f.Value}
	}
	ev := events.APIGatewayProxyRequest{
		Resource:                        "/upload",
		Path:                            "/upload",
		HTTPMethod:                      http.MethodGet,
		Headers:                         map[string]string{"Host": "abc123.execute-api.us-east-1.amazonaws.com", "Origin": "https://example.com"},
		MultiValueHeaders:               map[string][]string{"Host": {"abc123.execute-api.us-east-1.amazonaws.com"}, "Origin": {"https://example.com"}},
		QueryStringParameters:           q,
		MultiValueQueryStringParameters: mq,
		RequestContext: events.APIGatewayProxyRequestContext{
			AccountID: "123456789012", ResourceID: "abc", Stage: "Prod", RequestID: requestID,
			HTTPMethod: http.MethodGet, ResourcePath: "/upload", Path: "/Prod/upload", APIID: "abc123",
			RequestTimeEpoch: time.Now().UnixMilli(),
			Identity:         events.APIGatewayRequestIdentity{SourceIP: "127.0.0.1", UserAgent: "bench"},
		},
	}
	return json.Marshal(ev)
}

// median of durations.
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
