package devserver

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/flowgate/flowgate/internal/devstack/lambdarie"
)

// pool is one function's instances, each its bootstrap under its own RIE
// process. An invocation goes to a random idle instance, as Lambda sends it
// to any free execution environment; when every instance is busy it waits
// for the first to finish (Lambda would start another environment, up to
// the account's concurrency: the dev stack caps it at the pool's size).
// Nothing is shared between instances but the servers they talk to.
type pool struct {
	name  string
	insts []*lambdarie.Instance

	mu      sync.Mutex
	idle    []int         // indexes of idle instances
	freed   chan struct{} // signalled when an instance becomes idle
	invokes []int         // invocations per instance
	errors  int           // invocations that failed (function error, crash)
}

// startPool starts n instances of function, each with env.
func startPool(ctx context.Context, function string, n int, opt lambdarie.Options) (*pool, error) {
	p := &pool{name: function, freed: make(chan struct{}, n), invokes: make([]int, n)}
	for i := range n {
		o := opt
		o.Function = function
		inst, err := lambdarie.Start(ctx, o)
		if err != nil {
			p.stop()
			return nil, fmt.Errorf("devserver: %s instance %d: %w", function, i+1, err)
		}
		p.insts = append(p.insts, inst)
		p.idle = append(p.idle, i)
	}
	return p, nil
}

// invoke runs one invocation on a random idle instance.
func (p *pool) invoke(ctx context.Context, event []byte) ([]byte, error) {
	i, err := p.take(ctx)
	if err != nil {
		return nil, err
	}
	out, err := p.insts[i].Invoke(ctx, event)
	// An invocation whose ctx ended still runs to its end inside the
	// instance; the instance queues the next one behind it, so it can be
	// handed out again at once.
	p.put(i, err)
	return out, err
}

func (p *pool) take(ctx context.Context) (int, error) {
	for {
		p.mu.Lock()
		if n := len(p.idle); n > 0 {
			k := rand.IntN(n)
			i := p.idle[k]
			p.idle[k] = p.idle[n-1]
			p.idle = p.idle[:n-1]
			p.invokes[i]++
			p.mu.Unlock()
			return i, nil
		}
		p.mu.Unlock()
		select {
		case <-p.freed:
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(time.Second): // a missed signal costs at most this
		}
	}
}

func (p *pool) put(i int, err error) {
	p.mu.Lock()
	p.idle = append(p.idle, i)
	if err != nil {
		p.errors++
	}
	p.mu.Unlock()
	select {
	case p.freed <- struct{}{}:
	default:
	}
}

// PoolStats count one function's invocations.
type PoolStats struct {
	Instances int   `json:"instances"`
	Invokes   []int `json:"invocationsPerInstance"`
	Errors    int   `json:"errors"`
	// PIDs are the instances' RIE processes (the bootstrap runs under each).
	PIDs []int `json:"pids"`
}

func (p *pool) stats() PoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := PoolStats{Instances: len(p.insts), Invokes: append([]int(nil), p.invokes...), Errors: p.errors}
	for _, inst := range p.insts {
		st.PIDs = append(st.PIDs, inst.Pid())
	}
	return st
}

// stop stops every instance, at once.
func (p *pool) stop() {
	var wg sync.WaitGroup
	for _, inst := range p.insts {
		wg.Go(inst.Stop)
	}
	wg.Wait()
}
