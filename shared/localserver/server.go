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
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/flowgate/flowgate/shared/boltledger"
	"github.com/flowgate/flowgate/shared/config"
	"github.com/flowgate/flowgate/shared/dirstore"
	"github.com/flowgate/flowgate/shared/httpapi"
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
}

// New opens the data directory and builds every part; Run serves.
func New(cfg config.Local, log *slog.Logger) (*Server, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, err
	}
	store, err := dirstore.New(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	ledger, err := boltledger.Open(filepath.Join(cfg.DataDir, "ledger.db"))
	if err != nil {
		return nil, err
	}
	var pub upload.Publisher = publish.Log{Logger: log}
	if cfg.WebhookURL != "" {
		pub = publish.All{pub, publish.Webhook{URL: cfg.WebhookURL, Secret: cfg.WebhookSecret}}
	}
	s := &Server{cfg: cfg, log: log, ledger: ledger, store: store}
	s.workers = NewWorkers(&upload.Pipeline{
		Ledger:    ledger,
		Assembler: store,
		Publisher: pub,
		Owner:     "local-" + randomID(),
		// Local assembly is a rename; a minute is ample and only matters if
		// a worker hangs.
		Lease: time.Minute,
		Log:   log,
	}, cfg.Workers, log)
	s.service = &upload.Service{Store: store, Ledger: ledger, OnReady: s.workers.Enqueue}
	api := &httpapi.Handler{
		Service:   s.service,
		Limits:    cfg.Limits,
		CORS:      httpapi.CORS{AllowedOrigins: cfg.AllowedOrigins},
		Namespace: httpapi.HeaderNamespace(cfg.NamespaceHeader),
		Log:       log,
	}
	mux := http.NewServeMux()
	mux.Handle("/upload", api)
	mux.Handle("/upload/status", api)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok":true}` + "\n"))
	})
	if cfg.WebDir != "" {
		mux.Handle("/", staticOnly(http.FileServer(http.Dir(cfg.WebDir))))
	}
	s.gate = &gate{next: mux, bodyIdle: cfg.BodyTimeout}
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
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	bg, stopBG := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.workers.Run(bg) }()
	go func() { defer wg.Done(); s.sweep(bg) }()
	// Work left by the last process: uploads that became ready, were being
	// assembled, or were assembled without their event going out.
	if pending, err := s.ledger.Pending(ctx); err != nil {
		s.log.Error("listing pending uploads", "err", err)
	} else {
		for _, rec := range pending {
			s.workers.Enqueue(rec.Key)
		}
	}

	s.log.Info("flowgate listening", "url", "http://"+ln.Addr().String()+"/", "dataDir", s.cfg.DataDir)
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
	staged, err := s.store.Staged(ctx)
	if err != nil {
		return removed, errors.Join(append(errs, err)...)
	}
	for _, st := range staged {
		if !st.Modified.Before(before) {
			continue
		}
		gone, err := s.service.DiscardOrphan(ctx, st.Key)
		if err != nil {
			errs = append(errs, err)
		}
		if gone {
			removed++
		}
	}
	return removed, errors.Join(errs...)
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
