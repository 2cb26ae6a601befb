package deploy

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The tree says by its paths what ships: functions/ (the Lambda functions)
// and cmd/flowgate (the embedded server) are built from shared/; internal/
// (the dev stack, test helpers, process supervision), test/, bench/ and
// deploy/ are for developing flowgate and never reach a user's binary. The
// rules below hold the import graph to that, so that a helper written for a
// test cannot slip into a function because someone found it handy.

const mod = "github.com/flowgate/flowgate/"

// devOnly is every tree that does not ship.
var devOnly = []string{mod + "internal/", mod + "test/", mod + "bench", mod + "deploy"}

// embeddedOnly is what only the embedded server runs: its wiring and its
// storage on the local disk.
var embeddedOnly = []string{mod + "shared/localserver", mod + "shared/dirstore", mod + "shared/boltledger"}

// awsOnly is what only the AWS path runs: its wiring, its storage on S3 and
// DynamoDB, and their SDK clients.
var awsOnly = []string{
	mod + "shared/awsdeploy", mod + "shared/s3store", mod + "shared/dynamoledger",
	mod + "shared/streamassemble", mod + "shared/redrive", mod + "shared/s3count",
	"github.com/aws/aws-sdk-go-v2/service/s3", "github.com/aws/aws-sdk-go-v2/service/dynamodb",
}

func TestWhatShipsLinksNoDevTooling(t *testing.T) {
	rules := []struct {
		pkgs      string   // go list pattern, relative to deploy/
		forbidden []string // import path prefixes none of them may link
	}{
		{"../functions/...", slices.Concat(devOnly, embeddedOnly)},
		{"../cmd/flowgate", slices.Concat(devOnly, awsOnly)},
		{"../shared/...", devOnly},
	}
	for _, r := range rules {
		for pkg, deps := range goList(t, "-deps", r.pkgs) {
			for _, d := range deps {
				if p := hasAnyPrefix(d, r.forbidden); p != "" {
					t.Errorf("%s links %s (nothing under %s may reach it)", pkg, d, p)
				}
			}
		}
	}
}

// Tests of different kinds share helpers through internal/testkit, never by
// importing one another: a test/ package is imported only from test/, and
// nothing imports bench, cmd or a function's main package.
func TestNothingImportsTestsOrCommands(t *testing.T) {
	for pkg, imports := range goList(t, "-test", "../...") {
		for _, imp := range imports {
			switch {
			case strings.HasPrefix(imp, mod+"test/") && !strings.HasPrefix(pkg, mod+"test/"):
				t.Errorf("%s imports %s", pkg, imp)
			case imp == mod+"bench" || strings.HasPrefix(imp, mod+"cmd/") ||
				strings.HasPrefix(imp, mod+"functions/") || strings.HasPrefix(imp, mod+"internal/devstack/cmd/"):
				t.Errorf("%s imports the command %s", pkg, imp)
			}
		}
	}
}

// goList maps each package matched by pattern to import paths: with "-deps",
// everything it links (its tests' imports aside); with "-test", what it and
// its tests import directly.
func goList(t *testing.T, mode, pattern string) map[string][]string {
	t.Helper()
	var args []string
	switch mode {
	case "-deps":
		args = []string{"list", "-f", "{{.ImportPath}} {{join .Deps \" \"}}", pattern}
	case "-test":
		args = []string{"list", "-f", "{{.ImportPath}} {{join .Imports \" \"}} {{join .TestImports \" \"}} {{join .XTestImports \" \"}}", pattern}
	default:
		t.Fatalf("goList: unknown mode %q", mode)
	}
	out, err := exec.Command("go", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	m := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 {
			m[f[0]] = f[1:]
		}
	}
	if len(m) == 0 {
		t.Fatalf("go %s listed no package", strings.Join(args, " "))
	}
	return m
}

// hasAnyPrefix returns the first of prefixes that s is or lies under.
func hasAnyPrefix(s string, prefixes []string) string {
	for _, p := range prefixes {
		p = strings.TrimSuffix(p, "/")
		if s == p || strings.HasPrefix(s, p+"/") {
			return p
		}
	}
	return ""
}
