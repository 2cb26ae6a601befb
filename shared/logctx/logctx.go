// Package logctx carries a logger in a context.Context, together with the
// attributes of the work the context belongs to (a request's id, the upload
// it touches), so that every line logged for that work carries them,
// whichever package logs it.
//
// The HTTP handler starts a scope for each request with its id and adds the
// upload key once it knows it; the upload service and the assembly pipeline
// log through From(ctx). A scope is mutable (Add), so that a line logged at
// the end of a request, such as the access line, sees attributes learned
// along the way; Start makes a child scope that leaves its parent untouched.
package logctx

import (
	"context"
	"log/slog"
	"sync"
)

type key struct{}

type scope struct {
	base *slog.Logger

	mu    sync.Mutex
	attrs []slog.Attr
}

// Start returns a context with a new scope. Within a scope, it is a child
// of that scope: the same logger, the parent's current attributes, then
// attrs (an attribute of the same key replacing the earlier one). Otherwise
// the scope logs to base (slog.Default() when nil) with attrs.
//
// So work done on behalf of a request, such as an assembly the request's
// last chunk runs inline, logs with the request's logger and attributes,
// and the same code run by a background worker logs with its own.
func Start(ctx context.Context, base *slog.Logger, attrs ...slog.Attr) context.Context {
	s := &scope{base: base}
	if parent, ok := ctx.Value(key{}).(*scope); ok {
		parent.mu.Lock()
		s.attrs = append(s.attrs, parent.attrs...)
		parent.mu.Unlock()
		s.base = parent.base
	}
	if s.base == nil {
		s.base = slog.Default()
	}
	s.set(attrs)
	return context.WithValue(ctx, key{}, s)
}

// Add sets attributes on ctx's scope, in place: lines logged from then on
// through any context of that scope carry them. Without a scope it does
// nothing.
func Add(ctx context.Context, attrs ...slog.Attr) {
	if s, ok := ctx.Value(key{}).(*scope); ok {
		s.mu.Lock()
		s.set(attrs)
		s.mu.Unlock()
	}
}

// set replaces or appends; the caller holds mu (or owns s alone).
func (s *scope) set(attrs []slog.Attr) {
next:
	for _, a := range attrs {
		for i := range s.attrs {
			if s.attrs[i].Key == a.Key {
				s.attrs[i] = a
				continue next
			}
		}
		s.attrs = append(s.attrs, a)
	}
}

// From is the logger of ctx's scope with its attributes, or fallback (or
// slog.Default() when fallback is nil) when ctx has no scope.
func From(ctx context.Context, fallback *slog.Logger) *slog.Logger {
	s, ok := ctx.Value(key{}).(*scope)
	if !ok {
		if fallback != nil {
			return fallback
		}
		return slog.Default()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.attrs) == 0 {
		return s.base
	}
	args := make([]any, len(s.attrs))
	for i, a := range s.attrs {
		args[i] = a
	}
	return s.base.With(args...)
}
