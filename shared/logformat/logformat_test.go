package logformat

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"
)

func TestResolve(t *testing.T) {
	var buf bytes.Buffer
	if got := Resolve(Auto, &buf); got != JSON {
		t.Errorf("auto on a buffer = %s, want json", got)
	}
	r, w, _ := os.Pipe()
	defer r.Close()
	defer w.Close()
	if got := Resolve(Auto, w); got != JSON {
		t.Errorf("auto on a pipe = %s, want json", got)
	}
	if got := Resolve(Text, &buf); got != Text {
		t.Errorf("text stays text: %s", got)
	}
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		defer tty.Close()
		if got := Resolve(Auto, tty); got != Text {
			t.Errorf("auto on a terminal = %s, want text", got)
		}
	}
}

func TestJSONLines(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, JSON, slog.LevelInfo)
	log.With("requestId", "r1").Info("upload ready", "chunks", 3)
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil || m["msg"] != "upload ready" || m["requestId"] != "r1" || m["chunks"] != 3.0 {
		t.Fatalf("JSON line %q: %v %v", buf.String(), m, err)
	}
}

func TestConsoleLines(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, Text, slog.LevelInfo)
	log.Debug("hidden")
	log.With("requestId", "r1").WithGroup("req").Info("upload ready", "chunks", 3, "path", "a b", slog.Group("t", "d", time.Second))
	line := buf.String()
	if strings.Count(line, "\n") != 1 {
		t.Fatalf("want one line (debug hidden), got %q", line)
	}
	for _, want := range []string{" INFO  upload ready", " requestId=r1", " req.chunks=3", ` req.path="a b"`, " req.t.d=1s"} {
		if !strings.Contains(line, want) {
			t.Errorf("console line %q lacks %q", line, want)
		}
	}
	if _, err := time.Parse("15:04:05", line[:8]); err != nil {
		t.Errorf("console line %q does not start with the time of day", line)
	}
}
