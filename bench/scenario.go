package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/testkit/flowclient"
)

// Paths a scenario runs on.
const (
	pathLocal = "local" // the embedded server: cmd/flowgate
	pathS3    = "s3"    // the AWS code path against MinIO and dynalite
)

// What every scenario's client does besides its geometry, as flow.js with
// its defaults would plus the faults real clients produce: a test GET before
// each chunk (testChunks: true), chunks in random order, and 5% of chunks
// sent twice (half of them with both copies in flight at once).
const (
	duplicates = 0.05
	shuffle    = true
	testChunks = true
)

// Scenario is one measured workload.
type Scenario struct {
	ID           string // unique, used in object keys and file names
	Path         string // pathLocal or pathS3
	Files        int
	FileSize     int64
	ChunkSize    int64
	Simultaneous int // chunk requests in flight per file (flow.js simultaneousUploads)
	Parallel     int // files uploading at once (browser tabs, users)
	// Copy measures the assembly ceiling (S3, single-file scenarios).
	Copy bool
	// SHA256: every chunk goes with its SHA-256 (checksumSha256), which the
	// server checks; set on twins of plain scenarios, to show the cost.
	SHA256 bool
}

// Bytes is the scenario's total file size.
func (s Scenario) Bytes() int64 { return int64(s.Files) * s.FileSize }

// ChunksPerFile is how many chunks each file has (forceChunkSize: true).
func (s Scenario) ChunksPerFile() int {
	return flowclient.TotalChunks(s.FileSize, s.ChunkSize, true)
}

// Chunks is the scenario's total chunk count.
func (s Scenario) Chunks() int { return s.Files * s.ChunksPerFile() }

// InFlight is the most chunk requests in flight at once (duplicates aside).
func (s Scenario) InFlight() int {
	return min(s.Parallel, s.Files) * min(s.Simultaneous, s.ChunksPerFile())
}

// Label describes the scenario for the report.
func (s Scenario) Label() string {
	if s.SHA256 {
		plain := s
		plain.SHA256 = false
		return plain.Label() + ", SHA-256 per chunk"
	}
	if s.Files == 1 {
		return fmt.Sprintf("1 × %s, %s chunks, %d simultaneous", size(s.FileSize), size(s.ChunkSize), s.Simultaneous)
	}
	if s.ChunksPerFile() == 1 {
		return fmt.Sprintf("%s × %s, %d files at once", count(s.Files), size(s.FileSize), min(s.Parallel, s.Files))
	}
	return fmt.Sprintf("%s × %s at once, %s chunks, %d simultaneous each (%d in flight)",
		count(s.Files), size(s.FileSize), size(s.ChunkSize), s.Simultaneous, s.InFlight())
}

// options are the flowclient options for file i of the scenario.
func (s Scenario) options(i int, id string) flowclient.Options {
	return flowclient.Options{
		ChunkSize:      s.ChunkSize,
		ForceChunkSize: true, // the design's recommendation; every chunk is at most ChunkSize
		ChunkSHA256:    s.SHA256,
		Simultaneous:   s.Simultaneous,
		TestChunks:     testChunks,
		Identifier:     id,
		Shuffle:        shuffle,
		Duplicates:     duplicates,
		Seed:           uint64(i + 1),
		// A 503 means "try again" to flow.js with maxChunkRetries set; a
		// retry shows in the report, never silently.
		MaxRetries:    3,
		RetryInterval: 200 * time.Millisecond,
	}
}

const (
	kib = int64(1) << 10
	mib = int64(1) << 20
	gib = int64(1) << 30
)

// scenarios lists what a run measures.
func scenarios(quick bool) []Scenario {
	if quick {
		return []Scenario{
			{ID: "local-64mib-1m-3", Path: pathLocal, Files: 1, FileSize: 64 * mib, ChunkSize: 1 * mib, Simultaneous: 3, Parallel: 1},
			{ID: "local-64mib-4m-8", Path: pathLocal, Files: 1, FileSize: 64 * mib, ChunkSize: 4 * mib, Simultaneous: 8, Parallel: 1},
			{ID: "local-64mib-4m-8-sha256", Path: pathLocal, Files: 1, FileSize: 64 * mib, ChunkSize: 4 * mib, Simultaneous: 8, Parallel: 1, SHA256: true},
			{ID: "local-8x16mib-4m-3", Path: pathLocal, Files: 8, FileSize: 16 * mib, ChunkSize: 4 * mib, Simultaneous: 3, Parallel: 8},
			{ID: "local-200x64kib", Path: pathLocal, Files: 200, FileSize: 64 * kib, ChunkSize: 1 * mib, Simultaneous: 3, Parallel: 8},
			{ID: "s3-64mib-4m-3", Path: pathS3, Files: 1, FileSize: 64 * mib, ChunkSize: 4 * mib, Simultaneous: 3, Parallel: 1, Copy: true},
			{ID: "s3-64mib-4m-3-sha256", Path: pathS3, Files: 1, FileSize: 64 * mib, ChunkSize: 4 * mib, Simultaneous: 3, Parallel: 1, SHA256: true},
			{ID: "s3-100x64kib", Path: pathS3, Files: 100, FileSize: 64 * kib, ChunkSize: 1 * mib, Simultaneous: 3, Parallel: 8},
		}
	}
	// The embedded server runs the scenarios as they are. The AWS
	// path runs the same shapes smaller, because MinIO on this kind of
	// machine moves some tens of MiB/s and the whole run must stay under
	// ten minutes: 256 MiB instead of 1 GiB, 8 × 64 MiB instead of 8 × 128
	// MiB (still 24 requests of 4 MiB in flight), 500 small files instead
	// of 2,000. Ratios to ceilings do not depend on the size; the assembly
	// target's 2 GiB file is kept.
	var list []Scenario
	for _, cs := range []int64{1, 4} {
		for _, sim := range []int{3, 8} {
			list = append(list, Scenario{
				ID:   fmt.Sprintf("local-1gib-%dm-%d", cs, sim),
				Path: pathLocal, Files: 1, FileSize: gib, ChunkSize: cs * mib, Simultaneous: sim, Parallel: 1,
			})
		}
	}
	// The same upload with a SHA-256 per chunk: what checking clients'
	// digests costs.
	list = append(list, Scenario{ID: "local-1gib-4m-8-sha256", Path: pathLocal, Files: 1, FileSize: gib, ChunkSize: 4 * mib, Simultaneous: 8, Parallel: 1, SHA256: true})
	list = append(list,
		Scenario{ID: "local-8x128mib-4m-3", Path: pathLocal, Files: 8, FileSize: 128 * mib, ChunkSize: 4 * mib, Simultaneous: 3, Parallel: 8},
		Scenario{ID: "local-2000x64kib", Path: pathLocal, Files: 2000, FileSize: 64 * kib, ChunkSize: 1 * mib, Simultaneous: 3, Parallel: 8},
		// Memory: many one-chunk files sent all at once.
		Scenario{ID: "local-200x256kib-all", Path: pathLocal, Files: 200, FileSize: 256 * kib, ChunkSize: 1 * mib, Simultaneous: 3, Parallel: 200},
	)
	for _, cs := range []int64{1, 4} {
		for _, sim := range []int{3, 8} {
			list = append(list, Scenario{
				ID:   fmt.Sprintf("s3-256mib-%dm-%d", cs, sim),
				Path: pathS3, Files: 1, FileSize: 256 * mib, ChunkSize: cs * mib, Simultaneous: sim, Parallel: 1, Copy: true,
			})
		}
	}
	list = append(list, Scenario{ID: "s3-256mib-4m-8-sha256", Path: pathS3, Files: 1, FileSize: 256 * mib, ChunkSize: 4 * mib, Simultaneous: 8, Parallel: 1, SHA256: true})
	list = append(list,
		Scenario{ID: "s3-8x64mib-4m-3", Path: pathS3, Files: 8, FileSize: 64 * mib, ChunkSize: 4 * mib, Simultaneous: 3, Parallel: 8},
		Scenario{ID: "s3-500x64kib", Path: pathS3, Files: 500, FileSize: 64 * kib, ChunkSize: 1 * mib, Simultaneous: 3, Parallel: 8},
		// The assembly target is set for a 2 GiB file.
		Scenario{ID: "s3-2gib-4m-8", Path: pathS3, Files: 1, FileSize: 2 * gib, ChunkSize: 4 * mib, Simultaneous: 8, Parallel: 1, Copy: true},
	)
	return list
}

// selectScenarios keeps those whose ID contains one of the comma-separated
// strings in only (all if only is empty).
func selectScenarios(list []Scenario, only string, noS3 bool) []Scenario {
	var out []Scenario
	for _, s := range list {
		if noS3 && s.Path == pathS3 {
			continue
		}
		if only == "" {
			out = append(out, s)
			continue
		}
		for _, w := range strings.Split(only, ",") {
			if w = strings.TrimSpace(w); w != "" && strings.Contains(s.ID, w) {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

// size writes a byte count in binary units, the way the scenarios name them.
func size(n int64) string {
	switch {
	case n >= gib && n%gib == 0:
		return fmt.Sprintf("%d GiB", n/gib)
	case n >= mib && n%mib == 0:
		return fmt.Sprintf("%d MiB", n/mib)
	case n >= kib && n%kib == 0:
		return fmt.Sprintf("%d KiB", n/kib)
	}
	return fmt.Sprintf("%d B", n)
}

// count writes an integer with thousands separators.
func count(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
