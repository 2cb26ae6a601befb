package localaws

import (
	"context"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

func TestStartAndStop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	s, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if !strings.HasPrefix(s.S3Endpoint, "https://127.0.0.1:") || !strings.HasPrefix(s.DynamoDBEndpoint, "http://127.0.0.1:") {
		t.Fatalf("endpoints %s %s: both must be on 127.0.0.1", s.S3Endpoint, s.DynamoDBEndpoint)
	}
	c, err := tlsClient(s.CABundle)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Get(s.S3Endpoint + "/minio/health/live")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("MinIO health: %v %v", resp, err)
	}
	resp.Body.Close()
	env := strings.Join(s.Env(), "\n")
	for _, want := range []string{"AWS_ENDPOINT_URL_S3=" + s.S3Endpoint, "AWS_ENDPOINT_URL_DYNAMODB=" + s.DynamoDBEndpoint, "AWS_CA_BUNDLE=" + s.CABundle} {
		if !strings.Contains(env, want) {
			t.Errorf("Env lacks %s", want)
		}
	}

	s.Stop()
	for _, u := range []string{s.S3Endpoint, s.DynamoDBEndpoint} {
		host := strings.TrimPrefix(strings.TrimPrefix(u, "https://"), "http://")
		if conn, err := net.DialTimeout("tcp", host, time.Second); err == nil {
			conn.Close()
			t.Errorf("%s still answers after Stop", u)
		}
	}
}

// A server that cannot start is an error that says which and why, never a
// silent skip.
func TestStartFailsClearly(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	s, err := Start(ctx, Options{DynaliteAddr: busy.Addr().String(), StartTimeout: 20 * time.Second})
	if err == nil {
		s.Stop()
		t.Fatal("started dynalite on a port already taken")
	}
	if !strings.Contains(err.Error(), "dynalite did not start on "+busy.Addr().String()) {
		t.Fatalf("error does not say what failed: %v", err)
	}
	t.Logf("the error a developer sees: %v", err)
}

// The Runtime Interface Emulator is installed once: a second call finds the
// binary in the cache and neither builds nor rewrites it. (Installing into
// an empty cache takes half a minute of CPU; every fresh machine's first
// `make test` does it through scripts/ensure-aws-servers.sh.)
func TestEnsureRIEIsIdempotent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	var log strings.Builder
	first, err := EnsureRIE(ctx, &log)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	fi, err := os.Stat(first)
	if err != nil {
		t.Fatal(err)
	}
	log.Reset()
	second, err := EnsureRIE(ctx, &log)
	if err != nil {
		t.Fatal(err)
	}
	fi2, err := os.Stat(second)
	if err != nil {
		t.Fatal(err)
	}
	if second != first || !fi2.ModTime().Equal(fi.ModTime()) || log.Len() != 0 {
		t.Errorf("second EnsureRIE: %s (first %s), modified %v -> %v, said %q", second, first, fi.ModTime(), fi2.ModTime(), log.String())
	}
	if !strings.Contains(first, RIEVersion) {
		t.Errorf("%s is not the pinned version's path", first)
	}
}
