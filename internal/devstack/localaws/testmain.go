package localaws

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"
)

var (
	currentMu sync.Mutex
	current   *Servers
)

// Current returns the servers RunTests started, or nil outside it.
func Current() *Servers {
	currentMu.Lock()
	defer currentMu.Unlock()
	return current
}

// RunTests is a TestMain body for packages that test against the local
// servers:
//
//	func TestMain(m *testing.M) { os.Exit(localaws.RunTests(m)) }
//
// It installs and starts MinIO and dynalite on free 127.0.0.1 ports, points
// the AWS SDK at them through the environment, runs the tests and stops the
// servers. If the servers cannot start, it prints why and returns 1: the
// tests fail, they are never skipped.
func RunTests(m interface{ Run() int }) int {
	// A first run may build MinIO; later runs only start it.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	s, err := Start(ctx, Options{})
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: the local AWS servers (MinIO, dynalite) could not start, so the integration tests cannot run:\n%v\n", err)
		return 1
	}
	defer s.Stop()
	s.SetEnv()
	currentMu.Lock()
	current = s
	currentMu.Unlock()
	return m.Run()
}
