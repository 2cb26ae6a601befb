// Package logformat chooses how a server's log lines look: JSON lines (one
// object each, for machines: CloudWatch, a log shipper, a pipe) or short
// human lines for a person watching a terminal.
package logformat

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// Formats of FLOWGATE_LOG_FORMAT.
const (
	Auto = "auto" // text on a terminal, JSON otherwise
	JSON = "json"
	Text = "text"
)

// Formats lists the valid settings.
var Formats = []string{Auto, JSON, Text}

// Resolve turns Auto into JSON or Text for w.
func Resolve(format string, w io.Writer) string {
	if format == Auto || format == "" {
		if IsTerminal(w) {
			return Text
		}
		return JSON
	}
	return format
}

// IsTerminal reports whether w is a character device (a terminal), not a
// pipe or a file.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// New makes a logger writing to w in format (after Resolve) at level.
func New(w io.Writer, format string, level slog.Leveler) *slog.Logger {
	if Resolve(format, w) == Text {
		return slog.New(&console{w: w, level: level, mu: &sync.Mutex{}})
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}

// console writes a line a person reads at a glance: the time of day, the
// level, the message, then the attributes as key=value (quoted when they
// hold spaces), e.g.
//
//	14:02:31 INFO  upload ready chunks=3 size=2500 requestId=4f2a… upload=9c1e…
type console struct {
	w     io.Writer
	level slog.Leveler
	attrs []slog.Attr
	group string
	mu    *sync.Mutex
}

func (c *console) Enabled(_ context.Context, l slog.Level) bool { return l >= c.level.Level() }

func (c *console) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	fmt.Fprintf(&b, "%s %-5s %s", t.Format("15:04:05"), r.Level.String(), r.Message)
	for _, a := range c.attrs {
		writeAttr(&b, "", a)
	}
	r.Attrs(func(a slog.Attr) bool {
		writeAttr(&b, c.group, a)
		return true
	})
	b.WriteByte('\n')
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := io.WriteString(c.w, b.String())
	return err
}

func writeAttr(b *strings.Builder, prefix string, a slog.Attr) {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	key := a.Key
	if prefix != "" {
		key = prefix + "." + key
	}
	if a.Value.Kind() == slog.KindGroup {
		for _, g := range a.Value.Group() {
			writeAttr(b, key, g)
		}
		return
	}
	v := a.Value.String()
	if strings.ContainsAny(v, " \t\n\"=") || v == "" {
		v = fmt.Sprintf("%q", v)
	}
	fmt.Fprintf(b, " %s=%s", key, v)
}

func (c *console) WithAttrs(attrs []slog.Attr) slog.Handler {
	n := *c
	n.attrs = append(append([]slog.Attr(nil), c.attrs...), prefixed(c.group, attrs)...)
	return &n
}

func (c *console) WithGroup(name string) slog.Handler {
	n := *c
	if n.group != "" {
		name = n.group + "." + name
	}
	n.group = name
	return &n
}

func prefixed(group string, attrs []slog.Attr) []slog.Attr {
	if group == "" {
		return attrs
	}
	out := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		out[i] = slog.Attr{Key: group + "." + a.Key, Value: a.Value}
	}
	return out
}
