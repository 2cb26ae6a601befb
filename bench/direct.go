package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/flowgate/flowgate/internal/devstack/localaws"
	"github.com/flowgate/flowgate/internal/devstack/s3notify"
	"github.com/flowgate/flowgate/internal/testkit/flowclient"
	"github.com/flowgate/flowgate/shared/awsdeploy"
	"github.com/flowgate/flowgate/shared/checksum"
	"github.com/flowgate/flowgate/shared/dynamoledger"
	"github.com/flowgate/flowgate/shared/publish"
	"github.com/flowgate/flowgate/shared/s3store"
	"github.com/flowgate/flowgate/shared/upload"
)

// The data paths side by side (issue 14): the same files sent on the proxy
// path (every chunk POSTed to the API, which stores it) and on the direct
// path (every chunk PUT into the bucket with a URL the API signed, counted
// when MinIO's notification of it comes), each against the PutObject
// ceiling of its own chunk size, with every request a deployment would pay
// for counted: API Gateway requests, Lambda invocations and their duration
// (measured here, at the template's memory sizes), S3 and DynamoDB.
//
// It runs on a MinIO and dynalite of its own (MinIO posting its bucket
// notifications to this process, package s3notify, which hands each to the
// server role's counting handler as Lambda would invoke the function), so
// that the notifications touch no other scenario.

// directScenario is one set of files, sent in several modes.
type directScenario struct {
	ID           string
	Files        int
	FileSize     int64
	Simultaneous int
	Parallel     int
	Modes        []directMode
}

// directMode is a data path and a chunk size.
type directMode struct {
	DataPath  string
	ChunkSize int64
}

func (m directMode) label() string {
	return fmt.Sprintf("%s, %s chunks", m.DataPath, size(m.ChunkSize))
}

func directScenarios(quick bool) []directScenario {
	modes := []directMode{{awsdeploy.DataPathProxy, 4 * mib}, {awsdeploy.DataPathDirect, 8 * mib}, {awsdeploy.DataPathDirect, 16 * mib}}
	if quick {
		return []directScenario{{ID: "direct-64mib", Files: 1, FileSize: 64 * mib, Simultaneous: 3, Parallel: 1, Modes: modes[:2]}}
	}
	return []directScenario{
		{ID: "direct-256mib", Files: 1, FileSize: 256 * mib, Simultaneous: 3, Parallel: 1, Modes: modes},
		{ID: "direct-8x32mib", Files: 8, FileSize: 32 * mib, Simultaneous: 3, Parallel: 8, Modes: modes},
	}
}

// scenario is the bench's Scenario for one mode: its geometry, for the
// ceiling and the files.
func (d directScenario) scenario(m directMode) Scenario {
	return Scenario{ID: d.ID, Path: "direct", Files: d.Files, FileSize: d.FileSize, ChunkSize: m.ChunkSize,
		Simultaneous: d.Simultaneous, Parallel: d.Parallel}
}

// DirectResult is one mode of one scenario.
type DirectResult struct {
	Scenario   directScenario
	Mode       directMode
	Stats      flowclient.Stats
	Ingest     time.Duration
	MiBps      float64
	PutCeil    ceiling
	ToComplete []time.Duration
	Counts     *awsCounts
	Lambda     lambdaUse
	Verified   int
}

func (r *DirectResult) chunks() int { return r.Scenario.scenario(r.Mode).Chunks() }

// Ratio is ingest over the PutObject ceiling of the same chunk size.
func (r *DirectResult) Ratio() float64 {
	if r.PutCeil.MiBps <= 0 {
		return 0
	}
	return r.MiBps / r.PutCeil.MiBps
}

// lambdaUse is what the functions of a deployment did: API Gateway requests
// (each an upload function invocation) by route, counting invocations, and
// the time each function ran.
type lambdaUse struct {
	API           map[string]int `json:"api"`
	UploadSeconds float64        `json:"uploadSeconds"`
	Counts        int            `json:"counts"`
	CountSeconds  float64        `json:"countSeconds"`
	// Assembly: one invocation per file, from the upload becoming ready
	// to its completion recorded.
	Assemblies      int     `json:"assemblies"`
	AssembleSeconds float64 `json:"assembleSeconds"`
}

// countMemoryMB is the counting function's memory (template.yaml), for
// Lambda's GB-seconds; the upload function's and the assembler's are in
// awscount.go, with the prices.
const countMemoryMB = 128

// directCost is one mode's requests and dollars per GiB of files.
type directCost struct {
	API, Invocations, GBs                                   float64 // per GiB
	S3Tier1, S3Tier2, WRU, RRU                              float64
	APIDollars, LambdaDollars, S3Dollars, DDBDollars, Total float64
	// AWSTotal is Total with the assembly's S3 requests as AWS makes them:
	// a chunk of 5 MiB or more is copied into its part inside S3 (one
	// UploadPartCopy), where MinIO, which refuses to copy into an upload
	// with checksums, has it read back and sent (a GET and an UploadPart,
	// after a refused copy).
	AWSTotal float64
}

func (r *DirectResult) cost() directCost {
	var c directCost
	sc := r.Scenario.scenario(r.Mode)
	gibs := float64(sc.Bytes()) / float64(gib)
	for _, n := range r.Lambda.API {
		c.API += float64(n)
	}
	c.Invocations = c.API + float64(r.Lambda.Counts) + float64(r.Lambda.Assemblies)
	c.GBs = (r.Lambda.UploadSeconds*uploadMemoryMB + r.Lambda.CountSeconds*countMemoryMB + r.Lambda.AssembleSeconds*assembleMemoryMB) / 1024
	if r.Counts != nil {
		for op, n := range r.Counts.S3 {
			switch s3Tier(op) {
			case 1:
				c.S3Tier1 += float64(n)
			case 2:
				c.S3Tier2 += float64(n)
			}
		}
		c.WRU, c.RRU = r.Counts.WRU, r.Counts.RRU
	}
	// The browser's own chunk PUTs (direct) are S3 PUTs too.
	if r.Mode.DataPath == awsdeploy.DataPathDirect {
		c.S3Tier1 += float64(r.Stats.POSTs)
	}
	c.APIDollars = c.API * priceAPIGWPerM / 1e6
	c.LambdaDollars = c.Invocations*priceLambdaPerM/1e6 + c.GBs*priceLambdaPerGBs
	c.S3Dollars = c.S3Tier1*priceS3Tier1PerK/1000 + c.S3Tier2*priceS3Tier2PerK/1000
	c.DDBDollars = c.WRU*priceWRUPerM/1e6 + c.RRU*priceRRUPerM/1e6
	for _, p := range []*float64{&c.API, &c.Invocations, &c.GBs, &c.S3Tier1, &c.S3Tier2, &c.WRU, &c.RRU,
		&c.APIDollars, &c.LambdaDollars, &c.S3Dollars, &c.DDBDollars} {
		*p /= gibs
	}
	c.Total = c.APIDollars + c.LambdaDollars + c.S3Dollars + c.DDBDollars
	c.AWSTotal = c.Total
	if r.Counts != nil && r.Mode.ChunkSize >= 5*mib {
		n := r.Counts.S3
		tier1 := float64(n["UploadPart"]+n["UploadPartCopy"]-r.chunks()) / gibs
		tier2 := float64(n["GetObject"]) / gibs
		c.AWSTotal -= tier1*priceS3Tier1PerK/1000 + tier2*priceS3Tier2PerK/1000
	}
	return c
}

// directEnv is the MinIO and dynalite of the comparison, and the receiver
// of MinIO's notifications.
type directEnv struct {
	*awsEnv
	notify *s3notify.Receiver
	count  atomic.Value // the current server's counting URL ("" drops events)
	http   *http.Client // trusts MinIO's certificate: the client's PUTs
}

func (r *runner) startDirect(ctx context.Context) (*directEnv, error) {
	recv, err := s3notify.Listen("127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	queue := filepath.Join(r.tmp, "direct-notify-queue")
	if err := os.MkdirAll(queue, 0o755); err != nil {
		return nil, err
	}
	start, cancel := context.WithTimeout(ctx, 20*time.Minute)
	defer cancel()
	servers, err := localaws.Start(start, localaws.Options{DataDir: filepath.Join(r.tmp, "minio-direct"), Log: r.opt.Log,
		MinIOEnv: recv.MinIOEnv(queue, localaws.Region)})
	if err != nil {
		recv.Stop()
		return nil, err
	}
	d := &directEnv{notify: recv, awsEnv: &awsEnv{servers: servers, env: servers.Env(), bucket: "flowgate-direct", table: "flowgate-direct"}}
	d.count.Store("")
	fail := func(err error) (*directEnv, error) { d.stop(); return nil, err }
	// Clients of these servers, not of those the environment names (the
	// other scenarios' MinIO and dynalite).
	if d.http, err = servers.HTTPClient(); err != nil {
		return fail(err)
	}
	d.http.Timeout = 0
	tr := d.http.Transport.(*http.Transport)
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost, tr.Proxy = 256, 64, nil
	cfg := aws.Config{Region: localaws.Region, HTTPClient: d.http,
		Credentials: credentials.NewStaticCredentialsProvider(localaws.AccessKey, localaws.SecretKey, "")}
	d.s3 = s3store.NewClient(cfg, func(o *s3.Options) { o.BaseEndpoint = aws.String(servers.S3Endpoint) })
	if _, err := d.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(d.bucket)}); err != nil {
		return fail(err)
	}
	db := dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(servers.DynamoDBEndpoint) })
	if err := dynamoledger.CreateTable(ctx, db, d.table); err != nil {
		return fail(err)
	}
	// Lambda's asynchronous invocation of the counting function, as
	// make dev delivers them.
	recv.Start(s3notify.Options{
		Invoke: func(ctx context.Context, ev []byte) ([]byte, error) {
			url := d.count.Load().(string)
			if url == "" {
				return nil, nil
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(ev))
			if err != nil {
				return nil, err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return nil, err
			}
			defer resp.Body.Close()
			out, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK {
				return nil, fmt.Errorf("count: %d %s", resp.StatusCode, out)
			}
			return out, nil
		},
		RetryDelays: []time.Duration{100 * time.Millisecond, 200 * time.Millisecond},
		Workers:     8,
		Region:      localaws.Region,
	})
	return d, nil
}

func (d *directEnv) stop() {
	d.notify.Stop()
	d.servers.Stop()
}

// notifications routes the bucket's notifications of chunk objects to the
// webhook (direct), or nowhere (proxy: the template deploys no counting
// function then).
func (d *directEnv) notifications(ctx context.Context, on bool) error {
	if on {
		return s3notify.Configure(ctx, d.s3, d.bucket, s3store.DefaultStagingPrefix)
	}
	_, err := d.s3.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
		Bucket: &d.bucket, NotificationConfiguration: &s3types.NotificationConfiguration{},
	})
	return err
}

// runDirect measures every mode of every direct scenario.
func (r *runner) runDirect(ctx context.Context, list []directScenario) ([]*DirectResult, error) {
	d, err := r.startDirect(ctx)
	if err != nil {
		return nil, err
	}
	defer d.stop()
	var out []*DirectResult
	for _, ds := range list {
		for _, m := range ds.Modes {
			if err := ctx.Err(); err != nil {
				return out, errStopped
			}
			r.logf("%s: %s × %s, %s", ds.ID, count(ds.Files), size(ds.FileSize), m.label())
			res, err := r.runDirectMode(ctx, d, ds, m)
			if err != nil {
				return out, fmt.Errorf("%s %s: %w", ds.ID, m.label(), err)
			}
			c := res.cost()
			r.logf("%s %s: %.0f MiB/s (PutObject ceiling %.0f MiB/s, %.0f%%), last chunk -> complete %s; per GiB %.0f API requests, %.0f invocations, $%.5f",
				ds.ID, m.label(), res.MiBps, res.PutCeil.MiBps, 100*res.Ratio(), ms(percentile(res.ToComplete, 100)), c.API, c.Invocations, c.Total)
			out = append(out, res)
		}
	}
	return out, nil
}

func (r *runner) runDirectMode(ctx context.Context, d *directEnv, ds directScenario, m directMode) (*DirectResult, error) {
	sc := ds.scenario(m)
	res := &DirectResult{Scenario: ds, Mode: m}
	files := makeFiles(sc, r.runID+"-"+m.DataPath+fmt.Sprint(m.ChunkSize>>20))
	sums(files)
	prefix := "ceiling/" + ds.ID + "-" + r.runID + "/"
	ceilings := func() error {
		syncDisk()
		c, err := d.putCeiling(ctx, sc, files, prefix)
		if err != nil {
			return fmt.Errorf("PutObject ceiling: %w", err)
		}
		res.PutCeil = res.PutCeil.or(c)
		return d.deletePrefix(ctx, prefix)
	}
	if err := ceilings(); err != nil {
		return nil, err
	}
	if err := d.notifications(ctx, m.DataPath == awsdeploy.DataPathDirect); err != nil {
		return nil, err
	}
	env := d.serverEnv(roleEnv+"="+roleDirectServer, "FLOWGATE_WEBHOOK_URL="+r.events.URL, "FLOWGATE_DATA_PATH="+m.DataPath,
		"FLOWGATE_MAX_CHUNK_SIZE=64MiB")
	srv, err := startServer(ctx, "directserver", r.self, nil, env, r.tmp, filepath.Join(r.tmp, ds.ID+"-"+m.DataPath+".log"))
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	d.count.Store(srv.URL + "/bench/count")
	defer d.count.Store("")
	if err := post(ctx, srv.URL+"/bench/reset"); err != nil {
		return nil, err
	}

	run, err := uploadWith(ctx, &flowclient.Client{BaseURL: srv.URL, HTTP: d.http}, sc, files, m.DataPath == awsdeploy.DataPathDirect)
	if err != nil {
		return nil, err
	}
	res.Stats, res.Ingest = run.Stats, run.Wall()
	res.MiBps = mibps(sc.Bytes(), res.Ingest)
	evs, err := r.events.wait(ctx, files, 3*time.Minute)
	if err != nil {
		return nil, err
	}
	res.ToComplete = toComplete(run, evs)
	var counters struct {
		AWS    awsCounts `json:"aws"`
		Lambda lambdaUse `json:"lambda"`
	}
	if err := getJSON(ctx, srv.URL+"/bench/counters", &counters); err != nil {
		return nil, err
	}
	res.Counts, res.Lambda = &counters.AWS, counters.Lambda
	for i, ev := range evs {
		// The file's checksum, which S3 proved against the object's bytes
		// when it completed it, is the file's.
		if ev.CRC64NVME != checksum.Encode(crcOf(files[i].Src)) || ev.Size != files[i].Src.Size {
			return nil, fmt.Errorf("%s: finished as %d bytes with CRC %s, not the file sent", files[i].Name, ev.Size, ev.CRC64NVME)
		}
		res.Verified++
	}
	srv.stop()
	var keys []string
	for _, ev := range evs {
		keys = append(keys, ev.Object)
	}
	if err := d.deleteKeys(ctx, keys); err != nil {
		return nil, err
	}
	if err := ceilings(); err != nil {
		return nil, err
	}
	return res, nil
}

// crcOf is a source's CRC-64/NVME.
func crcOf(s *source) uint64 {
	h := checksum.NewCRC64NVME()
	buf := make([]byte, 1<<20)
	for off := int64(0); off < s.Size; {
		n, _ := s.ReadAt(buf, off)
		h.Write(buf[:n])
		off += int64(n)
	}
	return h.Sum64()
}

// roleDirectServer is the comparison's server: the upload function's
// handler in either data path, the counting function's handler fed by
// POST /bench/count (the notifications), the assembler's stream handler
// fed as uploads become ready; every S3 and DynamoDB request counted, and
// each handler's time.
const roleDirectServer = "directserver"

func runDirectServer(ctx context.Context) error {
	d, counter, err := countedDeployment(ctx)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	use := lambdaUse{API: map[string]int{}}
	readyAt := map[string]time.Time{}
	// The assembly's time: from the upload ready to its completion
	// recorded (the event published then).
	timing := publisherFunc(func(ctx context.Context, ev upload.Event) error {
		mu.Lock()
		defer mu.Unlock()
		if t, ok := readyAt[ev.UploadKey]; ok {
			use.Assemblies++
			use.AssembleSeconds += ev.CompletedAt.Sub(t).Seconds()
			delete(readyAt, ev.UploadKey)
		}
		return nil
	})
	d.Publisher = publish.All{d.Publisher, timing}
	if url := os.Getenv("FLOWGATE_WEBHOOK_URL"); url != "" {
		d.Publisher = publish.All{d.Publisher, publish.Webhook{URL: url}}
	}
	q := newReadyQueue(8, d.StreamHandler())
	d.Service.OnReady = func(key string) {
		mu.Lock()
		readyAt[key] = time.Now()
		mu.Unlock()
		q.enqueue(key)
	}
	bg, stopBG := context.WithCancel(context.Background())
	defer stopBG()
	go q.run(bg)

	api := d.Handler()
	timed := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		began := time.Now()
		api.ServeHTTP(w, req)
		mu.Lock()
		use.API[req.Method+" "+req.URL.Path]++
		use.UploadSeconds += time.Since(began).Seconds()
		mu.Unlock()
	})
	count := d.CountHandler()
	mux := http.NewServeMux()
	for _, p := range []string{"/upload", "/upload/status", "/upload/urls", "/upload/config"} {
		mux.Handle(p, timed)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("POST /bench/count", func(w http.ResponseWriter, req *http.Request) {
		began := time.Now()
		var ev events.S3Event
		if err := json.NewDecoder(req.Body).Decode(&ev); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rep, err := count.Handle(req.Context(), ev)
		mu.Lock()
		use.Counts++
		use.CountSeconds += time.Since(began).Seconds()
		mu.Unlock()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		json.NewEncoder(w).Encode(rep)
	})
	mux.HandleFunc("GET /bench/counters", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"aws": counter.snapshot(), "lambda": use})
	})
	mux.HandleFunc("POST /bench/reset", func(w http.ResponseWriter, r *http.Request) {
		counter.reset()
		mu.Lock()
		use = lambdaUse{API: map[string]int{}}
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	return serve(ctx, mux)
}

// publisherFunc is a function as an upload.Publisher.
type publisherFunc func(context.Context, upload.Event) error

func (f publisherFunc) Publish(ctx context.Context, ev upload.Event) error { return f(ctx, ev) }

// directMarkdown is the report's section on the data paths.
func directMarkdown(b *strings.Builder, results []*DirectResult) {
	if len(results) == 0 {
		return
	}
	p := func(format string, args ...any) { fmt.Fprintf(b, format+"\n", args...) }
	p("## Data paths: proxy and direct, on the same files")
	p("")
	p("The same files sent on the proxy path (every chunk POSTed to the API, which stores it: at most 4 MiB behind")
	p("API Gateway) and on the direct path (`FLOWGATE_DATA_PATH=direct`: URLs from the API a batch of 16 chunks at a")
	p("time, each chunk PUT into MinIO by the client with its URL, counted when MinIO's notification of it reaches the")
	p("counting handler), each against raw PutObject of its own chunk size on the same MinIO, before and after.")
	p("")
	p("| files | path | ingest MiB/s | PutObject ceiling MiB/s | ratio | last chunk → complete |")
	p("| --- | --- | ---: | ---: | ---: | ---: |")
	for _, r := range results {
		p("| %s × %s | %s | %s | %s | **%.0f%%** | %s |", count(r.Scenario.Files), size(r.Scenario.FileSize), r.Mode.label(),
			rate(r.MiBps), rate(r.PutCeil.MiBps), 100*r.Ratio(), completeOf(r.ToComplete))
	}
	p("")
	p("Requests and dollars per GiB of files, everything a deployment pays per request included:")
	p("")
	p("| files | path | API requests | Lambda invocations | Lambda GB-s | S3 PUT class | S3 GET class | WRU | API Gateway $ | Lambda $ | S3 $ | DynamoDB $ | **total $** | of proxy | total $ with AWS's assembly | of proxy |")
	p("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, r := range results {
		c := r.cost()
		var base, baseAWS float64
		for _, q := range results {
			if q.Scenario.ID == r.Scenario.ID && q.Mode.DataPath == awsdeploy.DataPathProxy {
				base, baseAWS = q.cost().Total, q.cost().AWSTotal
			}
		}
		share, shareAWS := "—", "—"
		if base > 0 && r.Mode.DataPath != awsdeploy.DataPathProxy {
			share = fmt.Sprintf("%.0f%%", 100*c.Total/base)
			shareAWS = fmt.Sprintf("**%.0f%%**", 100*c.AWSTotal/baseAWS)
		}
		p("| %s × %s | %s | %.0f | %.0f | %.2f | %.0f | %.0f | %.0f | %.5f | %.5f | %.5f | %.5f | **%.5f** | %s | %.5f | %s |",
			count(r.Scenario.Files), size(r.Scenario.FileSize), r.Mode.label(), c.API, c.Invocations, c.GBs, c.S3Tier1, c.S3Tier2, c.WRU,
			c.APIDollars, c.LambdaDollars, c.S3Dollars, c.DDBDollars, c.Total, share, c.AWSTotal, shareAWS)
	}
	p("")
	p("API requests by kind, per GiB:")
	p("")
	for _, r := range results {
		sc := r.Scenario.scenario(r.Mode)
		gibs := float64(sc.Bytes()) / float64(gib)
		var kinds []string
		keys := make([]string, 0, len(r.Lambda.API))
		for k := range r.Lambda.API {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			kinds = append(kinds, fmt.Sprintf("%s %.0f", k, float64(r.Lambda.API[k])/gibs))
		}
		p("- %s × %s, %s (%s chunks): %s; counting invocations %.0f, chunk %s %.0f.", count(r.Scenario.Files), size(r.Scenario.FileSize), r.Mode.label(),
			count(r.chunks()), strings.Join(kinds, ", "), float64(r.Lambda.Counts)/gibs, map[bool]string{true: "PUTs to S3", false: "POSTs"}[r.Mode.DataPath == awsdeploy.DataPathDirect], float64(r.Stats.POSTs)/gibs)
	}
	p("")
	p("```")
	p("$/GiB = API Gateway requests × $%.2f / 10^6                    REST API", priceAPIGWPerM)
	p("      + Lambda invocations  × $%.2f / 10^6 + GB-s × $%.10f    arm64", priceLambdaPerM, priceLambdaPerGBs)
	p("      + S3 and DynamoDB requests as above")
	p("```")
	p("")
	p("API requests are those the client made to the API (test GETs, chunk POSTs, URL requests; the status requests a")
	p("page makes after the last chunk are left out, the same for both paths); each is an upload function invocation.")
	p("Lambda invocations add one counting invocation per notification (direct) and one assembly per file. GB-s is each")
	p("handler's time measured here times the template's memory (upload %d MB, count %d MB, assemble %d MB): on AWS a", uploadMemoryMB, countMemoryMB, assembleMemoryMB)
	p("proxied chunk's invocation also lasts while API Gateway hands it the body and it sends the chunk on to S3, which")
	p("is longer than on this loopback; with several files at once, the requests share this machine's two cores (each")
	p("invocation has its own on AWS) and their GB-s come out inflated. S3 PUTs include the client's own chunk PUTs on the direct path (a duplicate's")
	p("second PUT, refused with 412, too). On AWS the assembly copies a chunk of 5 MiB or more inside S3 (one")
	p("UploadPartCopy, PUT class); MinIO cannot copy into an upload with checksums, so here such chunks are read back")
	p("and streamed (a refused copy, a GET and an UploadPart each): **total with AWS's assembly** counts those as the")
	p("one UploadPartCopy per chunk AWS makes (the Lambda time of the assembly is left as measured: streaming, so an")
	p("overestimate). Proxy chunks (4 MiB) are streamed on AWS too. S3's events to EventBridge, which start the")
	p("counting function on AWS, are not billed as events.")
	p("")
}

func completeOf(ds []time.Duration) string {
	if len(ds) == 1 {
		return ms(max(ds[0], 0))
	}
	return fmt.Sprintf("%s / %s", ms(max(percentile(ds, 50), 0)), ms(max(percentile(ds, 100), 0)))
}
