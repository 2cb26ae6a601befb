package awsdeploy

import (
	"log/slog"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// TestMetricsInLambda: inside Lambda the deployment writes embedded-metric
// lines, and the handler and the pipeline report to the same metrics.
func TestMetricsInLambda(t *testing.T) {
	cfg, err := Load(envMap{"FLOWGATE_BUCKET": "b", "FLOWGATE_TABLE": "t"}.get)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)

	outside := NewWithAWS(cfg, aws.Config{Region: "us-east-1"}, log)
	if outside.Metrics == nil || outside.Metrics.EMF != nil {
		t.Fatalf("outside Lambda: metrics %v, want counted but not written", outside.Metrics)
	}
	t.Setenv("AWS_LAMBDA_FUNCTION_NAME", "flowgate-upload")
	d := NewWithAWS(cfg, aws.Config{Region: "us-east-1"}, log)
	if d.Metrics == nil || d.Metrics.EMF == nil {
		t.Fatal("in Lambda: no embedded-metric output")
	}
	if p := d.Pipeline("o"); p.Metrics != d.Metrics {
		t.Fatal("pipeline does not report to the deployment's metrics")
	}
}

type envMap map[string]string

func (m envMap) get(k string) string { return m[k] }
