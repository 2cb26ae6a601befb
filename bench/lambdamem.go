package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/flowgate/flowgate/internal/devstack/lambdarie"
	"github.com/flowgate/flowgate/internal/proc"
	"github.com/flowgate/flowgate/internal/testkit/flowclient"
)

// Lambda gives a function CPU in proportion to its MemorySize: 1,769 MB
// has the equivalent of one vCPU. The upload function's MemorySize is
// chosen by running its bootstrap under the Runtime Interface Emulator with
// that share of one CPU (a cgroup CPU quota), at several sizes, and pricing
// what each costs per GiB of 4 MiB chunks.

// memorySizes are the candidates, in MB.
var memorySizes = []int{256, 512, 1024, 1769}

// oneVCPUMB is the MemorySize at which a function has one vCPU.
const oneVCPUMB = 1769

// memorySizing is the upload function measured at each candidate size.
type memorySizing struct {
	Chunk   int64 // bytes per chunk POST
	Chunks  int   // chunks (each a test GET, then its POST) per size
	Runs    []memoryRun
	Chosen  int    // the cheapest size within chooseWithin of the fastest POST
	Skipped string // why nothing was measured, if so
}

type memoryRun struct {
	MemoryMB      int
	CPUShare      float64       // of one CPU
	Get, Post     time.Duration // median warm invocation as the caller sees it
	PostMax       time.Duration
	PeakRSS       int64   // the bootstrap's VmHWM
	DollarsPerGiB float64 // the upload function alone: its invocations and GB-seconds
}

// chooseWithin is how much slower than the fastest a cheaper size's median
// chunk POST may be.
const chooseWithin = 1.25

// sizeMemory measures the upload function at each of memorySizes.
func (r *runner) sizeMemory(ctx context.Context) (*memorySizing, error) {
	defer lambdarie.RemoveBootstraps()
	if _, err := lambdarie.Bootstrap(ctx, "upload"); err != nil {
		return nil, err
	}
	ms := &memorySizing{Chunk: 4 * mib, Chunks: 12}
	if r.opt.Quick {
		ms.Chunks = 4
	}
	for _, m := range memorySizes {
		run, err := r.sizeMemoryOnce(ctx, ms, m)
		if errors.Is(err, errNoCPULimit) {
			ms.Skipped = err.Error()
			return ms, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%d MB: %w", m, err)
		}
		r.step("upload function at %d MB: GET %s, POST %s, $%.5f per GiB", m, ms2(run.Get), ms2(run.Post), run.DollarsPerGiB)
		ms.Runs = append(ms.Runs, run)
	}
	fastest := slices.MinFunc(ms.Runs, func(a, b memoryRun) int { return int(a.Post - b.Post) }).Post
	best := -1
	for i, run := range ms.Runs {
		if float64(run.Post) <= chooseWithin*float64(fastest) && (best < 0 || run.DollarsPerGiB < ms.Runs[best].DollarsPerGiB) {
			best = i
		}
	}
	ms.Chosen = ms.Runs[best].MemoryMB
	return ms, nil
}

func ms2(d time.Duration) string { return ms(d) }

func (r *runner) sizeMemoryOnce(ctx context.Context, ms *memorySizing, memoryMB int) (memoryRun, error) {
	run := memoryRun{MemoryMB: memoryMB, CPUShare: min(1, float64(memoryMB)/oneVCPUMB)}
	inst, err := lambdarie.Start(ctx, lambdarie.Options{
		Function: "upload", Name: "flowgate-upload", Env: r.aws.serverEnv(),
		MemoryMB: memoryMB, Timeout: 29 * time.Second,
	})
	if err != nil {
		return run, err
	}
	var release func()
	defer func() {
		inst.Stop() // the bootstrap first, then its cgroup
		if release != nil {
			release()
		}
	}()

	id := fmt.Sprintf("memsize-%s-%d", r.runID, memoryMB)
	size := int64(ms.Chunks) * ms.Chunk
	g, err := flowclient.NewGeometry(flowclient.Options{ChunkSize: ms.Chunk, ForceChunkSize: true, Identifier: id}, size, "m.bin")
	if err != nil {
		return run, err
	}
	invoke := func(ev []byte, want int) (time.Duration, error) {
		start := time.Now()
		out, err := inst.Invoke(ctx, ev)
		took := time.Since(start)
		if err != nil {
			return 0, fmt.Errorf("%w\n%s", err, inst.Logs())
		}
		var resp events.APIGatewayProxyResponse
		if err := json.Unmarshal(out, &resp); err != nil || resp.StatusCode != want {
			return 0, fmt.Errorf("the function answered %.300s (want statusCode %d)\n%s", out, want, inst.Logs())
		}
		return took, nil
	}
	// The first invocation starts the bootstrap (a cold start, not measured
	// here); then its process gets its share of one CPU.
	warm, err := proxyEvent(http.MethodGet, g.Params(1), nil)
	if err != nil {
		return run, err
	}
	if _, err := invoke(warm, http.StatusNoContent); err != nil {
		return run, err
	}
	boots := inst.Bootstraps()
	if len(boots) != 1 {
		return run, fmt.Errorf("the emulator runs %d bootstrap processes, want 1", len(boots))
	}
	boot := boots[0]
	if release, err = limitCPU(boot, run.CPUShare); err != nil {
		return run, err
	}

	data := randomData(ms.Chunk)
	var gets, posts []time.Duration
	for n := 1; n <= ms.Chunks; n++ {
		ev, err := proxyEvent(http.MethodGet, g.Params(n), nil)
		if err != nil {
			return run, err
		}
		d, err := invoke(ev, http.StatusNoContent)
		if err != nil {
			return run, err
		}
		gets = append(gets, d)
		if ev, err = proxyEvent(http.MethodPost, g.Params(n), data); err != nil {
			return run, err
		}
		if d, err = invoke(ev, http.StatusOK); err != nil {
			return run, err
		}
		posts = append(posts, d)
	}
	run.Get, run.Post, run.PostMax = median(gets), median(posts), slices.Max(posts)
	if rss, err := proc.PeakRSS(boot); err == nil {
		run.PeakRSS = rss
	}
	// Per GiB of 4 MiB chunks: a test GET and a POST per chunk.
	perGiB := float64(gib / ms.Chunk)
	billed := math.Ceil(float64(run.Get)/float64(time.Millisecond)) + math.Ceil(float64(run.Post)/float64(time.Millisecond))
	run.DollarsPerGiB = perGiB * (2*priceLambdaPerM/1e6 + billed/1000*float64(memoryMB)/1024*priceLambdaPerGBs)
	return run, nil
}

// randomData is n bytes that do not compress.
func randomData(n int64) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(uint32(i) * 2654435761 >> 24)
	}
	return b
}

// proxyEvent is API Gateway's (REST API, Lambda proxy) event for a flow.js
// request: a test GET with the fields in the query string, or a multipart
// POST of data with the fields in the form, base64 as API Gateway sends a
// binary media type.
func proxyEvent(method string, fields []flowclient.Field, data []byte) ([]byte, error) {
	ev := events.APIGatewayProxyRequest{
		Resource: "/upload", Path: "/upload", HTTPMethod: method,
		Headers:           map[string]string{"Host": "abc123.execute-api.us-east-1.amazonaws.com", "Origin": "https://example.com"},
		MultiValueHeaders: map[string][]string{"Host": {"abc123.execute-api.us-east-1.amazonaws.com"}, "Origin": {"https://example.com"}},
		RequestContext: events.APIGatewayProxyRequestContext{
			AccountID: "123456789012", ResourceID: "abc", Stage: "Prod", RequestID: requestID,
			HTTPMethod: method, ResourcePath: "/upload", Path: "/Prod/upload", APIID: "abc123",
			RequestTimeEpoch: time.Now().UnixMilli(),
			Identity:         events.APIGatewayRequestIdentity{SourceIP: "127.0.0.1", UserAgent: "bench"},
		},
	}
	if method == http.MethodGet {
		ev.QueryStringParameters, ev.MultiValueQueryStringParameters = map[string]string{}, map[string][]string{}
		for _, f := range fields {
			ev.QueryStringParameters[f.Name], ev.MultiValueQueryStringParameters[f.Name] = f.Value, []string{f.Value}
		}
		return json.Marshal(ev)
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, f := range fields {
		if err := mw.WriteField(f.Name, f.Value); err != nil {
			return nil, err
		}
	}
	fw, err := mw.CreateFormFile("file", "blob")
	if err != nil {
		return nil, err
	}
	fw.Write(data)
	if err := mw.Close(); err != nil {
		return nil, err
	}
	ev.Headers["Content-Type"] = mw.FormDataContentType()
	ev.MultiValueHeaders["Content-Type"] = []string{mw.FormDataContentType()}
	ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString(body.Bytes()), true
	return json.Marshal(ev)
}

var errNoCPULimit = errors.New("no cgroup CPU controller this process may use (the sizes need root and cgroup v1's cpu or v2's cpu.max)")

// limitCPU puts process pid in a new cgroup limited to share of one CPU,
// and returns what removes it (after the process has ended or left).
func limitCPU(pid int, share float64) (func(), error) {
	const period = 100_000 // µs
	quota := int(share * period)
	name := fmt.Sprintf("flowgate-bench-%d-%d", os.Getpid(), pid)
	write := func(dir, file, v string) error { return os.WriteFile(filepath.Join(dir, file), []byte(v), 0o644) }
	// cgroup v1's cpu controller.
	if fi, err := os.Stat("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"); err == nil && fi.Mode().IsRegular() {
		dir := filepath.Join("/sys/fs/cgroup/cpu", name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return nil, fmt.Errorf("%w: %v", errNoCPULimit, err)
		}
		release := func() { removeCgroup(dir) }
		if err := errors.Join(write(dir, "cpu.cfs_period_us", strconv.Itoa(period)), write(dir, "cpu.cfs_quota_us", strconv.Itoa(quota)),
			write(dir, "cgroup.procs", strconv.Itoa(pid))); err != nil {
			release()
			return nil, fmt.Errorf("%w: %v", errNoCPULimit, err)
		}
		return release, nil
	}
	// cgroup v2, where this process may make a child with cpu.max.
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		dir := filepath.Join("/sys/fs/cgroup", name)
		write("/sys/fs/cgroup", "cgroup.subtree_control", "+cpu")
		if err := os.Mkdir(dir, 0o755); err != nil {
			return nil, fmt.Errorf("%w: %v", errNoCPULimit, err)
		}
		release := func() { removeCgroup(dir) }
		if err := errors.Join(write(dir, "cpu.max", fmt.Sprintf("%d %d", quota, period)), write(dir, "cgroup.procs", strconv.Itoa(pid))); err != nil {
			release()
			return nil, fmt.Errorf("%w: %v", errNoCPULimit, err)
		}
		return release, nil
	}
	return nil, errNoCPULimit
}

// removeCgroup removes a cgroup once its processes are gone (the emulator
// stops its bootstrap when it stops), waiting a little for them.
func removeCgroup(dir string) {
	for range 50 {
		if os.Remove(dir) == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
