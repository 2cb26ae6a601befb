package esm_test

import (
	"encoding/json"
	"testing"

	"github.com/flowgate/flowgate/internal/devstack/esm"
)

func TestMatchPattern(t *testing.T) {
	ev := map[string]any{"a": "x", "n": 1.0, "l": []any{"p", "q"}, "o": map[string]any{"b": "y", "c": true}, "z": nil}
	for _, tt := range []struct {
		pattern string
		want    bool
	}{
		{`{"a": ["x"]}`, true},
		{`{"a": ["y", "x"]}`, true},
		{`{"a": ["y"]}`, false},
		{`{"n": [1]}`, true},
		{`{"n": ["1"]}`, false},
		{`{"l": ["q"]}`, true},
		{`{"o": {"b": ["y"], "c": [true]}}`, true},
		{`{"o": {"b": ["z"]}}`, false},
		{`{"missing": ["x"]}`, false},
		{`{"o": {"missing": [{"exists": false}]}}`, true},
		{`{"a": [{"exists": true}]}`, true},
		{`{"a": [{"exists": false}]}`, false},
		{`{"a": [{"prefix": "x"}]}`, true},
		{`{"a": [{"prefix": "y"}]}`, false},
		{`{"a": [{"suffix": "x"}]}`, true},
		{`{"a": [{"equals-ignore-case": "X"}]}`, true},
		{`{"a": [{"anything-but": ["x"]}]}`, false},
		{`{"a": [{"anything-but": "z"}]}`, true},
		{`{"missing": [{"anything-but": "z"}]}`, false},
		{`{"n": [{"numeric": [">", 0, "<=", 1]}]}`, true},
		{`{"n": [{"numeric": ["<", 1]}]}`, false},
		{`{"a": [{"numeric": ["=", 1]}]}`, false},
		{`{"z": [null]}`, true},
		{`{"a": ["x"], "o": {"b": ["nope"]}}`, false},
	} {
		p, err := esm.ParsePattern(tt.pattern)
		if err != nil {
			t.Fatalf("%s: %v", tt.pattern, err)
		}
		if got, err := esm.MatchPattern(p, ev); err != nil || got != tt.want {
			t.Errorf("%s: %v %v, want %v", tt.pattern, got, err, tt.want)
		}
	}
	for _, bad := range []string{`{"n": [{"cidr": "10.0.0.0/24"}]}`, `{"a": "x"}`, `{"a": [{"prefix": 1}]}`, `{"a": [{"numeric": ["~", 1]}]}`, `not json`} {
		if _, err := esm.ParsePattern(bad); err == nil {
			t.Errorf("%s: parsed, want an error", bad)
		}
	}
	var p map[string]any
	json.Unmarshal([]byte(`{"n": [{"wildcard": "*"}]}`), &p)
	if _, err := esm.MatchPattern(p, ev); err == nil {
		t.Error("an unmodelled filter did not fail")
	}
	if ok, _ := esm.MatchAny(nil, ev); !ok {
		t.Error("no filters must match every record")
	}
}
