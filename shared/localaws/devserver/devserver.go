// Package devserver is `make dev`: the upload API on the AWS code path,
// against MinIO and dynalite on this machine, with no Docker and no AWS
// account. It is what `sam local start-api` would give, plus the stream:
//
//   - MinIO and dynalite start (installed once, see package localaws) on
//     FLOWGATE_MINIO_ADDR (127.0.0.1:9000) and FLOWGATE_DYNALITE_ADDR
//     (127.0.0.1:4567), and stop when the server stops;
//   - requests to /upload and /upload/status become API Gateway REST proxy
//     events (binary bodies base64, the 6 MB payload limit enforced) handed
//     to the upload function's handler: the S3 chunk store, the DynamoDB
//     ledger and the same net/http handler as on AWS;
//   - the ready -> assemble step runs through the assembler function's
//     stream handler, fed by polling the ledger (dynalite has no streams);
//   - completion events go to the log (FLOWGATE_EVENT_BUS empty) and the
//     demo page is served from FLOWGATE_WEB_DIR (./web).
//
// FLOWGATE_ADDR (127.0.0.1:8080) is where it listens; FLOWGATE_BUCKET and
// FLOWGATE_TABLE default to flowgate-dev. Everything else is as on AWS.
package devserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"github.com/flowgate/flowgate/internal/devstack/apigw"
	"github.com/flowgate/flowgate/shared/awsdeploy"
	"github.com/flowgate/flowgate/shared/localaws"
	"github.com/flowgate/flowgate/shared/streamassemble"
)

// Run serves until ctx is done. Startup information (endpoints, bucket,
// table, credentials) goes to out.
func Run(ctx context.Context, getenv func(string) string, out io.Writer, log *slog.Logger) error {
	get := func(name, def string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return def
	}
	servers, err := localaws.Start(ctx, localaws.Options{
		MinIOAddr:    get("FLOWGATE_MINIO_ADDR", "127.0.0.1:9000"),
		DynaliteAddr: get("FLOWGATE_DYNALITE_ADDR", "127.0.0.1:4567"),
		Log:          out,
	})
	if err != nil {
		return err
	}
	defer servers.Stop()
	// The SDK reads the endpoints and credentials from the environment, as
	// it does on AWS.
	servers.SetEnv()

	defaults := map[string]string{"FLOWGATE_BUCKET": "flowgate-dev", "FLOWGATE_TABLE": "flowgate-dev"}
	env := func(name string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return defaults[name]
	}
	cfg, err := awsdeploy.Load(env)
	if err != nil {
		return err
	}
	d, err := awsdeploy.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	setup, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = d.CreateResources(setup)
	cancel()
	if err != nil {
		return err
	}

	assembler := d.StreamHandler()
	poller := &streamassemble.Poller{Handler: assembler, Ledger: d.Ledger, Interval: 500 * time.Millisecond}

	api := apigw.APIGateway(httpadapter.New(d.Handler()).ProxyWithContext)
	mux := http.NewServeMux()
	mux.Handle("/upload", api)
	mux.Handle("/upload/status", api)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`+"\n")
	})
	if dir := get("FLOWGATE_WEB_DIR", "./web"); dir != "" {
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			mux.Handle("/", http.FileServer(http.Dir(dir)))
		}
	}

	ln, err := net.Listen("tcp", get("FLOWGATE_ADDR", "127.0.0.1:8080"))
	if err != nil {
		return err
	}
	fmt.Fprintf(out, `flowgate dev: the AWS code path against local servers
  upload API   http://%s/upload   (API Gateway REST proxy emulated, Lambda handler inside)
  S3 (MinIO)   %s   bucket %s   access key %s   secret key %s
  DynamoDB     %s   table %s   (dynalite)
  CA bundle    %s   (MinIO serves TLS; AWS_CA_BUNDLE points the SDK at it)
  events       logged (set FLOWGATE_EVENT_BUS to send them to EventBridge)
Ctrl-C stops the server, MinIO and dynalite.
`, ln.Addr(), servers.S3Endpoint, cfg.Bucket, localaws.AccessKey, localaws.SecretKey,
		servers.DynamoDBEndpoint, cfg.Table, servers.CABundle)

	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	log.Info("flowgate dev listening", "url", "http://"+ln.Addr().String()+"/",
		"s3", servers.S3Endpoint, "bucket", cfg.Bucket, "dynamodb", servers.DynamoDBEndpoint, "table", cfg.Table)
	bg, stopBG := context.WithCancel(context.Background())
	polled := make(chan struct{})
	go func() { defer close(polled); poller.Run(bg) }()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err = <-errc:
	case <-ctx.Done():
		shut, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = srv.Shutdown(shut)
		cancel()
	}
	stopBG()
	<-polled
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
