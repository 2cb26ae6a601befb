// Package localserver is the embedded deployment: one process serving the
// upload API and the demo page, with chunks in a directory, the ledger in a
// bbolt file, in-process assembler workers and a sweeper for abandoned
// uploads. It is what `make run` starts.
package localserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/flowgate/flowgate/shared/auth"
	"github.com/flowgate/flowgate/shared/boltledger"
	"github.com/flowgate/flowgate/shared/config"
	"github.com/flowgate/flowgate/shared/dirstore"
	"github.com/flowgate/flowgate/shared/httpapi"
	"github.com/flowgate/flowgate/shared/logctx"
	"github.com/flowgate/flowgate/shared/metrics"
	"github.com/flowgate/flowgate/shared/publish"
	"github.com/flowgate/flowgate/shared/upload"
)

// Server is a configured embedded deployment.
type Server struct {
	cfg     config.Local
	log     *slog.Logger
	ledger  *boltledger.Ledger
	store   *dirstore.Store
	service *upload.Service
	workers *Workers
	handler http.Handler
	gate    *gate
	metrics *metrics.Metrics
	uploads *httpapi.Uploads
	banner  io.Writer
}

// Option adds to what New builds from the configuration.
type Option func(*options)

type options struct {
	verifier *auth.Verifier
	banner   io.Writer
}

// WithVerifier checks callers' bearer tokens with v; it is required when
// cfg.Auth is config.AuthJWT (see LoadVerifier).
func WithVerifier(v *auth.Verifier) Option { return func(o *options) { o.verifier = v } }

// WithBanner has Serve print, once it listens, a few lines for the person
// who started it: where the page is, where files land, who may upload.
func WithBanner(w io.Writer) Option { return func(o *options) { o.banner = w } }

// LoadVerifier builds the token verifier that cfg.Auth asks for, from the
// FLOWGATE_JWT_* settings shared/auth reads through getenv; nil when
// cfg.Auth is config.AuthNone.
func LoadVerifier(cfg config.Local, getenv func(string) string) (*auth.Verifier, error) {
	if cfg.Auth != config.AuthJWT {
		return nil, nil
	}
	ac, err := auth.Load(getenv)
	if err != nil {
		return nil, err
	}
	return auth.New(ac)
}

// New opens the data directory and builds every part; Run serves.
func New(cfg config.Local, log *slog.Logger, opts ...Option) (*Server, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	namespace := httpapi.HeaderNamespace(cfg.NamespaceHeader)
	switch cfg.Auth {
	case config.AuthJWT:
		if o.verifier == nil {
			return nil, errors.New("localserver: FLOWGATE_AUTH=jwt needs a token verifier (WithVerifier)")
		}
		if cfg.NamespaceHeader != "" {
			return nil, errors.New("localserver: FLOWGATE_AUTH=jwt and FLOWGATE_NAMESPACE_HEADER exclude each other")
		}
		v := o.verifier
		namespace = httpapi.BearerNamespace(func(token string) (string, error) {
			id, err := v.Verify(token)
			return id.Subject, err
		})
	case config.AuthNone, "":
	default:
		return nil, errors.New("localserver: unknown auth mode " + cfg.Auth)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, err
	}
	store, err := dirstore.New(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	store.Disposition = cfg.Disposition
	ledger, err := boltledger.Open(filepath.Join(cfg.DataDir, "ledger.db"), cfg.Expiry)
	if err != nil {
		return nil, err
	}
	var pub upload.Publisher = scopedLog{log}
	if cfg.WebhookURL != "" {
		pub = publish.All{pub, publish.Webhook{URL: cfg.WebhookURL, Secret: cfg.WebhookSecret}}
	}
	m := metrics.New()
	s := &Server{cfg: cfg, log: log, ledger: ledger, store: store, metrics: m, banner: o.banner,
		uploads: &httpapi.Uploads{Max: cfg.MaxUploadsPerNamespace}}
	m.SetInProgress(s.uploads.InProgress)
	s.workers = NewWorkers(&upload.Pipeline{
		Ledger:    ledger,
		Assembler: store,
		Publisher: pub,
		Owner:     "local-" + randomID(),
		// Local assembly is a rename; a minute is ample and only matters if
		// a worker hangs.
		Lease:   time.Minute,
		Log:     log,
		Metrics: m,
	}, cfg.Workers, log)
	s.service = &upload.Service{Store: store, Ledger: ledger, OnReady: s.workers.Enqueue, Admission: s.uploads}
	api := &httpapi.Handler{
		Service:       s.service,
		Limits:        cfg.Limits,
		CORS:          httpapi.CORS{AllowedOrigins: cfg.AllowedOrigins},
		Namespace:     namespace,
		Log:           log,
		Metrics:       m,
		MaxFieldBytes: cfg.MaxFieldBytes,
		MaxParts:      cfg.MaxParts,
		Allowed:       cfg.AllowedTypes,
	}
	mux := http.NewServeMux()
	mux.Handle("/upload", api)
	mux.Handle("/upload/status", api)
	mux.Handle("/upload/config", api) // says the data path is proxy, for a page made for both
	mux.Handle("/upload/urls", api)   // refused: no direct data path here
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok":true}` + "\n"))
	})
	if cfg.Metrics {
		mux.Handle("GET /metrics", m.Handler())
	}
	if cfg.WebDir != "" {
		mux.Handle("/", staticOnly(http.FileServer(http.Dir(cfg.WebDir))))
	}
	s.gate = &gate{next: mux, bodyIdle: cfg.BodyTimeout, maxHeaderBytes: cfg.MaxHeaderBytes, metrics: m}
	s.handler = s.gate
	return s, nil
}

// Handler is the server's HTTP handler, for tests that serve it themselves.
func (s *Server) Handler() http.Handler { return s.handler }

// Run serves until ctx is done, then shuts down in order: stop taking
// requests and let those in flight finish, stop the workers, close the ledger.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		s.ledger.Close()
		return err
	}
	return s.Serve(ctx, ln)
}

// Serve is Run on a listener the caller opened.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	defer s.ledger.Close()
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    s.cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	bg, stopBG := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.workers.Run(bg) }()
	go func() { defer wg.Done(); s.sweep(bg) }()
	// Work left by the last process: uploads that became ready, were being
	// assembled, or were assembled without their event going out. The
	// sweeper looks again every interval, in case anything slipped through.
	s.enqueuePending(ctx)
	// Chunks the last process stored under a generation that no record
	// has: requests that died with it, before their first chunk was
	// counted. This process is the only writer of the data directory (the
	// ledger's file lock), so nothing will ever count them.
	if n, err := s.discardOrphans(ctx, time.Now()); err != nil {
		s.log.Warn("discarding what the last process left staged", "err", err)
	} else if n > 0 {
		s.log.Info("discarded chunks of requests that died with the last process", "generations", n)
	}

	s.log.Info("flowgate listening", "url", "http://"+ln.Addr().String()+"/", "dataDir", s.cfg.DataDir,
		"auth", s.authMode(), "maxUploadsPerNamespace", s.cfg.MaxUploadsPerNamespace, "metrics", s.cfg.Metrics)
	if s.banner != nil {
		s.printBanner(ln.Addr().String())
	}
	var err error
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err = <-errc:
	case <-ctx.Done():
		err = s.shutdown(srv)
	}
	stopBG()
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// authMode says, for the start-up line, how callers are told apart.
// printBanner says what a person who ran `make run` wants to know first.
func (s *Server) printBanner(addr string) {
	page := ""
	if s.cfg.WebDir != "" {
		page = fmt.Sprintf("  demo page    http://%s/\n", addr)
	}
	fmt.Fprintf(s.banner, `
flowgate is running
%s  upload API   http://%s/upload   (flow.js or Resumable.js target)
  data         %s   finished files land in %s
  who uploads  %s
Stop it at any moment (Ctrl-C) and start it again: uploads resume where they were.

`, page, addr, s.cfg.DataDir, filepath.Join(s.cfg.DataDir, "files", "<upload>", "<name>"), s.authMode())
}

func (s *Server) authMode() string {
	switch {
	case s.cfg.Auth == config.AuthJWT:
		return "jwt (bearer token subject)"
	case s.cfg.NamespaceHeader != "":
		return "header " + s.cfg.NamespaceHeader + " (trusted proxy)"
	}
	return "none (one public namespace shared by every caller)"
}

// shutdown answers new requests with 503 while those in flight finish, for
// at most ShutdownTimeout; chunks still arriving after that are cut off and
// never counted, so their clients send them again after the restart.
func (s *Server) shutdown(srv *http.Server) error {
	s.log.Info("shutting down", "timeout", s.cfg.ShutdownTimeout.String())
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := s.gate.drain(ctx); err != nil {
		s.log.Warn("requests still in flight at the shutdown deadline; closing them")
		return srv.Close()
	}
	// Nothing in flight: this only closes the listener and idle connections.
	return srv.Shutdown(ctx)
}

// sweep removes abandoned uploads every SweepInterval: records idle longer
// than Expiry with their staged bytes, and staged bytes no record points to.
func (s *Server) sweep(ctx context.Context) {
	t := time.NewTicker(s.cfg.SweepInterval)
	defer t.Stop()
	for {
		s.enqueuePending(ctx)
		if n, err := s.SweepOnce(ctx, time.Now().Add(-s.cfg.Expiry)); err != nil {
			s.log.Error("sweep", "err", err)
		} else if n > 0 {
			s.log.Info("swept expired uploads", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// enqueuePending hands every upload the pipeline still owes work to the
// workers, which ignore what they already have queued.
func (s *Server) enqueuePending(ctx context.Context) {
	pending, err := s.ledger.Pending(ctx)
	if err != nil {
		s.log.Error("listing pending uploads", "err", err)
		return
	}
	for _, rec := range pending {
		s.workers.Enqueue(rec.Key)
	}
}

// SweepOnce expires everything idle since before and reports how many
// uploads it removed.
func (s *Server) SweepOnce(ctx context.Context, before time.Time) (int, error) {
	idle, err := s.ledger.Idle(ctx, before)
	if err != nil {
		return 0, err
	}
	removed := 0
	var errs []error
	for _, rec := range idle {
		gone, err := s.service.Expire(ctx, rec, before)
		if err != nil {
			errs = append(errs, err)
		}
		if gone {
			removed++
		}
	}
	orphans, err := s.discardOrphans(ctx, before)
	return removed + orphans, errors.Join(append(errs, err)...)
}

// discardOrphans removes staged generations not written since before that
// no ledger record has.
func (s *Server) discardOrphans(ctx context.Context, before time.Time) (int, error) {
	staged, err := s.store.Staged(ctx)
	if err != nil {
		return 0, err
	}
	removed := 0
	var errs []error
	for _, st := range staged {
		if !st.Modified.Before(before) {
			continue
		}
		gone, err := s.service.DiscardOrphan(ctx, st.Key, st.Generation)
		if err != nil {
			errs = append(errs, err)
		}
		if gone {
			removed++
		}
	}
	return removed, errors.Join(errs...)
}

// scopedLog logs completion events through the log scope of the
// pipeline's context, so the line carries the upload key.
type scopedLog struct{ log *slog.Logger }

func (l scopedLog) Publish(ctx context.Context, ev upload.Event) error {
	return publish.Log{Logger: logctx.From(ctx, l.log)}.Publish(ctx, ev)
}

func randomID() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// staticOnly lets GET and HEAD through to the page's files.
func staticOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h.ServeHTTP(w, r)
	})
}
