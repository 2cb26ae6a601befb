package main

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/proc"
)

// TestSoakShort is the soak in miniature, run by go test: 10 seconds
// (FLOWGATE_SOAK_TEST_DURATION to change) of eight simulated users against
// the embedded server. Nothing may be lost, corrupt or refused, and the
// server must hold no more memory or open files at the end than the run's
// tolerances allow.
func TestSoakShort(t *testing.T) {
	t.Parallel()
	d, root := testSetup(t)
	ctx, cancel := context.WithTimeout(context.Background(), d+2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Config{
		Target: "local", Duration: d, Clients: 8, MaxFile: 6 << 20, Grace: 60 * time.Second,
		Root: root, WorkDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", rep)
	if rep.Lost != 0 || rep.Corrupt != 0 || rep.Stuck != 0 || rep.Failed != 0 {
		t.Errorf("lost %d, corrupt %d, stuck %d, failed %d: want 0 each", rep.Lost, rep.Corrupt, rep.Stuck, rep.Failed)
	}
	if !rep.Passed() {
		t.Errorf("problems: %q", rep.Problems)
	}
}

// TestSoakShortDev is the same against make dev's stack: three upload
// function instances under the Lambda emulator, the stream delivering
// batches twice now and then, uploads expiring 30 s after their last chunk
// (the abandoned ones) and the emulated TTL removing them 15 s later.
// Nothing may be lost, corrupt, stuck or refused.
func TestSoakShortDev(t *testing.T) {
	t.Parallel()
	d, root := testSetup(t)
	ctx, cancel := context.WithTimeout(context.Background(), d+6*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Config{
		Target: "dev", Duration: d, Clients: 8, MaxFile: 6 << 20, Grace: 60 * time.Second,
		Root: root, WorkDir: t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", rep)
	if rep.Lost != 0 || rep.Corrupt != 0 || rep.Stuck != 0 || rep.Failed != 0 {
		t.Errorf("lost %d, corrupt %d, stuck %d, failed %d: want 0 each", rep.Lost, rep.Corrupt, rep.Stuck, rep.Failed)
	}
	if rep.Stack == nil || rep.Stack.Mapping.Invocations == 0 {
		t.Errorf("the stack reported no stream deliveries: %+v", rep.Stack)
	}
	if !rep.Passed() {
		t.Errorf("problems: %q", rep.Problems)
	}
}

// testSetup is a short soak's duration (10 s, or FLOWGATE_SOAK_TEST_DURATION)
// and the checkout it builds.
func testSetup(t *testing.T) (time.Duration, string) {
	d := 10 * time.Second
	if v := os.Getenv("FLOWGATE_SOAK_TEST_DURATION"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			t.Fatal(err)
		}
	}
	root, err := proc.Root()
	if err != nil {
		t.Fatal(err)
	}
	return d, root
}
