package localserver

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/flowgate/flowgate/shared/upload"
)

// Workers run the assembly pipeline in-process: the embedded stand-in for
// the DynamoDB stream that triggers the assembler Lambda on AWS. An upload is
// queued once however often it is enqueued, never run by two workers at once,
// and retried with backoff while the pipeline reports an error.
type Workers struct {
	pipeline Runner
	n        int
	log      *slog.Logger

	mu      sync.Mutex
	queue   []string
	queued  map[string]bool
	running map[string]bool // being run by a worker
	again   map[string]bool // enqueued while running: queue it when the run ends
	retries map[string]int
	wake    chan struct{}
}

// Runner is what the workers run for an upload: an *upload.Pipeline.
type Runner interface {
	Run(ctx context.Context, key string) error
}

var _ Runner = (*upload.Pipeline)(nil)

// NewWorkers makes n workers for the pipeline.
func NewWorkers(p Runner, n int, log *slog.Logger) *Workers {
	return &Workers{pipeline: p, n: n, log: log,
		queued: map[string]bool{}, running: map[string]bool{}, again: map[string]bool{},
		retries: map[string]int{}, wake: make(chan struct{}, 1)}
}

// Enqueue asks for the upload to be taken through the pipeline. An upload
// being run is queued again when that run ends, not run twice at once: the
// claim would let a second worker of this process in (the owner is the
// process), and both would assemble it.
func (w *Workers) Enqueue(key string) {
	w.mu.Lock()
	if w.running[key] {
		w.again[key] = true
	} else if !w.queued[key] {
		w.queued[key] = true
		w.queue = append(w.queue, key)
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run works until ctx is done, then waits for the running pipelines, whose
// claims a restart would release anyway.
func (w *Workers) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for range w.n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				key, ok := w.next(ctx)
				if !ok {
					return
				}
				w.work(ctx, key)
			}
		}()
	}
	wg.Wait()
}

func (w *Workers) next(ctx context.Context) (string, bool) {
	for {
		w.mu.Lock()
		if len(w.queue) > 0 {
			key := w.queue[0]
			w.queue = w.queue[1:]
			delete(w.queued, key)
			w.running[key] = true
			w.mu.Unlock()
			// Pass the wake-up on: there may be more for another worker.
			select {
			case w.wake <- struct{}{}:
			default:
			}
			return key, true
		}
		w.mu.Unlock()
		select {
		case <-ctx.Done():
			return "", false
		case <-w.wake:
		}
	}
}

func (w *Workers) work(ctx context.Context, key string) {
	err := w.pipeline.Run(ctx, key)
	w.mu.Lock()
	delete(w.running, key)
	again := w.again[key]
	delete(w.again, key)
	w.mu.Unlock()
	if again && ctx.Err() == nil {
		w.Enqueue(key)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err == nil || ctx.Err() != nil {
		delete(w.retries, key)
		return
	}
	w.retries[key]++
	delay := backoff(w.retries[key])
	w.log.Warn("assembly will be retried", "upload", key, "err", err, "in", delay.String())
	time.AfterFunc(delay, func() {
		if ctx.Err() == nil {
			w.Enqueue(key)
		}
	})
}

// backoff doubles from 100 ms up to a minute.
func backoff(attempt int) time.Duration {
	d := 100 * time.Millisecond << min(attempt-1, 10)
	return min(d, time.Minute)
}
