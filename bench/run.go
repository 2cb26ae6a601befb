package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/proc"
	"github.com/flowgate/flowgate/internal/testkit/flowclient"
	"github.com/flowgate/flowgate/shared/upload"
)

// Options control a run.
type Options struct {
	Quick      bool
	Only       string // comma-separated substrings of scenario IDs
	NoS3       bool   // skip the AWS path and the Lambda measurements
	ProfileDir string // run the servers under pprof, profiles here
	Log        io.Writer
	// Scenarios, if set, replaces the built-in list (tests).
	Scenarios []Scenario
	// NoLambda skips the zip sizes and the cold start (tests).
	NoLambda bool
	// Verbose logs each step of each scenario with its time.
	Verbose bool
}

// Result is one scenario's measurements.
type Result struct {
	Scenario
	Stats   flowclient.Stats // the client's view of the run (merged over files)
	Ingest  time.Duration    // first request to the last chunk's response
	MiBps   float64          // file bytes / Ingest
	PeakRSS int64            // the server process's VmHWM, bytes
	CPU     time.Duration    // the server process's CPU time (user + system), start to all complete
	// ToComplete is, per file, last chunk's response -> completion recorded.
	ToComplete []time.Duration
	Verified   int // files read back whose SHA-256 matched

	// Ceilings. Local: HTTP and disk; S3: PutObject, and Copy for assembly.
	HTTPCeil, DiskCeil, PutCeil, CopyCeil ceiling
	Ceiling                               float64 // the ceiling the ratio uses, MiB/s
	CeilingName                           string
	// DurableCeil (local) is the disk with an fdatasync per chunk: for the
	// record, never the ceiling the ratio uses.
	DurableCeil ceiling

	// S3 path only.
	Counts        *awsCounts
	AssemblyMiBps float64 // single-file: size / (last chunk -> complete)
}

// Ratio is ingest throughput over the ceiling.
func (r *Result) Ratio() float64 {
	if r.Ceiling <= 0 {
		return 0
	}
	return r.MiBps / r.Ceiling
}

// DurableTargetCeiling is the lower of the HTTP ceiling and the disk with
// an fdatasync per chunk: what a server that makes every chunk durable
// before its answer could reach at best.
func (r *Result) DurableTargetCeiling() float64 {
	c := r.HTTPCeil.MiBps
	if d := r.DurableCeil.MiBps; d > 0 && (c <= 0 || d < c) {
		c = d
	}
	return c
}

// DurableTargetRatio is ingest throughput over DurableTargetCeiling.
func (r *Result) DurableTargetRatio() float64 {
	if c := r.DurableTargetCeiling(); c > 0 {
		return r.MiBps / c
	}
	return 0
}

// DurableRatio is ingest throughput over the durable-chunk disk ceiling.
func (r *Result) DurableRatio() float64 {
	if r.DurableCeil.MiBps <= 0 {
		return 0
	}
	return r.MiBps / r.DurableCeil.MiBps
}

func (r *Result) setUpload(run uploadRun, evs []upload.Event) {
	r.Stats = run.Stats
	r.Ingest = run.Wall()
	r.MiBps = mibps(r.Bytes(), r.Ingest)
	r.ToComplete = toComplete(run, evs)
	if r.Files == 1 && r.ToComplete[0] > 0 {
		r.AssemblyMiBps = mibps(r.FileSize, r.ToComplete[0])
	}
}

// CompleteP50 and CompleteMax summarize ToComplete.
func (r *Result) CompleteP50() time.Duration { return percentile(r.ToComplete, 50) }
func (r *Result) CompleteMax() time.Duration { return percentile(r.ToComplete, 100) }

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(p/100*float64(len(s))+0.999999999) - 1
	return s[min(max(rank, 0), len(s)-1)]
}

// runner holds what the scenarios share.
type runner struct {
	opt         Options
	root        string // the module's root
	tmp         string
	self        string // this binary, for the server roles
	flowgateBin string
	runID       string
	events      *completions
	aws         *awsEnv // nil until the AWS path is set up
	logf        func(format string, args ...any)
}

// step logs a step of a scenario when Verbose is set.
func (r *runner) step(format string, args ...any) {
	if r.opt.Verbose {
		r.logf("  "+format, args...)
	}
}

// Run runs the benchmark and returns its report. On failure the report has
// what was measured so far.
func Run(ctx context.Context, opt Options) (rep *Report, err error) {
	if opt.Log == nil {
		opt.Log = io.Discard
	}
	began := time.Now()
	logf := func(format string, args ...any) {
		fmt.Fprintf(opt.Log, "bench: %5.1fs "+format+"\n", append([]any{time.Since(began).Seconds()}, args...)...)
	}
	list := opt.Scenarios
	if list == nil {
		list = scenarios(opt.Quick)
	}
	list = selectScenarios(list, opt.Only, opt.NoS3)

	r := &runner{opt: opt, runID: randomHex(4), logf: logf}
	defer stopAllChildren()
	if r.root, err = proc.Root(); err != nil {
		return nil, err
	}
	if r.self, err = selfBinary(); err != nil {
		return nil, err
	}
	if r.tmp, err = os.MkdirTemp("", "flowgate-bench-"); err != nil {
		return nil, err
	}
	defer os.RemoveAll(r.tmp)
	if opt.ProfileDir != "" {
		if opt.ProfileDir, err = filepath.Abs(opt.ProfileDir); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(opt.ProfileDir, 0o755); err != nil {
			return nil, err
		}
		r.opt.ProfileDir = opt.ProfileDir
	}

	rep = &Report{Quick: opt.Quick, Started: time.Now(), Machine: describeMachine(r.tmp)}
	defer func() {
		rep.Finished = time.Now()
		rep.Machine.LoadEnd = loadAverage()
	}()

	if slices.ContainsFunc(list, func(s Scenario) bool { return s.Path == pathLocal }) {
		logf("building ./cmd/flowgate")
		r.flowgateBin = filepath.Join(r.tmp, "flowgate")
		if err := goBuild(ctx, r.root, r.flowgateBin, "./cmd/flowgate", nil); err != nil {
			return rep, err
		}
	}
	// The Lambda measurements run unless skipped or left out by -only
	// (-only lambda selects them).
	lambda := !opt.NoS3 && !opt.NoLambda && (opt.Only == "" || strings.Contains(opt.Only, "lambda"))
	wantAWS := !opt.NoS3 && (lambda || slices.ContainsFunc(list, func(s Scenario) bool { return s.Path == pathS3 }))
	// The zips take a cross-build of every function: the full run only, to
	// keep the quick one under a minute on a cold build cache.
	if lambda && !opt.Quick {
		logf("building the functions as SAM does (linux/arm64) and measuring their zips")
		if rep.Zips, err = zipSizes(ctx, r.root, filepath.Join(r.tmp, "zips")); err != nil {
			return rep, err
		}
	}
	{
		n, minTime := 64*mib, time.Second
		if opt.Quick {
			minTime = 200 * time.Millisecond
		}
		rep.Checksums, rep.Combine = measureChecksums(n, minTime, 2560)
		for _, c := range rep.Checksums {
			logf("checksum: %s: %.2f GiB/s on one core, %s of CPU per GiB", c.Name, c.GiBps, ms(c.CPUPerGiB))
		}
		logf("checksum: combining %d chunk CRCs (10 GiB of 4 MiB chunks): %s", rep.Combine.Chunks, ms(rep.Combine.Took))
	}
	if r.events, err = startCompletions(); err != nil {
		return rep, err
	}
	defer r.events.close()

	if slices.ContainsFunc(list, func(s Scenario) bool { return s.Path == pathLocal }) {
		// Once per run, for the record: why the disk ceiling uses O_DIRECT.
		n := 512 * mib
		if opt.Quick {
			n = 64 * mib
		}
		rep.Machine.PageCacheBytes = n
		if rep.Machine.PageCacheMiBps, err = r.pageCacheWrite(n); err != nil {
			return rep, err
		}
		d, err := r.diskWrite("direct", []*benchFile{{Src: newSource(n, 0)}}, 4*mib, true)
		if err != nil {
			return rep, err
		}
		rep.Machine.DirectMiBps = mibps(n, d)
		logf("disk: %s with one fsync: %.0f MiB/s through the page cache, %.0f MiB/s with O_DIRECT", size(n), rep.Machine.PageCacheMiBps, rep.Machine.DirectMiBps)
	}
	for _, sc := range list {
		if sc.Path != pathLocal {
			continue
		}
		if err := ctx.Err(); err != nil {
			return rep, errStopped
		}
		logf("%s: %s", sc.ID, sc.Label())
		res, err := r.runLocal(ctx, sc)
		if err != nil {
			return rep, fmt.Errorf("%s: %w", sc.ID, err)
		}
		logf("%s: %.0f MiB/s (ceiling %s %.0f MiB/s, %.0f%%), p50 %s p99 %s, peak RSS %s, last chunk -> complete %s",
			sc.ID, res.MiBps, res.CeilingName, res.Ceiling, 100*res.Ratio(), ms(res.Stats.Percentile(50)), ms(res.Stats.Percentile(99)), mibStr(res.PeakRSS), ms(res.CompleteMax()))
		rep.Results = append(rep.Results, res)
	}

	if wantAWS {
		logf("starting MinIO and dynalite")
		if r.aws, err = startAWS(ctx, r.tmp, opt.Log); err != nil {
			return rep, err
		}
		defer r.aws.stop()
		rep.Machine.AWS = r.aws.describe()
		if lambda {
			logf("measuring the upload function's cold start")
			if rep.Cold, err = r.coldStart(ctx); err != nil {
				return rep, fmt.Errorf("cold start: %w", err)
			}
			logf("measuring the upload function at several MemorySizes")
			if rep.Memory, err = r.sizeMemory(ctx); err != nil {
				return rep, fmt.Errorf("memory sizes: %w", err)
			}
		}
		for _, sc := range list {
			if sc.Path != pathS3 {
				continue
			}
			if err := ctx.Err(); err != nil {
				return rep, errStopped
			}
			logf("%s: %s", sc.ID, sc.Label())
			res, err := r.runS3(ctx, sc)
			if err != nil {
				return rep, fmt.Errorf("%s: %w", sc.ID, err)
			}
			logf("%s: %.0f MiB/s (PutObject ceiling %.0f MiB/s, %.0f%%), p50 %s p99 %s, peak RSS %s, last chunk -> complete %s, %.2f WRU/chunk, $%.5f/GiB",
				sc.ID, res.MiBps, res.Ceiling, 100*res.Ratio(), ms(res.Stats.Percentile(50)), ms(res.Stats.Percentile(99)), mibStr(res.PeakRSS), ms(res.CompleteMax()),
				res.WRUPerChunk(), res.CostPerGiB().Total)
			rep.Results = append(rep.Results, res)
		}
	}
	// The data paths compared (direct.go): -only direct selects them.
	if !opt.NoS3 && opt.Scenarios == nil && (opt.Only == "" || strings.Contains(opt.Only, "direct")) {
		logf("the data paths on the same files: a MinIO (posting its notifications here) and a dynalite of their own")
		if rep.Direct, err = r.runDirect(ctx, directScenarios(opt.Quick)); err != nil {
			return rep, fmt.Errorf("data paths: %w", err)
		}
	}
	if ctx.Err() != nil {
		return rep, errStopped
	}
	return rep, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// ms writes a duration in milliseconds, one decimal under 10 ms.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	if v < 10 {
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.0f ms", v)
}

func mibStr(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/float64(mib)) }
