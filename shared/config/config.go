// Package config reads flowgate's settings from FLOWGATE_* environment
// variables. Every variable is listed, with its default, in the README.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flowgate/flowgate/shared/logformat"
	"github.com/flowgate/flowgate/shared/protocol"
	"github.com/flowgate/flowgate/shared/upload"
)

// Local is the embedded server's configuration.
type Local struct {
	Addr    string // FLOWGATE_ADDR
	DataDir string // FLOWGATE_DATA_DIR
	// LogFormat (FLOWGATE_LOG_FORMAT) is auto (human lines on a terminal,
	// JSON otherwise), json or text; see package logformat.
	LogFormat string
	WebDir    string // FLOWGATE_WEB_DIR; empty serves no page
	Common
	Expiry          time.Duration // FLOWGATE_EXPIRY: idle uploads are removed after this
	SweepInterval   time.Duration // FLOWGATE_SWEEP_INTERVAL
	Workers         int           // FLOWGATE_ASSEMBLY_WORKERS
	WebhookURL      string        // FLOWGATE_WEBHOOK_URL
	WebhookSecret   string        // FLOWGATE_WEBHOOK_SECRET
	ShutdownTimeout time.Duration // FLOWGATE_SHUTDOWN_TIMEOUT
	BodyTimeout     time.Duration // FLOWGATE_BODY_TIMEOUT: longest stall while reading a request body

	// Auth is FLOWGATE_AUTH: AuthNone (every caller shares the public
	// namespace) or AuthJWT (a bearer token, checked with the FLOWGATE_JWT_*
	// settings that shared/auth reads, names the caller's namespace).
	Auth string
	// MaxUploadsPerNamespace (FLOWGATE_MAX_UPLOADS_PER_NAMESPACE) bounds the
	// uploads in progress at once in one namespace; 0 means no limit.
	MaxUploadsPerNamespace int
	// MaxHeaderBytes (FLOWGATE_MAX_HEADER_BYTES) bounds a request's line and headers.
	MaxHeaderBytes int
	// MaxFieldBytes (FLOWGATE_MAX_FIELD_BYTES) and MaxParts
	// (FLOWGATE_MAX_PARTS) bound a multipart body's form fields.
	MaxFieldBytes int
	MaxParts      int
	// Metrics (FLOWGATE_METRICS) serves /metrics in the Prometheus text format.
	Metrics bool
}

// Auth modes of the embedded server (FLOWGATE_AUTH). On AWS, FLOWGATE_AUTH
// also takes "cognito"; see shared/awsdeploy.
const (
	AuthNone = "none"
	AuthJWT  = "jwt"
)

// Common is what every deployment reads: limits, CORS, identity, logging.
type Common struct {
	Limits          protocol.Limits // FLOWGATE_MAX_FILE_SIZE, FLOWGATE_MAX_CHUNK_SIZE, FLOWGATE_MAX_CHUNKS
	AllowedOrigins  []string        // FLOWGATE_ALLOWED_ORIGINS, comma-separated; "*" is any
	NamespaceHeader string          // FLOWGATE_NAMESPACE_HEADER: trust this header for the namespace
	LogLevel        slog.Level      // FLOWGATE_LOG_LEVEL: debug, info, warn, error
	// AllowedTypes (FLOWGATE_ALLOWED_TYPES) lists the MIME types, families
	// (image/*) and extensions (.pdf) of the files taken; empty takes all.
	AllowedTypes upload.AllowList
	// Disposition (FLOWGATE_CONTENT_DISPOSITION) is how finished files are
	// served: attachment (saved under their name) or inline (shown).
	Disposition string
}

// LoadLocal reads the embedded server's configuration through getenv
// (os.Getenv in production, a map in tests).
func LoadLocal(getenv func(string) string) (Local, error) {
	e := NewEnv(getenv)
	// 16 assembly workers: with 8, many small files became ready faster than
	// 8 workers finished them, and completion fell a second behind the last
	// chunk (docs/benchmarks.md); 16 share their commits and fsyncs enough to
	// keep up.
	c := Local{
		Addr:            e.String("FLOWGATE_ADDR", "127.0.0.1:8080"),
		DataDir:         e.String("FLOWGATE_DATA_DIR", "./data"),
		LogFormat:       e.String("FLOWGATE_LOG_FORMAT", logformat.Auto),
		WebDir:          e.String("FLOWGATE_WEB_DIR", "./web"),
		Common:          e.Common(64 << 20),
		Expiry:          e.Duration("FLOWGATE_EXPIRY", 24*time.Hour),
		SweepInterval:   e.Duration("FLOWGATE_SWEEP_INTERVAL", 10*time.Minute),
		Workers:         e.Int("FLOWGATE_ASSEMBLY_WORKERS", 16),
		WebhookURL:      e.String("FLOWGATE_WEBHOOK_URL", ""),
		WebhookSecret:   e.String("FLOWGATE_WEBHOOK_SECRET", ""),
		ShutdownTimeout: e.Duration("FLOWGATE_SHUTDOWN_TIMEOUT", 30*time.Second),
		BodyTimeout:     e.Duration("FLOWGATE_BODY_TIMEOUT", 30*time.Second),

		Auth:                   e.String("FLOWGATE_AUTH", AuthNone),
		MaxUploadsPerNamespace: e.Int("FLOWGATE_MAX_UPLOADS_PER_NAMESPACE", 0),
		MaxHeaderBytes:         int(e.Size("FLOWGATE_MAX_HEADER_BYTES", 64<<10)),
		MaxFieldBytes:          int(e.Size("FLOWGATE_MAX_FIELD_BYTES", 4<<10)),
		MaxParts:               e.Int("FLOWGATE_MAX_PARTS", 64),
		Metrics:                e.Bool("FLOWGATE_METRICS", true),
	}
	switch c.Auth {
	case AuthNone:
		// A key configured for a server that does not check tokens is a
		// server someone believes protected: refuse to start.
		for _, k := range []string{"FLOWGATE_JWT_SECRET", "FLOWGATE_JWT_PUBLIC_KEYS"} {
			if e.String(k, "") != "" {
				e.Fail("%s is set but FLOWGATE_AUTH is none: set FLOWGATE_AUTH=jwt to check tokens, or unset %s", k, k)
			}
		}
	case AuthJWT:
		if c.NamespaceHeader != "" {
			e.Fail("FLOWGATE_AUTH=jwt and FLOWGATE_NAMESPACE_HEADER exclude each other: choose the token or the proxy's header as the caller's identity")
		}
	default:
		e.Fail("FLOWGATE_AUTH: %q is not none or jwt (cognito is for the AWS deployment)", c.Auth)
	}
	if c.BodyTimeout < 0 || c.ShutdownTimeout < 0 {
		e.Fail("FLOWGATE_BODY_TIMEOUT and FLOWGATE_SHUTDOWN_TIMEOUT must not be negative")
	}
	if c.MaxUploadsPerNamespace < 0 {
		e.Fail("FLOWGATE_MAX_UPLOADS_PER_NAMESPACE must be 0 (no limit) or more")
	}
	if c.MaxHeaderBytes < 1<<10 || c.MaxHeaderBytes > 1<<20 {
		e.Fail("FLOWGATE_MAX_HEADER_BYTES must be from 1KiB to 1MiB")
	}
	if c.MaxFieldBytes < 1<<10 || c.MaxFieldBytes > 1<<20 {
		e.Fail("FLOWGATE_MAX_FIELD_BYTES must be from 1KiB (a relative path can take that much) to 1MiB")
	}
	if c.MaxParts < 10 || c.MaxParts > 1000 {
		e.Fail("FLOWGATE_MAX_PARTS must be from 10 (the flow.js fields and the file) to 1000")
	}
	if !slices.Contains(logformat.Formats, c.LogFormat) {
		e.Fail("FLOWGATE_LOG_FORMAT: %q is not one of %s", c.LogFormat, strings.Join(logformat.Formats, ", "))
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
		Disposition:     e.String("FLOWGATE_CONTENT_DISPOSITION", upload.DispositionAttachment),
	}
	allowed, err := upload.ParseAllowList(e.String("FLOWGATE_ALLOWED_TYPES", ""))
	if err != nil {
		e.Fail("FLOWGATE_ALLOWED_TYPES: %v", err)
	}
	c.AllowedTypes = allowed
	if c.Disposition != upload.DispositionAttachment && c.Disposition != upload.DispositionInline {
		e.Fail("FLOWGATE_CONTENT_DISPOSITION: %q is not attachment or inline", c.Disposition)
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

// Bool reads true/false, 1/0, yes/no or on/off.
func (e *Env) Bool(name string, def bool) bool {
	switch v := strings.ToLower(e.String(name, "")); v {
	case "":
		return def
	case "1", "true", "yes", "on":
		return true
	case "0", "false", "no", "off":
		return false
	default:
		e.Fail("%s: %q is not true or false", name, v)
		return def
	}
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
