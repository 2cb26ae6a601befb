package localaws

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/flowgate/flowgate/internal/proc"
)

// Credentials the local servers accept. MinIO's defaults, so a developer's
// habits (and `mc alias set`) work; dynalite accepts any.
const (
	AccessKey = "minioadmin"
	SecretKey = "minioadmin"
	Region    = "us-east-1"
	// KMSKeyID names MinIO's one static KMS key (MINIO_KMS_SECRET_KEY): an
	// SSE-KMS request naming it works as it does on AWS with a key's ARN.
	KMSKeyID = "flowgate-test-key"
	// kmsKey is that key's secret: a fixed throwaway, for tests only.
	kmsKey = "Zmxvd2dhdGUgdGVzdCBrZXksIG5vdCBhIHNlY3JldCE="
)

// Options says where to run the servers.
type Options struct {
	// MinIOAddr and DynaliteAddr are host:port to listen on; empty picks a
	// free port on 127.0.0.1.
	MinIOAddr    string
	DynaliteAddr string
	// DataDir keeps MinIO's objects; empty uses a temporary directory that
	// Stop removes. dynalite always keeps its tables in memory.
	DataDir string
	// Log receives install progress and, on failure, the servers' output.
	// Nil means os.Stderr.
	Log io.Writer
	// StartTimeout bounds the wait for each server to answer; 0 means 60s.
	StartTimeout time.Duration
	// MinIOEnv is more of MinIO's environment ("KEY=value" each): its
	// notification targets, its CORS origins.
	MinIOEnv []string
}

// Servers are running MinIO and dynalite.
type Servers struct {
	S3Endpoint       string // https://127.0.0.1:port
	DynamoDBEndpoint string // http://127.0.0.1:port
	DataDir          string
	// CABundle is the PEM certificate MinIO serves (see tls.go).
	CABundle string

	procs  []*proc.Proc
	tmpDir string
}

// Env is the environment that points the AWS SDK at the servers: the SDK
// reads service endpoints and credentials from it, so the code under test
// runs exactly as it does on AWS.
func (s *Servers) Env() []string {
	return []string{
		"AWS_ENDPOINT_URL_S3=" + s.S3Endpoint,
		"AWS_ENDPOINT_URL_DYNAMODB=" + s.DynamoDBEndpoint,
		"AWS_ACCESS_KEY_ID=" + AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + SecretKey,
		"AWS_REGION=" + Region,
		"AWS_CA_BUNDLE=" + s.CABundle,
		// No instance metadata lookups (a slow timeout off EC2), no shared
		// profile from the developer's ~/.aws getting in the way.
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_PROFILE=",
		"AWS_SESSION_TOKEN=",
	}
}

// SetEnv applies Env to this process.
func (s *Servers) SetEnv() {
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		if v == "" {
			os.Unsetenv(k)
		} else {
			os.Setenv(k, v)
		}
	}
}

// Start installs (if needed) and starts both servers, and returns once both
// answer requests. The caller must call Stop.
func Start(ctx context.Context, opt Options) (_ *Servers, err error) {
	if opt.Log == nil {
		opt.Log = os.Stderr
	}
	if opt.StartTimeout == 0 {
		opt.StartTimeout = 60 * time.Second
	}
	minio, err := EnsureMinIO(ctx, opt.Log)
	if err != nil {
		return nil, err
	}
	dynalite, err := EnsureDynalite(ctx, opt.Log)
	if err != nil {
		return nil, err
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, errors.New("localaws: node is not installed; dynalite (the local DynamoDB) needs Node.js")
	}

	s := &Servers{}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()
	s.tmpDir, err = os.MkdirTemp("", "flowgate-localaws-")
	if err != nil {
		return nil, err
	}
	s.DataDir = opt.DataDir
	if s.DataDir == "" {
		s.DataDir = filepath.Join(s.tmpDir, "minio")
	}
	if err := os.MkdirAll(s.DataDir, 0o755); err != nil {
		return nil, err
	}
	certs := filepath.Join(s.tmpDir, "certs")
	if s.CABundle, err = writeCert(certs); err != nil {
		return nil, fmt.Errorf("localaws: make MinIO's TLS certificate: %w", err)
	}
	minioClient, err := tlsClient(s.CABundle)
	if err != nil {
		return nil, err
	}

	// A free port can be taken between finding it and the server binding it;
	// the server then exits at once, and we try another.
	for attempt := 1; ; attempt++ {
		addr, console, err := addrs(opt.MinIOAddr, 2)
		if err != nil {
			return nil, err
		}
		p, err := proc.Start(proc.Options{Name: "minio", Bin: minio, LogFile: filepath.Join(s.tmpDir, "minio.log"), Args: []string{
			"server", "--quiet", "--certs-dir", certs,
			"--address", addr, "--console-address", console, s.DataDir,
		}, Env: append([]string{
			"MINIO_ROOT_USER=" + AccessKey,
			"MINIO_ROOT_PASSWORD=" + SecretKey,
			"MINIO_BROWSER=off",
			"MINIO_UPDATE=off",
			"MINIO_CI_CD=1",
			"MINIO_KMS_SECRET_KEY=" + KMSKeyID + ":" + kmsKey,
		}, opt.MinIOEnv...)})
		if err != nil {
			return nil, err
		}
		url := "https://" + addr
		err = p.WaitReady(ctx, opt.StartTimeout, func() bool {
			resp, err := minioClient.Get(url + "/minio/health/live")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
		if err == nil {
			s.procs = append(s.procs, p)
			s.S3Endpoint = url
			break
		}
		p.Stop(stopGrace)
		if opt.MinIOAddr != "" || attempt == 3 {
			return nil, fmt.Errorf("localaws: MinIO did not start on %s: %w", addr, err)
		}
	}

	for attempt := 1; ; attempt++ {
		addr, _, err := addrs(opt.DynaliteAddr, 1)
		if err != nil {
			return nil, err
		}
		host, port, _ := net.SplitHostPort(addr)
		p, err := proc.Start(proc.Options{Name: "dynalite", Bin: node, LogFile: filepath.Join(s.tmpDir, "dynalite.log"), Args: []string{
			dynalite, "--host", host, "--port", port,
			// Tables are ACTIVE at once: tests create one per run.
			"--createTableMs", "0", "--deleteTableMs", "0", "--updateTableMs", "0",
		}})
		if err != nil {
			return nil, err
		}
		url := "http://" + addr
		c := &http.Client{Timeout: 2 * time.Second}
		err = p.WaitReady(ctx, opt.StartTimeout, func() bool {
			// Any DynamoDB-shaped answer (here, a complaint about the missing
			// signature) means it is serving.
			resp, err := c.Post(url, "application/x-amz-json-1.0", strings.NewReader("{}"))
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode > 0
		})
		if err == nil {
			s.procs = append(s.procs, p)
			s.DynamoDBEndpoint = url
			break
		}
		p.Stop(stopGrace)
		if opt.DynaliteAddr != "" || attempt == 3 {
			return nil, fmt.Errorf("localaws: dynalite did not start on %s: %w", addr, err)
		}
	}
	return s, nil
}

// stopGrace is how long a server may take to stop after SIGTERM.
const stopGrace = 5 * time.Second

// Stop ends both servers (their whole process groups) and removes the
// temporary data. It is safe to call more than once.
func (s *Servers) Stop() {
	for _, p := range s.procs {
		p.Stop(stopGrace)
	}
	s.procs = nil
	if s.tmpDir != "" {
		os.RemoveAll(s.tmpDir)
		s.tmpDir = ""
	}
}

// addrs returns want (or, if empty, a free 127.0.0.1 port) and, when n is 2,
// a second free port for the server's side listener.
func addrs(want string, n int) (string, string, error) {
	var got []string
	if want != "" {
		got = append(got, want)
	}
	for len(got) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", "", fmt.Errorf("localaws: no free port on 127.0.0.1: %w", err)
		}
		got = append(got, l.Addr().String())
		defer l.Close()
	}
	second := ""
	if len(got) > 1 {
		second = got[1]
	}
	return got[0], second, nil
}
