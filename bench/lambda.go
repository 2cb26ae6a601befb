package main

import (
	"archive/zip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/flowgate/flowgate/internal/devstack/lambdarie"
	"github.com/flowgate/flowgate/internal/testkit/flowclient"
)

// zipSize is one function's deployment package.
type zipSize struct {
	Function  string
	Bootstrap int64 // the binary
	Zip       int64 // the zip SAM would upload
}

// zipSizes builds every functions/* for linux/arm64 with the release flags
// (as SAM builds a Go function for provided.al2023) and zips its bootstrap.
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
		if err := goBuild(ctx, root, bin, "./functions/"+name, env, lambdarie.BuildFlags...); err != nil {
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
	// Init is RIE's init phase (its INIT REPORT): from starting the
	// bootstrap to the runtime's first request for an event, that is
	// everything main does before lambda.Start's loop (configuration, SDK
	// clients). First is the first invocation as its caller sees it: RIE
	// starts the bootstrap, the function inits and answers the event (a
	// flow.js test GET, which reads the DynamoDB ledger). Warm is a second
	// invocation of the same instance.
	Init, First, Warm []time.Duration
	Arch              string
}

// coldStart runs the upload function as Lambda would: its bootstrap, built
// with the release flags for this machine, under the Lambda Runtime
// Interface Emulator (package lambdarie). Each run is a new instance (a new
// RIE process, which starts the bootstrap on the first invocation) given a
// new event: a test GET for a chunk of an unknown upload, answered 204 after
// a read of the DynamoDB ledger on dynalite; then the same instance answers
// a second one.
func (r *runner) coldStart(ctx context.Context) (*coldStarts, error) {
	defer lambdarie.RemoveBootstraps()
	if _, err := lambdarie.Bootstrap(ctx, "upload"); err != nil {
		return nil, err
	}
	runs := 7
	if r.opt.Quick {
		runs = 3
	}
	cs := &coldStarts{Runs: runs, Arch: runtime.GOOS + "/" + runtime.GOARCH}
	for i := range runs {
		if err := r.coldStartOnce(ctx, cs, i); err != nil {
			return nil, err
		}
	}
	return cs, nil
}

// initReport is RIE's log line at the end of a function's init phase.
var initReport = regexp.MustCompile(`INIT REPORT\(durationMs: ([0-9.]+)\)`)

func (r *runner) coldStartOnce(ctx context.Context, cs *coldStarts, i int) error {
	inst, err := lambdarie.Start(ctx, lambdarie.Options{
		Function: "upload", Name: "flowgate-upload", Env: r.aws.serverEnv(),
		MemoryMB: uploadMemoryMB, Timeout: 29 * time.Second, // the template's
	})
	if err != nil {
		return err
	}
	defer inst.Stop()
	var took [2]time.Duration
	for n := range took {
		event, err := testGetEvent(fmt.Sprintf("coldstart-%s-%d-%d", r.runID, i, n))
		if err != nil {
			return err
		}
		start := time.Now()
		out, err := inst.Invoke(ctx, event)
		took[n] = time.Since(start)
		if err != nil {
			return fmt.Errorf("invocation %d: %w\n%s", n+1, err, inst.Logs())
		}
		var resp events.APIGatewayProxyResponse
		if err := json.Unmarshal(out, &resp); err != nil || resp.StatusCode != http.StatusNoContent {
			return fmt.Errorf("the function answered %s (want statusCode 204)\n%s", out, inst.Logs())
		}
	}
	m := initReport.FindStringSubmatch(inst.Logs())
	if m == nil {
		return fmt.Errorf("RIE reported no init\n%s", inst.Logs())
	}
	initMs, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return err
	}
	cs.Init = append(cs.Init, time.Duration(initMs*float64(time.Millisecond)))
	cs.First = append(cs.First, took[0])
	cs.Warm = append(cs.Warm, took[1])
	return nil
}

// requestID is the API Gateway request id of the benchmark's events.
const requestID = "8476a536-e9f4-11e8-9739-2dfe598c3fcd"

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
