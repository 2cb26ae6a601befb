package awsdeploy

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// The data path and its settings: proxy by default; direct with its own
// chunk limit (what one S3 PUT takes), and refused where chunks stored
// with a URL could find their upload expired before they are counted.
func TestLoadDataPath(t *testing.T) {
	load := func(env map[string]string) (Config, error) {
		env["FLOWGATE_BUCKET"], env["FLOWGATE_TABLE"] = "b", "t"
		return Load(func(k string) string { return env[k] })
	}
	c, err := load(map[string]string{})
	if err != nil || c.DataPath != DataPathProxy {
		t.Fatalf("default: %q, %v", c.DataPath, err)
	}
	c, err = load(map[string]string{"FLOWGATE_DATA_PATH": "direct"})
	if err != nil || c.Limits.MaxChunkSize != DirectMaxChunk || c.DirectURLLife != 15*time.Minute {
		t.Fatalf("direct: %+v, %v", c, err)
	}
	d := NewWithAWS(c, aws.Config{Region: "us-east-1"}, slog.New(slog.DiscardHandler))
	if d.Store.Presign == nil || !d.Service.Direct {
		t.Fatal("direct: no presigner, or a service that does not look for stored chunks")
	}
	if _, err = load(map[string]string{"FLOWGATE_DATA_PATH": "direct", "FLOWGATE_MAX_CHUNK_SIZE": "64MiB"}); err != nil {
		t.Fatal(err)
	}
	for env, want := range map[string]map[string]string{
		"FLOWGATE_DATA_PATH":       {"FLOWGATE_DATA_PATH": "s3"},
		"FLOWGATE_DIRECT_URL_LIFE": {"FLOWGATE_DATA_PATH": "direct", "FLOWGATE_DIRECT_URL_LIFE": "2h"},
		"at least 4 times":         {"FLOWGATE_DATA_PATH": "direct", "FLOWGATE_EXPIRY": "30m"},
		"FLOWGATE_DIRECT_ENDPOINT": {"FLOWGATE_DATA_PATH": "direct", "FLOWGATE_DIRECT_ENDPOINT": "https://s3.example/bucket"},
	} {
		if _, err := load(want); err == nil || !strings.Contains(err.Error(), env) {
			t.Errorf("%v: error %v does not mention %s", want, err, env)
		}
	}
	if _, err := load(map[string]string{"FLOWGATE_DATA_PATH": "direct", "FLOWGATE_EXPIRY": "1h", "FLOWGATE_DIRECT_URL_LIFE": "15m",
		"FLOWGATE_DIRECT_ENDPOINT": "http://127.0.0.1:9001"}); err != nil {
		t.Errorf("an expiry of four URL lives, and a plain-HTTP endpoint: %v", err)
	}
}
