package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary play the benchmark's server roles: the
// harness re-executes its own binary to run them.
func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		os.Exit(runRole(role))
	}
	os.Exit(m.Run())
}

// smallest is the quick run's smallest scenario on a path.
func smallest(t *testing.T, path string) Scenario {
	t.Helper()
	var best *Scenario
	for _, sc := range scenarios(true) {
		if sc.Path == path && (best == nil || sc.Bytes() < best.Bytes()) {
			best = &sc
		}
	}
	if best == nil {
		t.Fatalf("the quick run has no %s scenario", path)
	}
	return *best
}

// TestHarness runs the quick mode's smallest scenario on each path, the
// way `make bench-quick` does, and checks that the harness measured what
// it says: every file read back with the right SHA-256 (Run fails
// otherwise), and every number it reports positive.
func TestHarness(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers; skipped with -short")
	}
	for _, path := range []string{pathLocal, pathS3} {
		t.Run(path, func(t *testing.T) {
			sc := smallest(t, path)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			var log strings.Builder
			rep, err := Run(ctx, Options{Quick: true, Scenarios: []Scenario{sc}, NoLambda: true, Log: &log, Verbose: true})
			if err != nil {
				t.Fatalf("run: %v\n%s", err, log.String())
			}
			if len(rep.Results) != 1 {
				t.Fatalf("%d results, want 1\n%s", len(rep.Results), log.String())
			}
			r := rep.Results[0]
			if r.Verified != sc.Files {
				t.Errorf("%d of %d files verified", r.Verified, sc.Files)
			}
			positive := map[string]float64{
				"MiB/s":                 r.MiBps,
				"ceiling":               r.Ceiling,
				"ratio":                 r.Ratio(),
				"chunk p50":             float64(r.Stats.Percentile(50)),
				"chunk p99":             float64(r.Stats.Percentile(99)),
				"peak RSS":              float64(r.PeakRSS),
				"last chunk → complete": float64(r.CompleteMax()),
			}
			if got := len(r.Stats.Latencies); got < sc.Chunks() {
				t.Errorf("%d chunk latencies, want at least %d (one per chunk)", got, sc.Chunks())
			}
			if r.Stats.GETs < sc.Chunks() {
				t.Errorf("%d test GETs, want one per chunk (%d)", r.Stats.GETs, sc.Chunks())
			}
			switch path {
			case pathLocal:
				positive["HTTP ceiling"] = r.HTTPCeil.MiBps
				positive["disk ceiling"] = r.DiskCeil.MiBps
				positive["durable-chunk disk ceiling"] = r.DurableCeil.MiBps
				positive["ratio to the durable-chunk disk ceiling"] = r.DurableRatio()
				positive["page cache write"] = rep.Machine.PageCacheMiBps
			case pathS3:
				c := r.CostPerGiB()
				positive["PutObject ceiling"] = r.PutCeil.MiBps
				positive["S3 PUT-class requests"] = c.S3Tier1
				positive["S3 GET-class requests"] = c.S3Tier2
				positive["WRU per chunk"] = r.WRUPerChunk()
				positive["RRU"] = c.RRU
				positive["cost"] = c.Total
				// Every chunk is stored once (PutObject) whatever the
				// duplicates: the ledger turns the copies away.
				if n := r.Counts.S3["PutObject"]; n < sc.Chunks() {
					t.Errorf("%d PutObject requests for %d chunks", n, sc.Chunks())
				}
			}
			for name, v := range positive {
				if !(v > 0) {
					t.Errorf("%s = %v, want > 0", name, v)
				}
			}
			md := rep.Markdown()
			for _, want := range []string{"## Machine", "## Targets", r.Label()} {
				if !strings.Contains(md, want) {
					t.Errorf("the report lacks %q", want)
				}
			}
			if t.Failed() {
				t.Logf("log:\n%s\nreport:\n%s", log.String(), md)
			}
		})
	}
}

// TestColdStart runs the quick mode's Lambda measurement alone, the upload
// function under the Runtime Interface Emulator, and checks that it
// measured every run: an init RIE reported, a cold and a warm invocation,
// each positive, and a report that shows them.
func TestColdStart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var log strings.Builder
	rep, err := Run(ctx, Options{Quick: true, Only: "lambda", Scenarios: []Scenario{}, Log: &log, Verbose: true})
	if err != nil {
		t.Fatalf("run: %v\n%s", err, log.String())
	}
	c := rep.Cold
	if c == nil || len(c.Init) != c.Runs || len(c.First) != c.Runs || len(c.Warm) != c.Runs || c.Runs == 0 {
		t.Fatalf("cold starts = %+v\n%s", c, log.String())
	}
	for i := range c.Runs {
		if !(c.Init[i] > 0 && c.First[i] > 0 && c.Warm[i] > 0) {
			t.Errorf("run %d: init %v, first %v, warm %v", i, c.Init[i], c.First[i], c.Warm[i])
		}
	}
	if md := rep.Markdown(); !strings.Contains(md, "INIT REPORT") {
		t.Errorf("the report lacks the cold start:\n%s", md)
	}
}

// TestWriteChunksDurably checks that the durable-chunk disk ceiling writes
// what it says: every file, chunk by chunk at the client's offsets, to a
// file of its own, byte for byte, with a tail that does not fill a block and
// with chunks at unaligned offsets.
func TestWriteChunksDurably(t *testing.T) {
	for _, sc := range []Scenario{
		{ID: "tail", Files: 3, FileSize: 3*64*kib + 5000, ChunkSize: 64 * kib, Simultaneous: 2, Parallel: 2},
		{ID: "unaligned", Files: 2, FileSize: 200 * kib, ChunkSize: 64*kib + 100, Simultaneous: 3, Parallel: 1},
	} {
		t.Run(sc.ID, func(t *testing.T) {
			files := makeFiles(sc, "test")
			sums(files)
			chunks, err := fileChunks(sc, files)
			if err != nil {
				t.Fatal(err)
			}
			if len(chunks) != sc.Chunks() {
				t.Fatalf("%d chunks, want %d", len(chunks), sc.Chunks())
			}
			dir := t.TempDir()
			if _, err := writeChunksDurably(dir, chunks, sc.InFlight(), sc.ChunkSize); err != nil {
				t.Fatal(err)
			}
			for _, f := range files {
				fh, err := os.Open(filepath.Join(dir, f.Name))
				if err != nil {
					t.Fatal(err)
				}
				sum, n, err := hashReader(fh)
				fh.Close()
				if err != nil {
					t.Fatal(err)
				}
				if n != f.Src.Size || sum != f.Sum {
					t.Errorf("%s: the file written (%d bytes) differs from the file (%d bytes)", f.Name, n, f.Src.Size)
				}
			}
		})
	}
}

// TestLocalTable checks that the local table puts each number in its
// column, the durable-chunk disk ceiling and the ratio to it included, and
// that the ratio the target uses stays against the lower ceiling.
func TestLocalTable(t *testing.T) {
	r := &Result{
		Scenario:    Scenario{ID: "local-x", Path: pathLocal, Files: 1, FileSize: gib, ChunkSize: mib, Simultaneous: 3, Parallel: 1},
		MiBps:       60,
		HTTPCeil:    ceiling{MiBps: 200},
		DiskCeil:    ceiling{MiBps: 100},
		DurableCeil: ceiling{MiBps: 80},
		Ceiling:     100,
		CeilingName: "disk",
	}
	md := (&Report{Results: []*Result{r}}).Markdown()
	for _, want := range []string{
		"| disk ceiling MiB/s | disk, fsync per chunk MiB/s | ratio to it | ratio to the lower ceiling |",
		"| " + r.Label() + " | 60 | 200 | 100 | 80 | 75% | **60%** (disk) |",
		"- **Disk, fsync per chunk** (for the record;",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the report lacks %q:\n%s", want, md)
		}
	}
}

// TestPatternSource checks the generated files: deterministic, distinct
// per file, and with no two chunks alike within a file.
func TestPatternSource(t *testing.T) {
	a, b := newSource(3*mib, 0), newSource(3*mib, 1)
	if a.Sum() != newSource(3*mib, 0).Sum() {
		t.Fatal("the same file hashed twice differs")
	}
	if a.Sum() == b.Sum() {
		t.Fatal("two files have the same bytes")
	}
	c1, c2 := make([]byte, mib), make([]byte, mib)
	a.ReadAt(c1, 0)
	a.ReadAt(c2, mib)
	if string(c1) == string(c2) {
		t.Fatal("two chunks of a file have the same bytes")
	}
	// Reads at any offset agree with one long read.
	whole := make([]byte, 3*mib)
	if n, err := a.ReadAt(whole, 0); n != len(whole) || err != nil {
		t.Fatalf("ReadAt = %d, %v", n, err)
	}
	part := make([]byte, 5000)
	if n, err := a.ReadAt(part, 3*mib-5000); n != 5000 || err != nil || string(part) != string(whole[3*mib-5000:]) {
		t.Fatalf("ReadAt at the end = %d, %v", n, err)
	}
	if n, err := a.ReadAt(part, 3*mib-100); n != 100 || err == nil {
		t.Fatalf("ReadAt past the end = %d, %v; want 100, EOF", n, err)
	}
}

// TestCost checks the cost formula on round numbers.
func TestCost(t *testing.T) {
	r := &Result{Scenario: Scenario{Files: 1, FileSize: gib, ChunkSize: 4 * mib}, Counts: &awsCounts{
		S3:       map[string]int{"PutObject": 1000, "GetObject": 1000, "AbortMultipartUpload": 5},
		DynamoDB: map[string]int{"PutItem": 500, "BatchGetItem": 10},
		WRU:      1_000_000, RRU: 1_000_000,
	}}
	c := r.CostPerGiB()
	want := 0.005 + 0.0004 + 0.625 + 0.125
	if d := c.Total - want; d > 1e-9 || d < -1e-9 {
		t.Fatalf("cost = %v, want %v", c.Total, want)
	}
	if c.S3Free != 5 || c.DDBWrites != 500 || c.DDBReads != 10 {
		t.Fatalf("classes: %+v", c)
	}
	if got := r.WRUPerChunk(); got != 1_000_000/256.0 {
		t.Fatalf("WRU per chunk = %v", got)
	}
}

// The cost table prices each function's GB-seconds at its MemorySize in
// template.yaml.
func TestMemorySizesMatchTemplate(t *testing.T) {
	tpl, err := os.ReadFile("../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	memory := func(resource string) string {
		_, rest, ok := strings.Cut(string(tpl), "\n  "+resource+":\n")
		if !ok {
			t.Fatalf("template.yaml has no %s", resource)
		}
		_, rest, ok = strings.Cut(rest, "MemorySize: ")
		if !ok {
			t.Fatalf("%s has no MemorySize", resource)
		}
		v, _, _ := strings.Cut(rest, "\n")
		return v
	}
	for resource, want := range map[string]int{"UploadFunction": uploadMemoryMB, "AssembleFunction": assembleMemoryMB} {
		if got := memory(resource); got != fmt.Sprint(want) {
			t.Errorf("%s: MemorySize %s in template.yaml, %d in the bench's prices", resource, got, want)
		}
	}
}
