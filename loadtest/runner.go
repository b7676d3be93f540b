package loadtest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// worker is one simulated client: it owns its counters, latencies and
// buffers, so the hot path shares nothing but the HTTP transport.
type worker struct {
	id   int
	c    *Client
	rng  *rand.Rand
	buf  []byte // reply buffer, reused
	body []byte // request buffer, reused

	requests   int64
	ops        int64
	payload    int64
	errs       map[string]int64
	lat        []time.Duration
	violations []string
	fatal      error // a transport failure that ends this worker
}

// post sends one request, counting it and classifying a failure. The
// caller decides whether the request completed an operation (done).
func (w *worker) post(ctx context.Context, path string, body []byte) ([]byte, time.Duration, error) {
	w.requests++
	start := time.Now()
	out, err := w.c.Post(ctx, path, body, w.buf[:0])
	took := time.Since(start)
	w.buf = out
	if err != nil {
		var apiErr *APIError
		if !errors.As(err, &apiErr) && ctx.Err() == nil {
			// The connection failed: stop this worker rather than spin
			// on a dead server, but keep the run's other numbers.
			w.fatal = err
		}
		if ctx.Err() != nil {
			w.requests-- // interrupted by the caller, not a server error
		} else {
			w.errs[errorClass(err)]++
		}
	}
	return out, took, err
}

// done counts one successful operation of the scenario's unit.
func (w *worker) done(lat time.Duration, payload int) {
	w.ops++
	w.payload += int64(payload)
	w.lat = append(w.lat, lat)
}

func (w *worker) violate(format string, args ...any) {
	if len(w.violations) < 10 {
		w.violations = append(w.violations, fmt.Sprintf("client %d: ", w.id)+fmt.Sprintf(format, args...))
	}
}

// runWorkers runs step on clients workers until d has passed (each worker
// finishes the step it is in, so nobody is cut off holding a lock) or ctx
// ends, and merges what they measured.
func runWorkers(ctx context.Context, c *Client, clients int, d time.Duration, seed uint64, step func(ctx context.Context, w *worker)) *Result {
	var stop atomic.Bool
	workers := make([]*worker, clients)
	for i := range workers {
		workers[i] = &worker{
			id: i, c: c,
			rng:  rand.New(rand.NewPCG(seed, uint64(i))),
			buf:  make([]byte, 0, 512),
			errs: map[string]int64{},
			lat:  make([]time.Duration, 0, 1024),
		}
	}
	var wg sync.WaitGroup
	start := time.Now()
	timer := time.AfterFunc(d, func() { stop.Store(true) })
	defer timer.Stop()
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() && ctx.Err() == nil && w.fatal == nil {
				step(ctx, w)
			}
		}()
	}
	wg.Wait()
	r := &Result{Clients: clients, Elapsed: time.Since(start), Errors: map[string]int64{}}
	n := 0
	for _, w := range workers {
		n += len(w.lat)
	}
	r.lat = make([]time.Duration, 0, n)
	for _, w := range workers {
		r.Requests += w.requests
		r.Ops += w.ops
		r.PayloadBytes += w.payload
		r.lat = append(r.lat, w.lat...)
		for k, v := range w.errs {
			r.Errors[k] += v
		}
		r.Violations = append(r.Violations, w.violations...)
		if w.fatal != nil && len(r.Violations) < 20 {
			r.Violations = append(r.Violations, fmt.Sprintf("client %d stopped: %v", w.id, w.fatal))
		}
	}
	slices.Sort(r.lat)
	return r
}
