package metrics

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestPrometheusText: the exposition is exactly the counters recorded, in
// a stable order, with a cumulative histogram and escaped label values.
func TestPrometheusText(t *testing.T) {
	m := New()
	m.ChunkReceived(100)
	m.ChunkReceived(28)
	m.Rejected("too_large", 413)
	m.Rejected("invalid", 400)
	m.Rejected("too_large", 413)
	m.Rejected("odd\"one\\\n", 400)
	m.Assembled(3*time.Millisecond, 1000)
	m.Assembled(2*time.Second, 24)
	m.Assembled(time.Hour, 0)
	m.AssemblyFailed(FailureRetry)
	m.AssemblyFailed(FailurePermanent)
	m.AssemblyFailed(FailureRetry)
	m.SetInProgress(func() int { return 7 })

	var buf bytes.Buffer
	if err := m.WritePrometheus(&buf); err != nil {
		t.Fatal(err)
	}
	want := `# HELP flowgate_chunks_received_total Chunks accepted by the upload API.
# TYPE flowgate_chunks_received_total counter
flowgate_chunks_received_total 2
# HELP flowgate_received_bytes_total Bytes of the chunks accepted by the upload API.
# TYPE flowgate_received_bytes_total counter
flowgate_received_bytes_total 128
# HELP flowgate_rejections_total Requests answered with an error status, by reason and status.
# TYPE flowgate_rejections_total counter
flowgate_rejections_total{reason="invalid",status="400"} 1
flowgate_rejections_total{reason="odd\"one\\\n",status="400"} 1
flowgate_rejections_total{reason="too_large",status="413"} 2
# HELP flowgate_assemblies_total Uploads assembled into their finished file.
# TYPE flowgate_assemblies_total counter
flowgate_assemblies_total 3
# HELP flowgate_assembled_bytes_total Bytes of the files assembled.
# TYPE flowgate_assembled_bytes_total counter
flowgate_assembled_bytes_total 1024
# HELP flowgate_assembly_duration_seconds Time to assemble an upload, from claim to recorded result.
# TYPE flowgate_assembly_duration_seconds histogram
flowgate_assembly_duration_seconds_bucket{le="0.005"} 1
flowgate_assembly_duration_seconds_bucket{le="0.01"} 1
flowgate_assembly_duration_seconds_bucket{le="0.025"} 1
flowgate_assembly_duration_seconds_bucket{le="0.05"} 1
flowgate_assembly_duration_seconds_bucket{le="0.1"} 1
flowgate_assembly_duration_seconds_bucket{le="0.25"} 1
flowgate_assembly_duration_seconds_bucket{le="0.5"} 1
flowgate_assembly_duration_seconds_bucket{le="1"} 1
flowgate_assembly_duration_seconds_bucket{le="2.5"} 2
flowgate_assembly_duration_seconds_bucket{le="5"} 2
flowgate_assembly_duration_seconds_bucket{le="10"} 2
flowgate_assembly_duration_seconds_bucket{le="30"} 2
flowgate_assembly_duration_seconds_bucket{le="60"} 2
flowgate_assembly_duration_seconds_bucket{le="120"} 2
flowgate_assembly_duration_seconds_bucket{le="300"} 2
flowgate_assembly_duration_seconds_bucket{le="900"} 2
flowgate_assembly_duration_seconds_bucket{le="+Inf"} 3
flowgate_assembly_duration_seconds_sum 3602.003
flowgate_assembly_duration_seconds_count 3
# HELP flowgate_assembly_failures_total Failed assemblies: permanent (recorded as failed) or retry (tried again later).
# TYPE flowgate_assembly_failures_total counter
flowgate_assembly_failures_total{kind="permanent"} 1
flowgate_assembly_failures_total{kind="retry"} 2
# HELP flowgate_uploads_in_progress Uploads receiving chunks: one in flight or one in the last minute.
# TYPE flowgate_uploads_in_progress gauge
flowgate_uploads_in_progress 7
`
	if got := buf.String(); got != want {
		t.Errorf("exposition differs:\n%s", diff(got, want))
	}

	// The handler serves the same text with the format's media type.
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if ct := rec.Header().Get("Content-Type"); ct != ContentType {
		t.Errorf("Content-Type %q", ct)
	}
	if rec.Body.String() != want {
		t.Errorf("handler body differs from WritePrometheus")
	}
}

// TestEmptyAndNil: fresh metrics render zeros and an empty histogram; a nil
// *Metrics records nothing and does not panic.
func TestEmptyAndNil(t *testing.T) {
	var buf bytes.Buffer
	New().WritePrometheus(&buf)
	for _, l := range []string{"flowgate_chunks_received_total 0", `flowgate_assembly_duration_seconds_bucket{le="+Inf"} 0`,
		"flowgate_assembly_duration_seconds_sum 0"} {
		if !strings.Contains(buf.String(), l+"\n") {
			t.Errorf("missing %q", l)
		}
	}
	if strings.Contains(buf.String(), "uploads_in_progress") {
		t.Error("gauge rendered without a source")
	}
	var m *Metrics
	m.ChunkReceived(1)
	m.Rejected("x", 400)
	m.Assembled(time.Second, 1)
	m.AssemblyFailed(FailureRetry)
	m.SetInProgress(nil)
}

type emfDoc struct {
	AWS struct {
		Timestamp         int64 `json:"Timestamp"`
		CloudWatchMetrics []struct {
			Namespace  string     `json:"Namespace"`
			Dimensions [][]string `json:"Dimensions"`
			Metrics    []struct {
				Name, Unit string
			} `json:"Metrics"`
		} `json:"CloudWatchMetrics"`
	} `json:"_aws"`
}

// TestEMF: on Lambda, each observation is one JSON line that CloudWatch can
// extract: namespace flowgate, every metric and dimension it names present
// on the root with a number or a string, a millisecond timestamp.
func TestEMF(t *testing.T) {
	var out bytes.Buffer
	m := ForEnvironment(func(k string) string {
		if k == "AWS_LAMBDA_FUNCTION_NAME" {
			return "flowgate-upload"
		}
		return ""
	}, &out)
	at := time.Date(2025, 1, 2, 3, 4, 5, 6e6, time.UTC)
	m.Now = func() time.Time { return at }
	m.ChunkReceived(4096)
	m.Rejected("too_large", 413)
	m.Assembled(1500*time.Millisecond, 10)
	m.AssemblyFailed(FailurePermanent)
	m.SetInProgress(func() int { return 1 }) // gauges are not emitted

	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d EMF lines, want 4:\n%s", len(lines), out.String())
	}
	type expect struct {
		metrics map[string]float64
		units   map[string]string
		dims    map[string]string
	}
	wants := []expect{
		{map[string]float64{"ChunksReceived": 1, "BytesReceived": 4096}, map[string]string{"ChunksReceived": "Count", "BytesReceived": "Bytes"}, nil},
		{map[string]float64{"Rejections": 1}, map[string]string{"Rejections": "Count"}, map[string]string{"Reason": "too_large", "Status": "413"}},
		{map[string]float64{"Assemblies": 1, "AssemblySeconds": 1.5, "AssembledBytes": 10}, map[string]string{"AssemblySeconds": "Seconds"}, nil},
		{map[string]float64{"AssemblyFailures": 1}, nil, map[string]string{"Kind": "permanent"}},
	}
	for i, l := range lines {
		var doc emfDoc
		if err := json.Unmarshal([]byte(l), &doc); err != nil {
			t.Fatalf("line %d not JSON: %v", i, err)
		}
		var root map[string]any
		json.Unmarshal([]byte(l), &root)
		if doc.AWS.Timestamp != at.UnixMilli() {
			t.Errorf("line %d: timestamp %d", i, doc.AWS.Timestamp)
		}
		if len(doc.AWS.CloudWatchMetrics) != 1 {
			t.Fatalf("line %d: %d directives", i, len(doc.AWS.CloudWatchMetrics))
		}
		d := doc.AWS.CloudWatchMetrics[0]
		if d.Namespace != "flowgate" {
			t.Errorf("line %d: namespace %q", i, d.Namespace)
		}
		w := wants[i]
		if len(d.Metrics) != len(w.metrics) {
			t.Errorf("line %d: metrics %v", i, d.Metrics)
		}
		for _, md := range d.Metrics {
			v, ok := root[md.Name].(float64)
			if !ok || v != w.metrics[md.Name] {
				t.Errorf("line %d: %s = %v, want %v", i, md.Name, root[md.Name], w.metrics[md.Name])
			}
			if u, ok := w.units[md.Name]; ok && md.Unit != u {
				t.Errorf("line %d: %s unit %q, want %q", i, md.Name, md.Unit, u)
			}
		}
		// Every dimension set names root members holding strings; one set
		// is empty (the total).
		hasEmpty := false
		for _, set := range d.Dimensions {
			if len(set) == 0 {
				hasEmpty = true
			}
			for _, name := range set {
				if s, ok := root[name].(string); !ok || s != w.dims[name] {
					t.Errorf("line %d: dimension %s = %v, want %q", i, name, root[name], w.dims[name])
				}
			}
		}
		if !hasEmpty {
			t.Errorf("line %d: no dimensionless set: %v", i, d.Dimensions)
		}
		if w.dims != nil && len(d.Dimensions) != 2 {
			t.Errorf("line %d: dimension sets %v", i, d.Dimensions)
		}
	}
}

// TestNoEMFOutsideLambda: without AWS_LAMBDA_FUNCTION_NAME nothing is written.
func TestNoEMFOutsideLambda(t *testing.T) {
	var out bytes.Buffer
	m := ForEnvironment(func(string) string { return "" }, &out)
	m.ChunkReceived(1)
	m.Rejected("invalid", 400)
	if out.Len() != 0 {
		t.Fatalf("EMF written outside Lambda: %q", out.String())
	}
}

func diff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	var b strings.Builder
	for i := 0; i < max(len(g), len(w)); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			b.WriteString("got:  " + gl + "\nwant: " + wl + "\n")
		}
	}
	return b.String()
}
