// Package metrics counts what flowgate does: chunks and bytes received,
// requests refused (by reason and status), assemblies, their duration and
// their failures, and uploads in progress.
//
// The same Metrics value renders two ways:
//
//   - in the Prometheus text exposition format (version 0.0.4), which the
//     embedded server serves at /metrics (Handler, WritePrometheus);
//   - as CloudWatch embedded metric format (EMF) lines, one JSON line per
//     observation written as it happens, when EMF is set: on Lambda, stdout
//     goes to CloudWatch Logs, which turns each line into metric data points
//     in the "flowgate" namespace. ForEnvironment turns EMF on when
//     AWS_LAMBDA_FUNCTION_NAME is set.
//
// The HTTP handler (httpapi.Metrics) and the assembly pipeline
// (upload.PipelineMetrics) report through small interfaces that *Metrics
// implements. A nil *Metrics is valid and records nothing.
package metrics

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Namespace is the CloudWatch namespace of the EMF metrics.
const Namespace = "flowgate"

// Failure kinds of AssemblyFailed.
const (
	// FailurePermanent: the upload was recorded as failed (its bytes do not
	// add up, say); it will not be assembled.
	FailurePermanent = "permanent"
	// FailureRetry: an attempt failed (storage, ledger, publishing) and the
	// upload will be tried again.
	FailureRetry = "retry"
)

// AssemblyBuckets are the upper bounds, in seconds, of the assembly
// duration histogram: a local assembly is a rename (milliseconds), an S3
// one of a large file takes minutes.
var AssemblyBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900}

// Metrics holds the counters. Safe for concurrent use.
type Metrics struct {
	// EMF, when set, receives one embedded-metric-format JSON line per
	// observation (gauges excepted: a Lambda instance cannot see them).
	EMF io.Writer
	// Now is the clock of EMF timestamps; nil means time.Now.
	Now func() time.Time

	mu              sync.Mutex
	chunks          uint64
	bytes           uint64
	rejections      map[rejection]uint64
	assemblies      uint64
	assembledBytes  uint64
	assemblySeconds histogram
	failures        map[string]uint64
	inProgress      func() int

	emfMu sync.Mutex
}

type rejection struct {
	reason string
	status int
}

type histogram struct {
	counts []uint64 // per bucket, not cumulative; the last is +Inf
	sum    float64
	count  uint64
}

// New returns empty metrics that only count in memory.
func New() *Metrics { return &Metrics{} }

// ForEnvironment returns metrics that also write EMF lines to w when the
// process runs in AWS Lambda (AWS_LAMBDA_FUNCTION_NAME is set), so the
// Lambda functions and the embedded server can share their wiring.
func ForEnvironment(getenv func(string) string, w io.Writer) *Metrics {
	m := New()
	if getenv("AWS_LAMBDA_FUNCTION_NAME") != "" {
		m.EMF = w
	}
	return m
}

// ChunkReceived counts a chunk the API accepted (answered 200), with its size.
func (m *Metrics) ChunkReceived(bytes int64) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.chunks++
	m.bytes += uint64(max(bytes, 0))
	m.mu.Unlock()
	m.emit(nil, metric{"ChunksReceived", "Count", 1}, metric{"BytesReceived", "Bytes", float64(max(bytes, 0))})
}

// Rejected counts a request answered with an error status. reason is a
// short fixed word (see httpapi's reasons), never client text: it becomes a
// label and a CloudWatch dimension.
func (m *Metrics) Rejected(reason string, status int) {
	if m == nil {
		return
	}
	m.mu.Lock()
	if m.rejections == nil {
		m.rejections = map[rejection]uint64{}
	}
	m.rejections[rejection{reason, status}]++
	m.mu.Unlock()
	m.emit([]dim{{"Reason", reason}, {"Status", strconv.Itoa(status)}}, metric{"Rejections", "Count", 1})
}

// Assembled counts a finished assembly, with how long it took and the size
// of the file.
func (m *Metrics) Assembled(d time.Duration, size int64) {
	if m == nil {
		return
	}
	s := d.Seconds()
	m.mu.Lock()
	m.assemblies++
	m.assembledBytes += uint64(max(size, 0))
	h := &m.assemblySeconds
	if h.counts == nil {
		h.counts = make([]uint64, len(AssemblyBuckets)+1)
	}
	i, _ := slices.BinarySearch(AssemblyBuckets, s)
	h.counts[i]++
	h.sum += s
	h.count++
	m.mu.Unlock()
	m.emit(nil, metric{"Assemblies", "Count", 1}, metric{"AssemblySeconds", "Seconds", s},
		metric{"AssembledBytes", "Bytes", float64(max(size, 0))})
}

// AssemblyFailed counts a failed assembly: FailurePermanent or FailureRetry.
func (m *Metrics) AssemblyFailed(kind string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	if m.failures == nil {
		m.failures = map[string]uint64{}
	}
	m.failures[kind]++
	m.mu.Unlock()
	m.emit([]dim{{"Kind", kind}}, metric{"AssemblyFailures", "Count", 1})
}

// SetInProgress sets the function that tells how many uploads are in
// progress, read at each scrape.
func (m *Metrics) SetInProgress(f func() int) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.inProgress = f
	m.mu.Unlock()
}

// ContentType is the media type of the Prometheus text format.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ContentType)
		w.Header().Set("Cache-Control", "no-store")
		m.WritePrometheus(w)
	})
}

// WritePrometheus writes every metric in the Prometheus text format, in a
// fixed order (label sets sorted), so the output is stable.
func (m *Metrics) WritePrometheus(w io.Writer) error {
	if m == nil {
		m = New()
	}
	m.mu.Lock()
	inProgress := m.inProgress
	chunks, bytes, assemblies, assembledBytes := m.chunks, m.bytes, m.assemblies, m.assembledBytes
	rejections := make([]rejection, 0, len(m.rejections))
	for r := range m.rejections {
		rejections = append(rejections, r)
	}
	rejCounts := make(map[rejection]uint64, len(m.rejections))
	for r, n := range m.rejections {
		rejCounts[r] = n
	}
	failures := make(map[string]uint64, len(m.failures))
	for k, n := range m.failures {
		failures[k] = n
	}
	h := m.assemblySeconds
	h.counts = slices.Clone(h.counts)
	m.mu.Unlock()

	bw := bufio.NewWriter(w)
	counter := func(name, help string) {
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s counter\n", name, help, name)
	}

	counter("flowgate_chunks_received_total", "Chunks accepted by the upload API.")
	fmt.Fprintf(bw, "flowgate_chunks_received_total %d\n", chunks)
	counter("flowgate_received_bytes_total", "Bytes of the chunks accepted by the upload API.")
	fmt.Fprintf(bw, "flowgate_received_bytes_total %d\n", bytes)

	counter("flowgate_rejections_total", "Requests answered with an error status, by reason and status.")
	slices.SortFunc(rejections, func(a, b rejection) int {
		if c := strings.Compare(a.reason, b.reason); c != 0 {
			return c
		}
		return a.status - b.status
	})
	for _, r := range rejections {
		fmt.Fprintf(bw, "flowgate_rejections_total{reason=\"%s\",status=\"%d\"} %d\n", escape(r.reason), r.status, rejCounts[r])
	}

	counter("flowgate_assemblies_total", "Uploads assembled into their finished file.")
	fmt.Fprintf(bw, "flowgate_assemblies_total %d\n", assemblies)
	counter("flowgate_assembled_bytes_total", "Bytes of the files assembled.")
	fmt.Fprintf(bw, "flowgate_assembled_bytes_total %d\n", assembledBytes)

	fmt.Fprintf(bw, "# HELP flowgate_assembly_duration_seconds Time to assemble an upload, from claim to recorded result.\n")
	fmt.Fprintf(bw, "# TYPE flowgate_assembly_duration_seconds histogram\n")
	var cum uint64
	for i, le := range AssemblyBuckets {
		if h.counts != nil {
			cum += h.counts[i]
		}
		fmt.Fprintf(bw, "flowgate_assembly_duration_seconds_bucket{le=\"%s\"} %d\n", formatFloat(le), cum)
	}
	fmt.Fprintf(bw, "flowgate_assembly_duration_seconds_bucket{le=\"+Inf\"} %d\n", h.count)
	fmt.Fprintf(bw, "flowgate_assembly_duration_seconds_sum %s\n", formatFloat(h.sum))
	fmt.Fprintf(bw, "flowgate_assembly_duration_seconds_count %d\n", h.count)

	counter("flowgate_assembly_failures_total", "Failed assemblies: permanent (recorded as failed) or retry (tried again later).")
	kinds := make([]string, 0, len(failures))
	for k := range failures {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	for _, k := range kinds {
		fmt.Fprintf(bw, "flowgate_assembly_failures_total{kind=\"%s\"} %d\n", escape(k), failures[k])
	}

	if inProgress != nil {
		fmt.Fprintf(bw, "# HELP flowgate_uploads_in_progress Uploads receiving chunks: one in flight or one in the last minute.\n")
		fmt.Fprintf(bw, "# TYPE flowgate_uploads_in_progress gauge\n")
		fmt.Fprintf(bw, "flowgate_uploads_in_progress %d\n", inProgress())
	}
	return bw.Flush()
}

// escape escapes a label value: backslash, double quote and newline.
func escape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

func formatFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	case math.IsNaN(f):
		return "NaN"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

type metric struct {
	name, unit string
	value      float64
}

type dim struct{ name, value string }

// emit writes one EMF line with the metrics and dimensions, if EMF is set.
// Every metric is published once with all the dimensions and once without
// any, so a total is there without summing over dimension values.
func (m *Metrics) emit(dims []dim, ms ...metric) {
	if m.EMF == nil {
		return
	}
	line := m.emfLine(dims, ms...)
	m.emfMu.Lock()
	m.EMF.Write(line)
	m.emfMu.Unlock()
}

// emfLine renders one embedded-metric-format document, newline-terminated.
func (m *Metrics) emfLine(dims []dim, ms ...metric) []byte {
	now := time.Now
	if m.Now != nil {
		now = m.Now
	}
	type def struct {
		Name string `json:"Name"`
		Unit string `json:"Unit,omitempty"`
	}
	type directive struct {
		Namespace  string     `json:"Namespace"`
		Dimensions [][]string `json:"Dimensions"`
		Metrics    []def      `json:"Metrics"`
	}
	doc := map[string]any{}
	names := []string{}
	for _, d := range dims {
		doc[d.name] = d.value
		names = append(names, d.name)
	}
	sets := [][]string{{}}
	if len(names) > 0 {
		sets = [][]string{names, {}}
	}
	dir := directive{Namespace: Namespace, Dimensions: sets}
	for _, x := range ms {
		dir.Metrics = append(dir.Metrics, def{x.name, x.unit})
		doc[x.name] = x.value
	}
	doc["_aws"] = map[string]any{
		"Timestamp":         now().UnixMilli(),
		"CloudWatchMetrics": []directive{dir},
	}
	b, _ := json.Marshal(doc)
	return append(b, '\n')
}
