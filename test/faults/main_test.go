// Package faults is fault injection on the local path: every call of the
// directory store, the bbolt ledger and the publisher failing or timing out
// in turn under load; the embedded server killed with SIGKILL at random
// points under load and restarted, every chunk acknowledged before a kill
// still counted after it; and a webhook that fails, across retries and a
// restart.
package faults

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/proc"
)

// binary is cmd/flowgate, built once; root is the repository.
var binary, root string

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	var cleanup func()
	var err error
	if binary, root, cleanup, err = proc.BuildServer("faults"); err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		return 1
	}
	defer cleanup()
	return m.Run()
}

// server runs cmd/flowgate on dataDir at addr (a free port if empty), and
// kills it when the test ends. Proc.Log has its output.
func server(t *testing.T, ctx context.Context, dataDir, addr string, env ...string) *proc.Proc {
	t.Helper()
	var p *proc.Proc
	var err error
	for try := 0; try < 3; try++ {
		p, err = proc.StartServer(ctx, proc.Options{
			Bin:      binary,
			Addr:     addr,
			LogLimit: 64 << 20,
			Env: append([]string{
				"FLOWGATE_DATA_DIR=" + dataDir,
				"FLOWGATE_WEB_DIR=" + filepath.Join(root, "web"),
			}, env...),
		})
		if err == nil {
			break
		}
		t.Logf("start attempt %d: %v", try+1, err)
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Kill() })
	return p
}
