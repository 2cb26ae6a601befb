package awsdeploy

import (
	"strings"
	"testing"
)

func TestLoad(t *testing.T) {
	env := map[string]string{"FLOWGATE_BUCKET": "b", "FLOWGATE_TABLE": "t"}
	c, err := Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.Limits.MaxChunkSize != LambdaMaxChunk || c.StagingPrefix != "staging/" || c.FinishedPrefix != "files/" || c.EventBus != "" {
		t.Fatalf("defaults = %+v", c)
	}
	env = map[string]string{"FLOWGATE_STAGING_PREFIX": "files/x/", "FLOWGATE_ASSEMBLY_CONCURRENCY": "0"}
	_, err = Load(func(k string) string { return env[k] })
	for _, want := range []string{"FLOWGATE_BUCKET", "FLOWGATE_TABLE", "overlap", "FLOWGATE_ASSEMBLY_CONCURRENCY"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %s", err, want)
		}
	}
}
