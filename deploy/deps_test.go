package deploy

import (
	"os/exec"
	"strings"
	"testing"
)

// The Lambda functions link only what they run: nothing from internal/ (the
// dev stack, make dev's API Gateway emulation, the Runtime Interface
// Emulator's driver) nor the local-server tooling. And shared/, what the
// functions and the local server are made of, imports nothing from
// internal/ (make dev lives there: internal/devstack/devserver).
func TestFunctionsLinkNoDevTooling(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "../functions/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	const mod = "github.com/flowgate/flowgate/"
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, mod+"internal/") || strings.HasPrefix(p, mod+"test/") {
			t.Errorf("a function links %s", p)
		}
	}

	out, err = exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "../shared/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, " ")
		for _, imp := range strings.Fields(imports) {
			if strings.HasPrefix(imp, mod+"internal/") {
				t.Errorf("%s imports %s", pkg, imp)
			}
		}
	}
}
