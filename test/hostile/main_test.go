// Package hostile is the hostile-input battery: one table of malformed and
// malicious requests (hostile names in every field, lying numbers and
// sizes, broken bodies, geometry that changes mid-upload) sent to both
// paths through real HTTP: the embedded server as a real process, and the
// upload function's handler behind the API Gateway emulation on MinIO and
// dynalite.
package hostile

import (
	"fmt"
	"os"
	"testing"

	"github.com/flowgate/flowgate/internal/devstack/lambdarie"
	"github.com/flowgate/flowgate/internal/devstack/localaws"
	"github.com/flowgate/flowgate/internal/proc"
)

// binary is cmd/flowgate, built once; root is the repository.
var binary, root string

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	var cleanup func()
	var err error
	if binary, root, cleanup, err = proc.BuildServer("hostile"); err != nil {
		fmt.Fprintln(os.Stderr, "hostile:", err)
		return 1
	}
	defer cleanup()
	defer lambdarie.RemoveBootstraps()
	return localaws.RunTests(m)
}
