package lambdarie

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/flowgate/flowgate/internal/proc"
)

// BuildFlags are the Makefile's release flags for a Lambda function
// (LAMBDA_GOFLAGS): no RPC shim, no local paths, no symbols. Bootstrap adds
// CGO_ENABLED=0, as the Makefile does, and builds for this machine instead
// of linux/arm64.
var BuildFlags = []string{"-tags", "lambda.norpc", "-trimpath", "-ldflags=-s -w"}

var builds struct {
	sync.Mutex
	dir  string            // this process's build directory
	done map[string]string // function name -> bootstrap path
}

// Bootstrap returns the path of functions/<name>'s `bootstrap`, built for
// this machine with the release flags, building it the first time a process
// asks (later calls return the same file at once; a failed build is tried
// again on the next call). Each bootstrap sits alone in a directory of its
// own, as in Lambda's /var/task. The builds live in a temporary directory
// until RemoveBootstraps.
func Bootstrap(ctx context.Context, name string) (string, error) {
	if name == "" || name != filepath.Base(name) || name[0] == '.' {
		return "", fmt.Errorf("lambdarie: %q is not a function name (a directory of functions/)", name)
	}
	builds.Lock()
	defer builds.Unlock()
	if bin, ok := builds.done[name]; ok {
		return bin, nil
	}
	root, err := proc.Root()
	if err != nil {
		return "", err
	}
	if builds.dir == "" {
		if builds.dir, err = os.MkdirTemp("", "flowgate-bootstrap-"); err != nil {
			return "", err
		}
		builds.done = map[string]string{}
	}
	bin := filepath.Join(builds.dir, name, "bootstrap")
	if err := proc.Build(ctx, root, "./functions/"+name, bin, []string{"CGO_ENABLED=0"}, BuildFlags...); err != nil {
		return "", fmt.Errorf("lambdarie: %w", err)
	}
	builds.done[name] = bin
	return bin, nil
}

// RemoveBootstraps deletes every bootstrap this process built; the next
// Bootstrap call builds again. Call it once no instance needs them (at the
// end of TestMain, when the dev stack stops): a running instance keeps
// working, but one started later would not find its binary.
func RemoveBootstraps() {
	builds.Lock()
	defer builds.Unlock()
	if builds.dir != "" {
		os.RemoveAll(builds.dir)
		builds.dir, builds.done = "", nil
	}
}
