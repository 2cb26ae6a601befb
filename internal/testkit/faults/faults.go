// Package faults wraps real S3 and DynamoDB clients to make chosen calls
// fail, or "crash" after them, for the integration tests of the AWS path.
//
// A failed call never reaches the server. A crash lets the call reach the
// server and succeed there, then behaves as if the process died: the caller
// gets an error, and every later call made with the same request context
// fails too, so no cleanup code runs that a real crash would have skipped.
// Each call is named by a step ("s3.PutObject", "ddb.UpdateItem:shard"),
// and a Rule decides, by step and occurrence, what happens to it.
package faults

import (
	"context"
	"errors"
	"sync"
)

// Mode is what happens to one call.
type Mode int

const (
	Pass  Mode = iota
	Fail       // return an error without calling the server
	Crash      // call the server, then die: error now, and for the rest of the request
)

func (m Mode) String() string {
	switch m {
	case Fail:
		return "fail"
	case Crash:
		return "crash"
	}
	return "pass"
}

// Errors the wrappers return in place of the server's answer.
var (
	ErrInjected = errors.New("faults: injected failure")
	ErrCrashed  = errors.New("faults: process crashed")
)

// Injector decides the fate of each call and counts them. The zero value
// passes everything.
type Injector struct {
	// Rule gets the step and its occurrence (1 for the first call of that
	// step) and says what to do. Nil passes every call.
	Rule func(step string, nth int) Mode

	mu        sync.Mutex
	calls     map[string]int
	succeeded map[string]int
	injected  int
}

type requestKey struct{}

type request struct {
	mu   sync.Mutex
	dead bool
}

// Request returns a context for one request (an HTTP request, an assembler
// run): a crash inside it ends every later call made with it.
func Request(ctx context.Context) context.Context {
	return context.WithValue(ctx, requestKey{}, &request{})
}

func (in *Injector) do(ctx context.Context, step string, call func() error) error {
	r, _ := ctx.Value(requestKey{}).(*request)
	if r != nil {
		r.mu.Lock()
		dead := r.dead
		r.mu.Unlock()
		if dead {
			return ErrCrashed
		}
	}
	in.mu.Lock()
	if in.calls == nil {
		in.calls, in.succeeded = map[string]int{}, map[string]int{}
	}
	in.calls[step]++
	mode := Pass
	if in.Rule != nil {
		mode = in.Rule(step, in.calls[step])
	}
	if mode != Pass {
		in.injected++
	}
	in.mu.Unlock()

	if mode == Fail {
		return ErrInjected
	}
	err := call()
	if err == nil {
		in.mu.Lock()
		in.succeeded[step]++
		in.mu.Unlock()
	}
	if mode == Crash {
		if r != nil {
			r.mu.Lock()
			r.dead = true
			r.mu.Unlock()
		}
		return ErrCrashed
	}
	return err
}

// Calls is how many calls of step were made (including injected ones).
func (in *Injector) Calls(step string) int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.calls[step]
}

// Succeeded is how many calls of step reached the server and succeeded.
func (in *Injector) Succeeded(step string) int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.succeeded[step]
}

// Injected is how many calls the Rule failed or crashed.
func (in *Injector) Injected() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.injected
}

// AllCalls returns a copy of the call counts by step.
func (in *Injector) AllCalls() map[string]int {
	in.mu.Lock()
	defer in.mu.Unlock()
	m := make(map[string]int, len(in.calls))
	for k, v := range in.calls {
		m[k] = v
	}
	return m
}

// Reset clears the counts (the Rule stays).
func (in *Injector) Reset() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.calls, in.succeeded, in.injected = nil, nil, 0
}

// call runs one SDK call through the injector.
func call[T any](in *Injector, ctx context.Context, step string, f func() (T, error)) (T, error) {
	var out T
	err := in.do(ctx, step, func() error {
		var err error
		out, err = f()
		return err
	})
	if err != nil {
		var zero T
		return zero, err
	}
	return out, nil
}
