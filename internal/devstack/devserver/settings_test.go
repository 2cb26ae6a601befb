package devserver

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLoadSettings(t *testing.T) {
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	s, err := LoadSettings(env())
	if err != nil {
		t.Fatal(err)
	}
	if s.Instances != 3 || s.Assemblers != 3 || s.TTLDelay != 10*time.Minute || s.RedriveInterval != time.Minute ||
		s.Duplicates != 0.1 || s.Addr != "127.0.0.1:8080" || s.DynamoDBAddr != "127.0.0.1:4568" || s.StreamRetention != 24*time.Hour {
		t.Errorf("defaults = %+v", s)
	}
	s, err = LoadSettings(env("FLOWGATE_DEV_INSTANCES", "5", "FLOWGATE_DEV_TTL_DELAY", "15s", "FLOWGATE_DEV_DUPLICATES", "0"))
	if err != nil || s.Instances != 5 || s.TTLDelay != 15*time.Second || s.Duplicates != 0 {
		t.Errorf("settings = %+v, %v", s, err)
	}
	for _, bad := range [][]string{
		{"FLOWGATE_DEV_INSTANCES", "0"},
		{"FLOWGATE_DEV_INSTANCES", "17"},
		{"FLOWGATE_DEV_ASSEMBLERS", "11"},
		{"FLOWGATE_DEV_TTL_DELAY", "-1s"},
		{"FLOWGATE_DEV_TTL_DELAY", "soon"},
		{"FLOWGATE_DEV_REDRIVE_INTERVAL", "10ms"},
		{"FLOWGATE_DEV_DUPLICATES", "1.5"},
		{"FLOWGATE_DEV_STREAM_RETENTION", "25h"},
		{"FLOWGATE_ADDR", "0.0.0.0:8080"},
		{"FLOWGATE_DEV_DYNAMODB_ADDR", ":4568"},
	} {
		if _, err := LoadSettings(env(bad...)); err == nil || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("%s=%s: %v, want an error naming it", bad[0], bad[1], err)
		}
	}
}

// The functions get the FLOWGATE_* settings meant for them, not the dev
// stack's own, nor anything else of the environment.
func TestFunctionSettings(t *testing.T) {
	got := functionSettings([]string{
		"FLOWGATE_MAX_CHUNK_SIZE=2MiB", "FLOWGATE_TABLE=mine", "FLOWGATE_DEV_INSTANCES=2",
		"FLOWGATE_ADDR=127.0.0.1:1", "FLOWGATE_WEB_DIR=web", "FLOWGATE_EXPIRY=", "HOME=/root",
	})
	want := map[string]string{"FLOWGATE_MAX_CHUNK_SIZE": "2MiB", "FLOWGATE_TABLE": "mine", "FLOWGATE_BUCKET": "flowgate-dev"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

// The emulator's chatter and the metric lines are dropped, the functions'
// log lines and anything else (a panic's trace) pass, whole lines only.
func TestLineFilter(t *testing.T) {
	var out bytes.Buffer
	f := &lineFilter{w: &out}
	in := "START RequestId: 1 Version: $LATEST\n" +
		`{"level":"INFO","msg":"request"}` + "\n" +
		`{"_aws":{"Timestamp":1,"CloudWatchMetrics":[]},"ChunksReceived":1}` + "\n" +
		"26 Nov 2026 10:00:00,000 [INFO] (rapid) exec '/bootstrap'\n" +
		"panic: boom\n" +
		"END RequestId: 1\nREPORT RequestId: 1 Duration: 1 ms\n"
	for chunk := range slices.Chunk([]byte(in), 7) { // lines arrive in pieces
		f.Write(chunk)
	}
	if want := `{"level":"INFO","msg":"request"}` + "\npanic: boom\n"; out.String() != want {
		t.Errorf("passed %q, want %q", out.String(), want)
	}
	out.Reset()
	f = &lineFilter{w: &out, debug: true}
	f.Write([]byte(in))
	if out.String() != in {
		t.Errorf("debug passed %q, want everything", out.String())
	}
}
