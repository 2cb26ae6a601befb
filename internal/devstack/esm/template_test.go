package esm_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/devstack/esm"
)

// The loader reads the assembler's stream event from the project's own
// template, so that make dev gives up where AWS would.
func TestLoadProjectTemplate(t *testing.T) {
	srcs, err := esm.LoadTemplate("../../../template.yaml", "AssembleFunction")
	if err != nil {
		t.Fatal(err)
	}
	if len(srcs) != 1 {
		t.Fatalf("%d DynamoDB events, want 1", len(srcs))
	}
	s := srcs[0]
	c := s.Config
	if s.Table != "LedgerTable" || s.OnFailure != "AssemblyFailureQueue" || !c.HasOnFailure || c.FunctionName != "AssembleFunction" ||
		c.BatchSize != 1 || c.ParallelizationFactor != 10 || c.MaximumBatchingWindow != 0 || c.StartingPosition != "TRIM_HORIZON" ||
		c.MaximumRetryAttempts != 10 || c.MaximumRecordAge != 6*time.Hour || !c.BisectBatchOnFunctionError ||
		!c.ReportBatchItemFailures || len(c.Filters) != 2 || c.FunctionTimeout != 15*time.Minute {
		t.Errorf("loaded %+v", s)
	}
	ready := map[string]any{"eventName": "MODIFY", "dynamodb": map[string]any{"NewImage": map[string]any{
		"sk": map[string]any{"S": "META"}, "status": map[string]any{"S": "ready"}}}}
	if ok, err := esm.MatchAny(c.Filters, ready); err != nil || !ok {
		t.Errorf("the template's filters miss a ready record: %v %v", ok, err)
	}
}

func TestLoadTemplateRefusesWhatItCannotKnow(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"intrinsic": `
Resources:
  F:
    Properties:
      Events:
        S:
          Type: DynamoDB
          Properties: {Stream: !GetAtt T.StreamArn, StartingPosition: LATEST, BatchSize: !Ref Size}
`,
		"badfilter": `
Resources:
  F:
    Properties:
      Events:
        S:
          Type: DynamoDB
          Properties:
            Stream: !GetAtt T.StreamArn
            StartingPosition: LATEST
            FilterCriteria: {Filters: [{Pattern: '{"a": [{"wildcard": "*"}]}'}]}
`,
		"nostream": `
Resources:
  F:
    Properties:
      Events:
        S: {Type: Api, Properties: {Path: /}}
`,
	} {
		path := filepath.Join(dir, name+".yaml")
		os.WriteFile(path, []byte(body), 0o644)
		if _, err := esm.LoadTemplate(path, "F"); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
}
