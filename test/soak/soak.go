package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/flowgate/flowgate/internal/devstack/localaws"
	"github.com/flowgate/flowgate/internal/proc"
	"github.com/flowgate/flowgate/internal/testkit/flowclient"
	"github.com/flowgate/flowgate/shared/s3store"
)

// Config is one soak run.
type Config struct {
	Target   string        // "local" (cmd/flowgate) or "dev" (make dev: the AWS path on MinIO and dynalite)
	Duration time.Duration // how long new uploads are started
	Clients  int           // simulated users uploading at once
	Seed     uint64
	// MaxFile bounds the file sizes drawn (the mix is mostly small files).
	MaxFile int64
	// Grace bounds the wait, after Duration, for uploads in flight to finish.
	Grace time.Duration
	// StuckAfter bounds how long an upload whose every chunk got 200 may
	// take to be complete, or failed with a reason; past it, it is stuck.
	StuckAfter time.Duration
	// RSSFactor and RSSSlack are the tolerated growth of the server's
	// resident memory from the end of the warm-up to the end of the run:
	// end <= warm*RSSFactor + RSSSlack.
	RSSFactor float64
	RSSSlack  int64
	// FDSlack is how many more files (not sockets) the server may hold
	// open at rest after the run than at the start. Inbound connections
	// must all be gone; outbound ones (the SDK's pools to MinIO and
	// dynalite) are reported.
	FDSlack int
	// Root is the repository; WorkDir holds the binary, the data and logs
	// (a temporary directory, removed at the end, if empty).
	Root    string
	WorkDir string
	// Progress, if set, gets a line every few seconds.
	Progress io.Writer
}

// Defaults fills in what is zero.
func (c *Config) Defaults() {
	if c.Target == "" {
		c.Target = "local"
	}
	if c.Duration == 0 {
		c.Duration = 2 * time.Minute
	}
	if c.Clients == 0 {
		c.Clients = 12
	}
	if c.Seed == 0 {
		c.Seed = uint64(time.Now().UnixNano())
	}
	if c.MaxFile == 0 {
		c.MaxFile = 12 << 20
	}
	if c.Grace == 0 {
		c.Grace = 90 * time.Second
	}
	if c.StuckAfter == 0 {
		c.StuckAfter = 60 * time.Second
	}
	if c.RSSFactor == 0 {
		c.RSSFactor = 1.5
	}
	if c.RSSSlack == 0 {
		c.RSSSlack = 32 << 20
	}
	if c.FDSlack == 0 {
		c.FDSlack = 2
	}
}

// Report is what a run found.
type Report struct {
	Target   string
	Seed     uint64
	Duration time.Duration // wall time of the load, grace included
	Clients  int

	Started   int // uploads started
	Completed int // finished by the client and complete on the server with the right bytes
	// Lost: every chunk got 200, and the server then said the upload
	// failed, or knew it no more.
	Lost int
	// Stuck: every chunk got 200, and the upload was neither complete nor
	// failed with a reason StuckAfter later.
	Stuck      int
	StuckAfter time.Duration
	Corrupt    int // complete, with other bytes than were sent
	Failed     int // the client gave up: the server refused a valid chunk for good
	Abandoned  int // left half done on purpose (not counted as lost)
	// Unfinished were still uploading when the grace after Duration ran
	// out: the server was too slow, or stuck.
	Unfinished int
	Bytes      int64 // bytes of completed files

	Client flowclient.Stats // every request of every upload

	Idle, Warm, End, Peak proc.Stats // the server process
	IdleFDs, EndFDs       proc.FDs   // its descriptors by kind, before and after, at rest
	// Children are the server's descendant processes at the end (under
	// `dev`: MinIO, dynalite, each function instance's emulator and
	// bootstrap), by command name; TreeRSS is the whole tree's resident
	// memory, the server's included.
	Children map[string]ChildStats
	TreeRSS  int64
	// Stack is what make dev's stack reports it did (`dev` only).
	Stack *StackStats

	Problems []string // why the run failed; empty when it passed
}

// Passed reports whether the run found nothing wrong.
func (r *Report) Passed() bool { return len(r.Problems) == 0 }

func (r *Report) String() string {
	var b strings.Builder
	mib := func(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
	fmt.Fprintf(&b, "soak %s: %d clients for %v (seed %d)\n", r.Target, r.Clients, r.Duration.Round(time.Second), r.Seed)
	fmt.Fprintf(&b, "  uploads   started %d, completed %d (%s), lost %d, corrupt %d, stuck %d (not complete or failed %v after its last chunk), failed %d, unfinished %d, abandoned on purpose %d\n",
		r.Started, r.Completed, mib(r.Bytes), r.Lost, r.Corrupt, r.Stuck, r.StuckAfter, r.Failed, r.Unfinished, r.Abandoned)
	var cs []string
	for _, c := range sortedKeys(r.Client.Status) {
		cs = append(cs, fmt.Sprintf("%d×%d", r.Client.Status[c], c))
	}
	fmt.Fprintf(&b, "  requests  %d GETs, %d POSTs (%d retries, %d cut off mid-body, %d network errors); statuses %s; chunk POST p50 %v p99 %v\n",
		r.Client.GETs, r.Client.POSTs, r.Client.Retries, r.Client.Aborted, r.Client.NetErrors, strings.Join(cs, " "),
		r.Client.Percentile(50).Round(100*time.Microsecond), r.Client.Percentile(99).Round(100*time.Microsecond))
	var as []string
	for _, c := range sortedKeys(r.Client.AbortStatus) {
		as = append(as, fmt.Sprintf("%d×%d", r.Client.AbortStatus[c], c))
	}
	fmt.Fprintf(&b, "            cut-off requests answered %s\n", strings.Join(as, " "))
	if r.Client.AbortAccepted > 0 {
		fmt.Fprintf(&b, "  !! %d cut-off requests were answered with a success\n", r.Client.AbortAccepted)
	}
	fmt.Fprintf(&b, "  server    idle:  %s\n", r.Idle)
	fmt.Fprintf(&b, "            warm:  %s\n", r.Warm)
	fmt.Fprintf(&b, "            end:   %s\n", r.End)
	fmt.Fprintf(&b, "            peak:  rss %s, %d threads, %d fds during the run\n", mib(r.Peak.RSS), r.Peak.Threads, r.Peak.FDs)
	fmt.Fprintf(&b, "  fds       idle:  %s\n", r.IdleFDs)
	fmt.Fprintf(&b, "            end:   %s\n", r.EndFDs)
	names := make([]string, 0, len(r.Children))
	for n := range r.Children {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := r.Children[n]
		fmt.Fprintf(&b, "  child     %-15s ×%d  rss %s\n", n, c.N, mib(c.RSS))
	}
	if r.TreeRSS > 0 {
		fmt.Fprintf(&b, "  all       rss %s (the server and every process under it, at rest after the run)\n", mib(r.TreeRSS))
	}
	if st := r.Stack; st != nil {
		fmt.Fprintf(&b, "  stack     upload invocations per instance %v; assemble %v\n", st.Upload.Invokes, st.Assemble.Invokes)
		m := st.Mapping
		fmt.Fprintf(&b, "            stream: %d records read, %d filtered out, %d invocations, %d batches delivered twice, %d function errors, %d retries, %d bisections, %d records given up (%d messages to the failure queue)\n",
			m.Read, m.Filtered, m.Invocations, m.Duplicates, m.FunctionErrors, m.Retries, m.Bisections, m.Discarded, m.DestinationMessages)
		rd := st.Redrives
		fmt.Fprintf(&b, "            re-drive: %d runs (%d failed), %d failure-queue messages replayed, %d dropped, %d uploads owed, %d driven\n",
			rd.Runs, rd.Errors, rd.Replayed, rd.Dropped, rd.Owed, rd.Driven)
	}
	if r.Passed() {
		b.WriteString("PASS\n")
	} else {
		for _, p := range r.Problems {
			fmt.Fprintf(&b, "  problem: %s\n", p)
		}
		b.WriteString("FAIL\n")
	}
	return b.String()
}

// target is a running server under test.
type target struct {
	proc *proc.Proc
	// read returns the finished file at a status location.
	read func(ctx context.Context, location string) (io.ReadCloser, error)
	// stats, if set, reads what the stack did (make dev's).
	stats func(ctx context.Context) (*StackStats, error)
}

// Run starts the target, soaks it and stops it.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.Defaults()
	rep := &Report{Target: cfg.Target, Seed: cfg.Seed, Clients: cfg.Clients, StuckAfter: cfg.StuckAfter}
	work := cfg.WorkDir
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "flowgate-soak-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(work)
	}
	tg, err := start(ctx, cfg, work)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := tg.proc.Stop(30 * time.Second); err != nil {
			rep.Problems = append(rep.Problems, "stopping the server: "+err.Error())
		}
	}()
	pid := tg.proc.Pid()
	port := proc.Port(tg.proc.Addr)
	if rep.Idle, err = proc.ReadStats(pid); err != nil {
		return nil, err
	}
	if rep.IdleFDs, err = proc.ReadFDs(pid, port); err != nil {
		return nil, err
	}

	transport := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
	}
	client := &flowclient.Client{BaseURL: tg.proc.URL, HTTP: &http.Client{Transport: transport}}

	began := time.Now()
	stopStarting := began.Add(cfg.Duration)
	loadCtx, cancelLoad := context.WithDeadline(ctx, stopStarting.Add(cfg.Grace))
	defer cancelLoad()

	// The server is sampled every second: the peak, the warm-up point and
	// whether it is still alive.
	warmAt := began.Add(min(max(cfg.Duration/10, 2*time.Second), 15*time.Second))
	var (
		sampleMu  sync.Mutex
		warmTaken bool
		died      atomic.Bool
		completed atomic.Int64
	)
	sampleDone := make(chan struct{})
	go func() {
		defer close(sampleDone)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		lastProgress := time.Now()
		for {
			select {
			case <-loadCtx.Done():
				return
			case <-tg.proc.Exited():
				died.Store(true)
				cancelLoad()
				return
			case <-tick.C:
			}
			st, err := proc.ReadStats(pid)
			if err != nil {
				continue
			}
			sampleMu.Lock()
			rep.Peak.RSS = max(rep.Peak.RSS, st.RSS)
			rep.Peak.Threads = max(rep.Peak.Threads, st.Threads)
			rep.Peak.FDs = max(rep.Peak.FDs, st.FDs)
			if !warmTaken && time.Now().After(warmAt) {
				rep.Warm, warmTaken = st, true
			}
			sampleMu.Unlock()
			if cfg.Progress != nil && time.Since(lastProgress) >= 10*time.Second {
				lastProgress = time.Now()
				fmt.Fprintf(cfg.Progress, "soak %s: %v, %d completed; server %s\n", cfg.Target,
					time.Since(began).Round(time.Second), completed.Load(), st)
			}
		}
	}()

	var (
		mu      sync.Mutex
		clients sync.WaitGroup
	)
	count := func(f func()) { mu.Lock(); f(); mu.Unlock() }
	for c := range cfg.Clients {
		clients.Go(func() {
			rng := rand.New(rand.NewPCG(cfg.Seed, uint64(c)))
			for n := 0; time.Now().Before(stopStarting) && loadCtx.Err() == nil; n++ {
				u := drawUpload(rng, cfg, c, n)
				count(func() { rep.Started++ })
				res, stats := soakOne(loadCtx, client, tg, u, cfg.StuckAfter)
				count(func() {
					rep.Client.Add(stats)
					switch res.kind {
					case completedOK:
						rep.Completed++
						rep.Bytes += int64(len(u.data))
						completed.Add(1)
					case lost:
						rep.Lost++
						rep.Problems = append(rep.Problems, fmt.Sprintf("lost %s (%d bytes): %s", u.name, len(u.data), res.why))
					case stuck:
						rep.Stuck++
						rep.Problems = append(rep.Problems, fmt.Sprintf("stuck %s (%d bytes): %s", u.name, len(u.data), res.why))
					case corrupt:
						rep.Corrupt++
						rep.Problems = append(rep.Problems, fmt.Sprintf("corrupt %s (%d bytes): %s", u.name, len(u.data), res.why))
					case failed:
						rep.Failed++
						rep.Problems = append(rep.Problems, fmt.Sprintf("failed %s (%d bytes): %s", u.name, len(u.data), res.why))
					case abandoned:
						rep.Abandoned++
					case interrupted:
						// The run ended mid-upload: Ctrl-C, the server died,
						// or the grace ran out.
						rep.Unfinished++
					}
				})
			}
		})
	}
	clients.Wait()
	rep.Duration = time.Since(began)
	cancelLoad()
	<-sampleDone
	if died.Load() {
		rep.Problems = append(rep.Problems, "the server exited during the run:\n"+lastLines(tg.proc.Log(), 40))
		return rep, nil
	}
	if ctx.Err() != nil {
		return rep, ctx.Err()
	}
	if rep.Unfinished > 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("%d uploads still unfinished %v after the load stopped", rep.Unfinished, cfg.Grace))
	}

	// At rest: no client connection left open, so what the server still
	// holds is its own.
	transport.CloseIdleConnections()
	deadline := time.Now().Add(10 * time.Second)
	for {
		time.Sleep(500 * time.Millisecond)
		if rep.End, err = proc.ReadStats(pid); err != nil {
			return rep, err
		}
		if rep.EndFDs, err = proc.ReadFDs(pid, port); err != nil {
			return rep, err
		}
		if rep.EndFDs.Inbound == 0 && rep.EndFDs.Files <= rep.IdleFDs.Files+cfg.FDSlack || time.Now().After(deadline) {
			break
		}
	}
	rep.Children = map[string]ChildStats{}
	rep.TreeRSS = rep.End.RSS
	for _, child := range descendants(pid) {
		if st, err := proc.ReadStats(child); err == nil {
			c := rep.Children[proc.Comm(child)]
			c.N++
			c.RSS += st.RSS
			rep.Children[proc.Comm(child)] = c
			rep.TreeRSS += st.RSS
		}
	}
	if tg.stats != nil {
		if rep.Stack, err = tg.stats(ctx); err != nil {
			rep.Problems = append(rep.Problems, "reading the stack's stats: "+err.Error())
		}
	}

	if rep.Completed == 0 {
		rep.Problems = append(rep.Problems, "no upload completed")
	}
	if rep.Client.AbortAccepted > 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("%d cut-off requests were taken as chunks", rep.Client.AbortAccepted))
	}
	if !warmTaken {
		rep.Warm = rep.Idle
	}
	if limit := int64(float64(rep.Warm.RSS)*cfg.RSSFactor) + cfg.RSSSlack; rep.End.RSS > limit {
		rep.Problems = append(rep.Problems, fmt.Sprintf("server RSS grew from %d MiB after the warm-up to %d MiB at the end (tolerance %.1f× + %d MiB)",
			rep.Warm.RSS>>20, rep.End.RSS>>20, cfg.RSSFactor, cfg.RSSSlack>>20))
	}
	if rep.EndFDs.Files > rep.IdleFDs.Files+cfg.FDSlack {
		rep.Problems = append(rep.Problems, fmt.Sprintf("server holds %d files open at rest after the run, %d before it (tolerance +%d)",
			rep.EndFDs.Files, rep.IdleFDs.Files, cfg.FDSlack))
	}
	if rep.EndFDs.Inbound > 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("server still holds %d client connections 10 s after every client closed its own", rep.EndFDs.Inbound))
	}
	if rep.EndFDs.Other > rep.IdleFDs.Other+cfg.FDSlack {
		rep.Problems = append(rep.Problems, fmt.Sprintf("server holds %d pipes/event fds at rest after the run, %d before it", rep.EndFDs.Other, rep.IdleFDs.Other))
	}
	return rep, nil
}

// start builds and starts the target.
func start(ctx context.Context, cfg Config, work string) (*target, error) {
	build, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	switch cfg.Target {
	case "local":
		bin := filepath.Join(work, "flowgate")
		if err := proc.Build(build, cfg.Root, "./cmd/flowgate", bin, nil); err != nil {
			return nil, err
		}
		data := filepath.Join(work, "data")
		p, err := proc.StartServer(ctx, proc.Options{
			Bin: bin, Dir: work,
			Env: []string{"FLOWGATE_DATA_DIR=" + data, "FLOWGATE_WEB_DIR=" + filepath.Join(work, "no-web"), "FLOWGATE_LOG_LEVEL=warn"},
		})
		if err != nil {
			return nil, err
		}
		return &target{proc: p, read: func(ctx context.Context, loc string) (io.ReadCloser, error) {
			if !strings.HasPrefix(loc, "files/") || strings.Contains(loc, "..") {
				return nil, fmt.Errorf("location %q is not under files/", loc)
			}
			return os.Open(filepath.Join(data, filepath.FromSlash(loc)))
		}}, nil

	case "dev":
		bin := filepath.Join(work, "flowgate-dev")
		if err := proc.Build(build, cfg.Root, "./internal/devstack/cmd/flowgate-dev", bin, nil); err != nil {
			return nil, err
		}
		minio, err := proc.FreeAddr()
		if err != nil {
			return nil, err
		}
		dynalite, err := proc.FreeAddr()
		if err != nil {
			return nil, err
		}
		// The platform at its harshest within a short run: three upload
		// instances, every stream batch delivered twice one time in five,
		// uploads idle 30 s expire (the abandoned ones do, mid-run) and
		// finished records go a minute after completion, the emulated TTL
		// removing each 15 s after its expiry, and the re-drive every
		// 20 s. The bootstraps build in the checkout (cfg.Root).
		front, err := proc.FreeAddr()
		if err != nil {
			return nil, err
		}
		p, err := proc.StartServer(ctx, proc.Options{
			Bin: bin, Dir: cfg.Root, StartTimeout: 5 * time.Minute,
			Env: []string{
				"FLOWGATE_MINIO_ADDR=" + minio, "FLOWGATE_DYNALITE_ADDR=" + dynalite, "FLOWGATE_DEV_DYNAMODB_ADDR=" + front,
				"FLOWGATE_WEB_DIR=" + filepath.Join(work, "no-web"),
				"FLOWGATE_BUCKET=soak", "FLOWGATE_TABLE=soak", "FLOWGATE_LOG_LEVEL=warn",
				"FLOWGATE_DEV_INSTANCES=3", "FLOWGATE_DEV_ASSEMBLERS=3", "FLOWGATE_DEV_DUPLICATES=0.2",
				"FLOWGATE_EXPIRY=30s", "FLOWGATE_RECORD_TTL=60s", "FLOWGATE_DEV_TTL_DELAY=15s",
				"FLOWGATE_DEV_REDRIVE_INTERVAL=20s",
				// The stream keeps its records in memory: 24 hours of them
				// (or any retention longer than the run) would read as the
				// server's memory growing. The mapping reads each record
				// within a second or so.
				"FLOWGATE_DEV_STREAM_RETENTION=1m",
			},
		})
		if err != nil {
			return nil, err
		}
		s3c, err := devS3(ctx, p, minio)
		if err != nil {
			p.Kill()
			return nil, err
		}
		return &target{proc: p, read: func(ctx context.Context, loc string) (io.ReadCloser, error) {
			key, ok := strings.CutPrefix(loc, "s3://soak/")
			if !ok || !strings.HasPrefix(key, "files/") {
				return nil, fmt.Errorf("location %q is not under s3://soak/files/", loc)
			}
			out, err := s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("soak"), Key: aws.String(key)})
			if err != nil {
				return nil, err
			}
			return out.Body, nil
		}, stats: func(ctx context.Context) (*StackStats, error) {
			return readStackStats(ctx, p.URL)
		}}, nil
	}
	return nil, fmt.Errorf("unknown target %q: local or dev", cfg.Target)
}

var caBundleLine = regexp.MustCompile(`CA bundle\s+(\S+)`)

// devS3 is an S3 client for the MinIO that `make dev` started, with the CA
// bundle it printed.
func devS3(ctx context.Context, p *proc.Proc, addr string) (*s3.Client, error) {
	m := caBundleLine.FindStringSubmatch(p.Log())
	if m == nil {
		return nil, fmt.Errorf("make dev printed no CA bundle (alive %v, %d bytes of log):\n%s", p.Alive(), len(p.Log()), lastLines(p.Log(), 20))
	}
	pem, err := os.ReadFile(m[1])
	if err != nil {
		return nil, err
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx,
		awsconfig.WithRegion(localaws.Region),
		awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(localaws.AccessKey, localaws.SecretKey, "")),
		awsconfig.WithCustomCABundle(bytes.NewReader(pem)),
		awsconfig.WithBaseEndpoint("https://"+addr),
	)
	if err != nil {
		return nil, err
	}
	return s3store.NewClient(cfg), nil
}

// soakUpload is one file a simulated user sends.
type soakUpload struct {
	name    string
	data    []byte
	sum     [32]byte
	opts    flowclient.Options
	abandon bool // send some chunks, then walk away
}

// drawUpload draws the next file of client c: mostly small files, some
// large, every flow.js mode, and the faults of real users and networks.
func drawUpload(rng *rand.Rand, cfg Config, c, n int) soakUpload {
	var size int64
	switch p := rng.Float64(); {
	case p < 0.10:
		size = rng.Int64N(2) // 0 or 1 byte
	case p < 0.50:
		size = rng.Int64N(64 << 10)
	case p < 0.85:
		size = 64<<10 + rng.Int64N(1<<20)
	case p < 0.97:
		size = 1<<20 + rng.Int64N(3<<20)
	default:
		size = 4<<20 + rng.Int64N(max(cfg.MaxFile-4<<20, 1))
	}
	size = min(size, cfg.MaxFile)
	chunk := []int64{64 << 10, 256 << 10, 1 << 20}[rng.IntN(3)]
	u := soakUpload{
		name: fmt.Sprintf("soak-%d-%d.bin", c, n),
		opts: flowclient.Options{
			ChunkSize:      chunk,
			ForceChunkSize: rng.IntN(2) == 0,
			Method:         []flowclient.Method{flowclient.Multipart, flowclient.Octet}[rng.IntN(2)],
			TestChunks:     rng.Float64() < 0.7,
			Simultaneous:   1 + rng.IntN(4),
			Shuffle:        true,
			Duplicates:     0.15,
			AbortFraction:  0.1,
			MaxRetries:     5,
			RetryInterval:  50 * time.Millisecond,
			Seed:           rng.Uint64(),
			Identifier:     fmt.Sprintf("soak-%d-%d-%d", cfg.Seed, c, n),
		},
		abandon: rng.Float64() < 0.03,
	}
	u.data = make([]byte, size)
	fill := rand.New(rand.NewPCG(u.opts.Seed, uint64(size)))
	for i := 0; i+8 <= len(u.data); i += 8 {
		v := fill.Uint64()
		for j := range 8 {
			u.data[i+j] = byte(v >> (8 * j))
		}
	}
	for i := len(u.data) &^ 7; i < len(u.data); i++ {
		u.data[i] = byte(fill.Uint32())
	}
	u.sum = sha256.Sum256(u.data)
	if u.abandon {
		g, _ := flowclient.NewGeometry(u.opts, size, u.name)
		if g.TotalChunks < 2 {
			u.abandon = false
		} else {
			u.opts.Chunks = []int{1 + rng.IntN(g.TotalChunks-1)}
		}
	}
	return u
}

type outcome int

const (
	completedOK outcome = iota
	lost
	stuck
	corrupt
	failed
	abandoned
	interrupted
)

type result struct {
	kind outcome
	why  string
}

// soakOne uploads one file as flow.js would (a user pressing resume after
// an error, twice), waits for it to complete and checks its bytes.
func soakOne(ctx context.Context, c *flowclient.Client, tg *target, u soakUpload, stuckAfter time.Duration) (result, flowclient.Stats) {
	var total flowclient.Stats
	var err error
	for try := 0; try < 3; try++ {
		var st flowclient.Stats
		st, err = c.Upload(ctx, u.opts, bytes.NewReader(u.data), int64(len(u.data)), u.name)
		total.Add(st)
		if err == nil || ctx.Err() != nil {
			break
		}
		// Resume: test every chunk first, as flow.js does after a reload.
		u.opts.TestChunks = true
	}
	switch {
	case ctx.Err() != nil:
		return result{kind: interrupted}, total
	case err != nil:
		return result{kind: failed, why: err.Error()}, total
	case u.abandon:
		return result{kind: abandoned}, total
	}
	// Every chunk got 200: the upload must now become complete, or failed
	// with a reason, within stuckAfter.
	st, err := settle(ctx, c, u, stuckAfter)
	switch {
	case ctx.Err() != nil:
		return result{kind: interrupted}, total
	case err != nil:
		return result{kind: stuck, why: err.Error()}, total
	case st.State == "failed":
		return result{kind: lost, why: "failed: " + st.Error}, total
	case st.State != "complete":
		return result{kind: lost, why: "the server no longer knows it (" + st.State + ")"}, total
	}
	rc, err := tg.read(ctx, st.Location)
	if err != nil {
		return result{kind: corrupt, why: err.Error()}, total
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		return result{kind: corrupt, why: "reading it back: " + err.Error()}, total
	}
	if n != int64(len(u.data)) || !bytes.Equal(h.Sum(nil), u.sum[:]) {
		return result{kind: corrupt, why: fmt.Sprintf("%s has %d bytes and another sha256", st.Location, n)}, total
	}
	return result{kind: completedOK}, total
}

func sortedKeys(m map[int]int) []int {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	return keys
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
