// Package devserver is `make dev`: the serverless deployment running on this
// machine as the platform runs it, with no Docker and no AWS account.
//
//   - MinIO (S3) and dynalite start on FLOWGATE_MINIO_ADDR (127.0.0.1:9000)
//     and FLOWGATE_DYNALITE_ADDR (127.0.0.1:4567); DynamoDB is reached
//     through the emulated platform (package platform) on
//     FLOWGATE_DEV_DYNAMODB_ADDR (127.0.0.1:4568): the ledger table has its
//     stream, and TTL deletes an expired record FLOWGATE_DEV_TTL_DELAY (10m)
//     after its expiry, readable until then, as on AWS.
//   - The upload function runs as FLOWGATE_DEV_INSTANCES (3) independent
//     instances, each its release-built bootstrap under its own Lambda
//     Runtime Interface Emulator (package lambdarie); API Gateway's REST
//     API (package apigw) sends every request to a random idle one, so two
//     chunks of one file rarely meet the same process.
//   - The assembler is fed by Lambda's event source mapping (package esm),
//     configured from template.yaml's own AssembleFunction event: at least
//     once (a batch is delivered again with probability
//     FLOWGATE_DEV_DUPLICATES, 0.1), retries with bisection, giving up after
//     the template's limits to an SQS queue (package sqslocal); its batches
//     run in parallel on FLOWGATE_DEV_ASSEMBLERS (3) instances.
//   - The re-drive function runs every FLOWGATE_DEV_REDRIVE_INTERVAL (1m;
//     the template says 5 minutes) with that queue as its
//     FLOWGATE_FAILURE_QUEUE.
//   - With FLOWGATE_DATA_PATH=direct, browsers PUT chunks into MinIO with
//     URLs the upload function signs, through a plain-HTTP door to it on
//     FLOWGATE_DEV_S3_DOOR_ADDR (127.0.0.1:9001); MinIO's notifications of
//     those objects (its webhook target, with a queue directory: at least
//     once) are turned into S3's and delivered to the counting function's
//     instances as Lambda's asynchronous invocations (two retries, then an
//     SQS queue the re-drive replays); FLOWGATE_DEV_DROP_NOTIFICATIONS drops
//     a share of them, as if S3 had never sent them (package s3notify).
//   - The page is served from FLOWGATE_WEB_DIR (./web), the API at /upload,
//     /upload/status, /upload/config and /upload/urls on FLOWGATE_ADDR
//     (127.0.0.1:8080); GET /devstack/stats tells what each part did (JSON).
//
// Every other FLOWGATE_* variable configures the functions as on AWS;
// FLOWGATE_BUCKET and FLOWGATE_TABLE default to flowgate-dev. Everything
// listens on 127.0.0.1 and stops when the server stops.
package devserver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/flowgate/flowgate/internal/devstack/lambdarie"
	"github.com/flowgate/flowgate/internal/devstack/localaws"
	"github.com/flowgate/flowgate/internal/proc"
)

// Run serves until ctx is done. Startup information (endpoints, bucket,
// table, credentials) goes to out, the functions' logs to logs.
func Run(ctx context.Context, environ []string, out, logs io.Writer, log *slog.Logger) error {
	getenv := func(k string) string {
		for i := len(environ) - 1; i >= 0; i-- {
			if name, v, ok := cutEnv(environ[i]); ok && name == k {
				return v
			}
		}
		return ""
	}
	settings, err := LoadSettings(getenv)
	if err != nil {
		return err
	}
	// Listen first: a port taken is found before minutes of start-up.
	ln, err := net.Listen("tcp", settings.Addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	defer lambdarie.RemoveBootstraps()
	stack, err := Start(ctx, Options{Settings: settings, Environ: environ, Output: logs, Log: log})
	if err != nil {
		return err
	}
	defer stack.Stop()

	fmt.Fprintf(out, `flowgate dev: the serverless deployment on this machine
  upload API   http://%s/upload   (API Gateway REST proxy emulated; %d upload function instances under the Lambda emulator)
  S3 (MinIO)   %s   bucket %s   access key %s   secret key %s
  DynamoDB     %s   table %s   (dynalite behind the emulated stream and TTL; expired records removed %v after expiry)
  assembler    %d instances fed by the ledger's stream (template.yaml's event source mapping); given-up batches to SQS %s
  re-drive     every %v
  CA bundle    %s   (MinIO serves TLS; AWS_CA_BUNDLE points the SDK at it)
  events       logged (set FLOWGATE_EVENT_BUS to send them to EventBridge)
Ctrl-C stops the server, the functions, MinIO and dynalite.
`, ln.Addr(), settings.Instances, stack.Servers.S3Endpoint, stack.Config.Bucket, localaws.AccessKey, localaws.SecretKey,
		stack.Platform.DynamoDBEndpoint, stack.Config.Table, settings.TTLDelay,
		settings.Assemblers, stack.FailureQueueURL, settings.RedriveInterval, stack.Servers.CABundle)
	if door := stack.DoorURL(); door != "" {
		fmt.Fprintf(out, `data path    direct: browsers PUT chunks into MinIO through %s (plain HTTP); MinIO's notifications
             start %d counting function instances (dropped on purpose: %g)
`, door, countInstances, settings.DropNotifications)
	}

	srv := &http.Server{Handler: stack.Mux(settings.WebDir), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	log.Info("flowgate dev listening", "url", "http://"+ln.Addr().String()+"/",
		"s3", stack.Servers.S3Endpoint, "bucket", stack.Config.Bucket, "dynamodb", stack.Platform.DynamoDBEndpoint,
		"table", stack.Config.Table, "instances", settings.Instances)
	return proc.Serve(ctx, srv, ln)
}

// Mux serves the API, the stack's stats, a health check and, if webDir is
// a directory, the page.
func (s *Stack) Mux(webDir string) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/upload", s.API)
	mux.Handle("/upload/status", s.API)
	mux.Handle("/upload/config", s.API)
	mux.Handle("/upload/urls", s.API)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`+"\n")
	})
	mux.HandleFunc("GET /devstack/stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(s.Stats())
	})
	if webDir != "" {
		if fi, err := os.Stat(webDir); err == nil && fi.IsDir() {
			mux.Handle("/", http.FileServer(http.Dir(webDir)))
		}
	}
	return mux
}

func cutEnv(kv string) (string, string, bool) {
	for i := 0; i < len(kv); i++ {
		if kv[i] == '=' {
			return kv[:i], kv[i+1:], true
		}
	}
	return "", "", false
}
