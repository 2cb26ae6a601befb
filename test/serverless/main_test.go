// Package serverless tests the AWS deployment under the platform's real
// behaviour, on MinIO and dynalite behind the dev stack's emulation of
// DynamoDB Streams, TTL and SQS: every request may reach another function
// instance (separate service, ledger and store values: no lock or cache is
// shared), DynamoDB's TTL deletes an expired record only some time after its
// expiry, and the stream's event source mapping retries, bisects and gives
// up. Each of issue 11's seven scenarios, and the re-drive, is a test here.
//
// The tests share one emulated platform and one clock, which they only move
// forward; each has its own bucket and table, and they do not run in
// parallel.
package serverless

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/devstack/localaws"
	"github.com/flowgate/flowgate/internal/devstack/platform"
	"github.com/flowgate/flowgate/internal/testkit/awstest"
)

var (
	// plat is the emulated platform; clock its and every ledger's clock.
	plat  *platform.Platform
	clock = &awstest.Clock{}
)

// ttlDelay is how long after its expiry the emulated TTL deletes a record
// (AWS: typically within days). Tests sweep by hand (plat.Front.SweepTTL).
const ttlDelay = 2 * time.Hour

func TestMain(m *testing.M) { os.Exit(localaws.RunTests(withPlatform{m})) }

type withPlatform struct{ m *testing.M }

func (w withPlatform) Run() int {
	p, err := platform.Start(context.Background(), platform.Options{
		Dynalite: localaws.Current().DynamoDBEndpoint, Now: clock.Now,
		TTLDelay: ttlDelay, TTLInterval: -1,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: the emulated platform could not start:", err)
		return 1
	}
	defer p.Stop()
	// The SDK of every instance reaches DynamoDB, its stream and SQS
	// through the platform, as the functions reach AWS's.
	p.SetEnv()
	plat = p
	return w.m.Run()
}
