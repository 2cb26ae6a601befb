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
	e := env{get: getenv}
	c := Local{
		Addr:            e.str("FLOWGATE_ADDR", "127.0.0.1:8080"),
		DataDir:         e.str("FLOWGATE_DATA_DIR", "./data"),
		WebDir:          e.str("FLOWGATE_WEB_DIR", "./web"),
		Common:          e.common(64 << 20),
		Expiry:          e.duration("FLOWGATE_EXPIRY", 24*time.Hour),
		SweepInterval:   e.duration("FLOWGATE_SWEEP_INTERVAL", 10*time.Minute),
		Workers:         e.int("FLOWGATE_ASSEMBLY_WORKERS", 2),
		WebhookURL:      e.str("FLOWGATE_WEBHOOK_URL", ""),
		WebhookSecret:   e.str("FLOWGATE_WEBHOOK_SECRET", ""),
		ShutdownTimeout: e.duration("FLOWGATE_SHUTDOWN_TIMEOUT", 30*time.Second),
		BodyTimeout:     e.duration("FLOWGATE_BODY_TIMEOUT", 30*time.Second),
	}
	if c.Workers < 1 {
		e.fail("FLOWGATE_ASSEMBLY_WORKERS must be at least 1")
	}
	if c.Expiry <= 0 || c.SweepInterval <= 0 {
		e.fail("FLOWGATE_EXPIRY and FLOWGATE_SWEEP_INTERVAL must be positive")
	}
	if c.WebhookURL != "" && !strings.HasPrefix(c.WebhookURL, "http://") && !strings.HasPrefix(c.WebhookURL, "https://") {
		e.fail("FLOWGATE_WEBHOOK_URL must be an http:// or https:// URL")
	}
	return c, e.err()
}

// common reads the settings every deployment shares. maxChunk is the
// deployment's default chunk limit: a Lambda request caps it near 4.5 MiB.
func (e *env) common(maxChunk int64) Common {
	c := Common{
		Limits: protocol.Limits{
			MaxFileSize:  e.size("FLOWGATE_MAX_FILE_SIZE", 10<<30),
			MaxChunkSize: e.size("FLOWGATE_MAX_CHUNK_SIZE", maxChunk),
			MaxChunks:    e.int("FLOWGATE_MAX_CHUNKS", 100_000),
		},
		AllowedOrigins:  e.list("FLOWGATE_ALLOWED_ORIGINS", []string{"*"}),
		NamespaceHeader: e.str("FLOWGATE_NAMESPACE_HEADER", ""),
		LogLevel:        e.level("FLOWGATE_LOG_LEVEL", slog.LevelInfo),
	}
	if c.Limits.MaxChunkSize < 1 || c.Limits.MaxChunks < 1 || c.Limits.MaxFileSize < 0 {
		e.fail("size and chunk limits must be positive")
	}
	return c
}

// env reads variables and collects every mistake, so a bad configuration is
// reported whole at start rather than one variable per attempt.
type env struct {
	get  func(string) string
	errs []error
}

func (e *env) fail(format string, args ...any) { e.errs = append(e.errs, fmt.Errorf(format, args...)) }
func (e *env) err() error                      { return errors.Join(e.errs...) }

func (e *env) str(name, def string) string {
	if v := strings.TrimSpace(e.get(name)); v != "" {
		return v
	}
	return def
}

func (e *env) int(name string, def int) int {
	v := e.str(name, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		e.fail("%s: %q is not a whole number", name, v)
	}
	return n
}

func (e *env) duration(name string, def time.Duration) time.Duration {
	v := e.str(name, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		e.fail("%s: %q is not a duration such as 90s, 30m or 24h", name, v)
	}
	return d
}

func (e *env) list(name string, def []string) []string {
	v := e.str(name, "")
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

func (e *env) level(name string, def slog.Level) slog.Level {
	v := e.str(name, "")
	if v == "" {
		return def
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(v)); err != nil {
		e.fail("%s: %q is not one of debug, info, warn, error", name, v)
	}
	return l
}

// size reads a byte count: plain bytes or with a unit (KiB, MiB, GiB, TiB,
// or KB, MB, GB, TB in powers of ten).
func (e *env) size(name string, def int64) int64 {
	v := e.str(name, "")
	if v == "" {
		return def
	}
	n, err := ParseSize(v)
	if err != nil {
		e.fail("%s: %v", name, err)
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
