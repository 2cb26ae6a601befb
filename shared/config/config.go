// Package config reads flowgate's settings from FLOWGATE_* environment
// variables. Every variable is listed, with its default, in the README.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/flowgate/flowgate/shared/protocol"
)

// Local is the embedded server's configuration.
type Local struct {
	Addr    string // FLOWGATE_ADDR
	DataDir string // FLOWGATE_DATA_DIR
	WebDir  string // FLOWGATE_WEB_DIR; empty serves no page
	Common
	Expiry          time.Duration // FLOWGATE_EXPIRY: idle uploads are removed after this
	SweepInterval   time.Duration // FLOWGATE_SWEEP_INTERVAL
	Workers         int           // FLOWGATE_ASSEMBLY_WORKERS
	WebhookURL      string        // FLOWGATE_WEBHOOK_URL
	WebhookSecret   string        // FLOWGATE_WEBHOOK_SECRET
	ShutdownTimeout time.Duration // FLOWGATE_SHUTDOWN_TIMEOUT
	BodyTimeout     time.Duration // FLOWGATE_BODY_TIMEOUT: longest stall while reading a request body
}

// Common is what every deployment reads: limits, CORS, identity, logging.
type Common struct {
	Limits          protocol.Limits // FLOWGATE_MAX_FILE_SIZE, FLOWGATE_MAX_CHUNK_SIZE, FLOWGATE_MAX_CHUNKS
	AllowedOrigins  []string        // FLOWGATE_ALLOWED_ORIGINS, comma-separated; "*" is any
	NamespaceHeader string          // FLOWGATE_NAMESPACE_HEADER: trust this header for the namespace
	LogLevel        slog.Level      // FLOWGATE_LOG_LEVEL: debug, info, warn, error
}

// LoadLocal reads the embedded server's configuration through getenv
// (os.Getenv in production, a map in tests).
func LoadLocal(getenv func(string) string) (Local, error) {
	e := NewEnv(getenv)
	c := Local{
		Addr:            e.String("FLOWGATE_ADDR", "127.0.0.1:8080"),
		DataDir:         e.String("FLOWGATE_DATA_DIR", "./data"),
		WebDir:          e.String("FLOWGATE_WEB_DIR", "./web"),
		Common:          e.Common(64 << 20),
		Expiry:          e.Duration("FLOWGATE_EXPIRY", 24*time.Hour),
		SweepInterval:   e.Duration("FLOWGATE_SWEEP_INTERVAL", 10*time.Minute),
		Workers:         e.Int("FLOWGATE_ASSEMBLY_WORKERS", 2),
		WebhookURL:      e.String("FLOWGATE_WEBHOOK_URL", ""),
		WebhookSecret:   e.String("FLOWGATE_WEBHOOK_SECRET", ""),
		ShutdownTimeout: e.Duration("FLOWGATE_SHUTDOWN_TIMEOUT", 30*time.Second),
		BodyTimeout:     e.Duration("FLOWGATE_BODY_TIMEOUT", 30*time.Second),
	}
	if c.Workers < 1 {
		e.Fail("FLOWGATE_ASSEMBLY_WORKERS must be at least 1")
	}
	if c.Expiry <= 0 || c.SweepInterval <= 0 {
		e.Fail("FLOWGATE_EXPIRY and FLOWGATE_SWEEP_INTERVAL must be positive")
	}
	if c.WebhookURL != "" && !strings.HasPrefix(c.WebhookURL, "http://") && !strings.HasPrefix(c.WebhookURL, "https://") {
		e.Fail("FLOWGATE_WEBHOOK_URL must be an http:// or https:// URL")
	}
	return c, e.Err()
}

// Common reads the settings every deployment shares. maxChunk is the
// deployment's default chunk limit: a Lambda request caps it near 4.5 MiB.
func (e *Env) Common(maxChunk int64) Common {
	c := Common{
		Limits: protocol.Limits{
			MaxFileSize:  e.Size("FLOWGATE_MAX_FILE_SIZE", 10<<30),
			MaxChunkSize: e.Size("FLOWGATE_MAX_CHUNK_SIZE", maxChunk),
			MaxChunks:    e.Int("FLOWGATE_MAX_CHUNKS", 100_000),
		},
		AllowedOrigins:  e.List("FLOWGATE_ALLOWED_ORIGINS", []string{"*"}),
		NamespaceHeader: e.String("FLOWGATE_NAMESPACE_HEADER", ""),
		LogLevel:        e.Level("FLOWGATE_LOG_LEVEL", slog.LevelInfo),
	}
	if c.Limits.MaxChunkSize < 1 || c.Limits.MaxChunks < 1 || c.Limits.MaxFileSize < 0 {
		e.Fail("size and chunk limits must be positive")
	}
	return c
}

// Env reads variables and collects every mistake, so a bad configuration is
// reported whole at start rather than one variable per attempt. Each
// deployment's loader (LoadLocal here, awsdeploy.Load for AWS) uses one.
type Env struct {
	get  func(string) string
	errs []error
}

// NewEnv reads through getenv: os.Getenv, or a map's lookup in tests.
func NewEnv(getenv func(string) string) *Env { return &Env{get: getenv} }

// Fail records a mistake found by the caller's own checks.
func (e *Env) Fail(format string, args ...any) { e.errs = append(e.errs, fmt.Errorf(format, args...)) }

// Err is every mistake found, or nil.
func (e *Env) Err() error { return errors.Join(e.errs...) }

func (e *Env) String(name, def string) string {
	if v := strings.TrimSpace(e.get(name)); v != "" {
		return v
	}
	return def
}

func (e *Env) Int(name string, def int) int {
	v := e.String(name, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		e.Fail("%s: %q is not a whole number", name, v)
	}
	return n
}

func (e *Env) Duration(name string, def time.Duration) time.Duration {
	v := e.String(name, "")
	if v == "" {
		return def
	}
	d, err := ParseDuration(v)
	if err != nil {
		e.Fail("%s: %q is not a duration such as 90s, 30m, 24h or 7d", name, v)
	}
	return d
}

// ParseDuration reads a Go duration ("90s", "1h30m") or a whole number of
// days ("7d"), which is how the SAM template passes its expiry parameter.
func ParseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil || n < 0 || n > 100_000 {
			return 0, fmt.Errorf("%q is not a whole number of days", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

func (e *Env) List(name string, def []string) []string {
	v := e.String(name, "")
	if v == "" {
		return def
	}
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func (e *Env) Level(name string, def slog.Level) slog.Level {
	v := e.String(name, "")
	if v == "" {
		return def
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(v)); err != nil {
		e.Fail("%s: %q is not one of debug, info, warn, error", name, v)
	}
	return l
}

// size reads a byte count: plain bytes or with a unit (KiB, MiB, GiB, TiB,
// or KB, MB, GB, TB in powers of ten).
func (e *Env) Size(name string, def int64) int64 {
	v := e.String(name, "")
	if v == "" {
		return def
	}
	n, err := ParseSize(v)
	if err != nil {
		e.Fail("%s: %v", name, err)
	}
	return n
}

// ParseSize reads "4MiB", "10 GB" or "1048576".
func ParseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
	}
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range units {
		if rest, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size such as 4MiB or 10GiB", s)
	}
	return n * mult, nil
}
