package deploy

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The model of SAM CLI agrees with SAM CLI itself on the cases in
// testdata/samcli: each *.want.* file is what SAM CLI 1.164.0 gave for the
// template beside it (its intrinsic resolver for resolve.yaml, its route
// discovery with and without --disable-authorizer for the others), recorded
// with record.py beside them (see the README.md there). They cover what
// template.yaml meets, and the two ways its API stopped SAM CLI before
// issue 12, so the model cannot quietly stop seeing them.
func TestSAMLocalModel(t *testing.T) {
	dir := filepath.Join("testdata", "samcli")
	src, err := os.ReadFile(filepath.Join(dir, "resolve.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	res := samResolve(t, "resolve.yaml", src, map[string]string{"Fallback": ""})
	got := jsonValue(t, map[string]any{"First": res["First"]["Properties"], "Probe": res["Probe"]["Properties"]})
	want := jsonValue(t, json.RawMessage(readFile(t, filepath.Join(dir, "resolve.want.json"))))
	for _, id := range []string{"First", "Probe"} {
		g, w := mapOf(mapOf(got)[id]), mapOf(mapOf(want)[id])
		for _, k := range sortedKeys(boolSet(w)) {
			if !reflect.DeepEqual(g[k], w[k]) {
				t.Errorf("resolve.yaml %s.%s: model %s, SAM CLI %s", id, k, jsonText(g[k]), jsonText(w[k]))
			}
		}
		if len(g) != len(w) {
			t.Errorf("resolve.yaml %s: model keys %v, SAM CLI keys %v", id, sortedKeys(boolSet(g)), sortedKeys(boolSet(w)))
		}
	}

	for _, name := range []string{"routes", "crash-security", "crash-schemes"} {
		src, err := os.ReadFile(filepath.Join(dir, name+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		res := samResolve(t, name+".yaml", src, nil)
		var b strings.Builder
		for _, disable := range []bool{false, true} {
			fmt.Fprintf(&b, "disable-authorizer=%v\n", disable)
			api, err := samDiscover(mapOf(res["Api"]["Properties"]), disable)
			b.WriteString(samAPIText(api, err))
		}
		if want := string(readFile(t, filepath.Join(dir, name+".want.txt"))); b.String() != want {
			t.Errorf("%s.yaml: the model gives\n%s\nSAM CLI gives\n%s", name, b.String(), want)
		}
	}
}

// samAPIText prints what SAM CLI mounts, or the exception that stops it, as
// the recording script does.
func samAPIText(api *samAPI, err error) string {
	var c samCrash
	if errors.As(err, &c) {
		return "crash " + c.Kind + "\n"
	} else if err != nil {
		return "error " + err.Error() + "\n"
	}
	var b strings.Builder
	for _, r := range api.Routes {
		auth := "-"
		if a, ok := api.Authorizers[r.Authorizer]; ok {
			auth = fmt.Sprintf("%s(%s %s %s)", r.Authorizer, a.Type, a.Function, a.IdentitySource)
		}
		fmt.Fprintf(&b, "ROUTE %s %s %s authorizer=%s\n", r.Method, r.Path, r.Function, auth)
	}
	fmt.Fprintf(&b, "BINARY %s\n", strings.Join(api.BinaryMediaTypes, " "))
	if api.AnswersPreflight {
		b.WriteString("PREFLIGHT sam\n")
	} else {
		b.WriteString("PREFLIGHT function\n")
	}
	return b.String()
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// jsonValue is v as JSON would give it back (numbers as float64).
func jsonValue(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
