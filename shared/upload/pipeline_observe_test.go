package upload_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowgate/flowgate/shared/upload"
)

// fakeMetrics records what the pipeline reports.
type fakeMetrics struct {
	mu        sync.Mutex
	assembled []time.Duration
	sizes     []int64
	failed    []string
}

func (m *fakeMetrics) Assembled(d time.Duration, size int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.assembled, m.sizes = append(m.assembled, d), append(m.sizes, size)
}

func (m *fakeMetrics) AssemblyFailed(kind string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failed = append(m.failed, kind)
}

// TestPipelineMetricsAndLogs: an assembly is counted once with its duration
// (by the pipeline's clock) and size; a duplicate run counts nothing; a
// transient error counts a retry, a permanent one a permanent failure; and
// every line the pipeline logs carries the upload key, once.
func TestPipelineMetricsAndLogs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	var logs bytes.Buffer
	e := newPipeEnv(t)
	m := &fakeMetrics{}
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	e.p.Metrics, e.p.Now = m, func() time.Time { return clock }
	e.p.Log = slog.New(slog.NewJSONHandler(&logs, nil))
	e.asm.fn = func(call int, rec upload.Record) (upload.Result, error) {
		if call == 1 {
			return upload.Result{}, errors.New("disk busy")
		}
		clock = clock.Add(1500 * time.Millisecond)
		return svcResultFor(rec), nil
	}
	if err := e.p.Run(ctx, e.info.Key); err == nil {
		t.Fatal("want the transient error")
	}
	if err := e.p.Run(ctx, e.info.Key); err != nil {
		t.Fatal(err)
	}
	if err := e.p.Run(ctx, e.info.Key); err != nil { // a duplicate trigger
		t.Fatal(err)
	}
	if len(m.assembled) != 1 || m.assembled[0] != 1500*time.Millisecond || m.sizes[0] != 30 {
		t.Fatalf("assembled %v sizes %v, want one of 1.5s and 30 bytes", m.assembled, m.sizes)
	}
	if len(m.failed) != 1 || m.failed[0] != "retry" {
		t.Fatalf("failures %v, want [retry]", m.failed)
	}
	n := 0
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var line map[string]any
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		if line["upload"] != e.info.Key || strings.Count(l, `"upload":`) != 1 {
			t.Errorf("line without its upload key once: %s", l)
		}
		n++
	}
	if !strings.Contains(logs.String(), `"msg":"assembled"`) || n == 0 {
		t.Fatalf("no assembled line: %s", logs.String())
	}

	// A permanent failure.
	p := newPipeEnv(t)
	pm := &fakeMetrics{}
	p.p.Metrics = pm
	p.asm.fn = func(int, upload.Record) (upload.Result, error) {
		return upload.Result{}, &upload.PermanentError{Reason: "size differs"}
	}
	if err := p.p.Run(ctx, p.info.Key); err != nil {
		t.Fatal(err)
	}
	if len(pm.failed) != 1 || pm.failed[0] != "permanent" || len(pm.assembled) != 0 {
		t.Fatalf("failures %v assembled %v, want [permanent] and none", pm.failed, pm.assembled)
	}
}
