package logctx_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/shared/logctx"
)

func lines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		out = append(out, m)
	}
	return out
}

// TestScope: attributes added to a scope reach every logger taken from it
// afterwards, a key set twice appears once with its last value, and a child
// scope neither loses its parent's attributes nor changes them.
func TestScope(t *testing.T) {
	var buf bytes.Buffer
	base := slog.New(slog.NewJSONHandler(&buf, nil))
	ctx := logctx.Start(context.Background(), base, slog.String("requestId", "r1"))
	logctx.From(ctx, nil).Info("one")
	logctx.Add(ctx, slog.String("upload", "k1"))
	logctx.From(ctx, nil).Info("two")
	other := slog.New(slog.NewJSONHandler(io.Discard, nil))
	child := logctx.Start(ctx, other, slog.String("upload", "k2"), slog.String("step", "x")) // the parent's logger wins
	logctx.From(child, nil).Info("three")
	logctx.From(ctx, nil).Info("four")

	got := lines(t, &buf)
	want := []map[string]string{
		{"msg": "one", "requestId": "r1"},
		{"msg": "two", "requestId": "r1", "upload": "k1"},
		{"msg": "three", "requestId": "r1", "upload": "k2", "step": "x"},
		{"msg": "four", "requestId": "r1", "upload": "k1"},
	}
	for i, w := range want {
		for k, v := range w {
			if got[i][k] != v {
				t.Errorf("line %d: %s = %v, want %q (%v)", i, k, got[i][k], v, got[i])
			}
		}
	}
	if _, ok := got[0]["upload"]; ok {
		t.Errorf("line 0 has an upload before it was added: %v", got[0])
	}
	if _, ok := got[3]["step"]; ok {
		t.Errorf("the child's attribute leaked into the parent: %v", got[3])
	}
	if n := strings.Count(strings.Split(buf.String(), "\n")[2], `"upload"`); n != 1 {
		t.Errorf("child line has %d upload keys, want 1", n)
	}
}

// TestNoScope: without a scope, From is the fallback.
func TestNoScope(t *testing.T) {
	var buf bytes.Buffer
	fb := slog.New(slog.NewJSONHandler(&buf, nil))
	logctx.From(context.Background(), fb).Info("x")
	logctx.Add(context.Background(), slog.String("a", "b")) // no panic, no effect
	if !strings.Contains(buf.String(), `"msg":"x"`) {
		t.Fatalf("fallback not used: %q", buf.String())
	}
	if logctx.From(context.Background(), nil) != slog.Default() {
		t.Fatal("no fallback: want slog.Default()")
	}
}
