package loadtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// runner carries what every scenario's run needs.
type runner struct {
	t       Target
	o       Options
	clients int
	seed    uint64
	prefix  string

	// Live counters for the progress line.
	liveOps  atomic.Int64
	liveErrs atomic.Int64
}

// namespace is the name of this run's namespace i.
func (r *runner) namespace(i int) string { return r.prefix + "-" + strconv.Itoa(i) }

// namespaces returns the names of n namespaces of this run.
func (r *runner) namespaces(n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = r.namespace(i)
	}
	return s
}

// names returns prefix0 .. prefix(n-1), built once so the hot path does
// not format keys.
func names(prefix string, n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = prefix + strconv.Itoa(i)
	}
	return s
}

// scaled is n times the run's Scale, at least 1.
func (r *runner) scaled(n int) int {
	if r.o.Scale <= 0 {
		return n
	}
	return max(1, int(float64(n)*r.o.Scale+0.5))
}

// worker is one simulated client: it owns its connection, counters,
// histogram and buffers, so the hot path shares nothing but the network.
type worker struct {
	id   int
	conn Conn
	rng  *rand.Rand
	r    *runner
	body []byte // scenario scratch, reused

	// opStart is when the current operation began: the intended send
	// time when the run is paced (--rate), so a server that falls behind
	// is charged for the wait (coordinated omission), else the real one.
	opStart time.Time

	requests   int64
	ops        int64
	payload    int64
	errs       map[string]int64
	hist       Histogram
	violations []string
	fatal      error // repeated transport failures end this worker
	transport  int   // consecutive transport failures
}

func newWorker(r *runner, id int) *worker {
	return &worker{
		id: id, conn: r.t.Conn(), r: r,
		rng:  rand.New(rand.NewPCG(r.seed, uint64(id))),
		errs: map[string]int64{},
	}
}

// count books one request's outcome and reports whether it succeeded. A
// request cut off because the run itself ended is not counted at all.
func (w *worker) count(ctx context.Context, err error) bool {
	if err == nil {
		w.requests++
		w.transport = 0
		return true
	}
	if ctx.Err() != nil {
		return false
	}
	w.requests++
	class := errorClass(err)
	w.errs[class]++
	w.r.liveErrs.Add(1)
	if class == "transport" {
		// Stop this worker after a few in a row rather than spin on a
		// dead server; the run keeps its other numbers.
		if w.transport++; w.transport >= 3 {
			w.fatal = err
		} else {
			time.Sleep(50 * time.Millisecond)
		}
	}
	return false
}

// done counts one successful operation of the scenario's unit, with its
// latency from opStart.
func (w *worker) done(payload int) {
	w.ops++
	w.payload += int64(payload)
	w.hist.Record(time.Since(w.opStart))
	w.r.liveOps.Add(1)
}

func (w *worker) violate(format string, args ...any) {
	if len(w.violations) < 10 {
		w.violations = append(w.violations, fmt.Sprintf("client %d: ", w.id)+fmt.Sprintf(format, args...))
	}
}

// runWorkers runs step on clients workers until the run's Duration has
// passed or its Ops have been started (each worker finishes the step it
// is in, so nobody is cut off holding a lock) or ctx ends, and merges
// what they measured. With a Rate, steps start on an open-loop schedule
// shared by all workers, and latency counts from the scheduled start.
func runWorkers(ctx context.Context, r *runner, clients int, step func(ctx context.Context, w *worker)) *Result {
	var stop atomic.Bool
	var tickets atomic.Int64
	workers := make([]*worker, clients)
	for i := range workers {
		workers[i] = newWorker(r, i)
	}
	var interval float64 // ns between scheduled starts
	if r.o.Rate > 0 {
		interval = float64(time.Second) / r.o.Rate
	}
	var wg sync.WaitGroup
	start := time.Now()
	if r.o.Duration > 0 {
		timer := time.AfterFunc(r.o.Duration, func() { stop.Store(true) })
		defer timer.Stop()
	}
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() && ctx.Err() == nil && w.fatal == nil {
				if r.o.Ops > 0 || interval > 0 {
					n := tickets.Add(1)
					if r.o.Ops > 0 && n > r.o.Ops {
						return
					}
					if interval > 0 {
						w.opStart = start.Add(time.Duration(float64(n-1) * interval))
						if !sleepUntil(ctx, &stop, w.opStart) {
							return
						}
					} else {
						w.opStart = time.Now()
					}
				} else {
					w.opStart = time.Now()
				}
				step(ctx, w)
			}
		}()
	}
	wg.Wait()
	res := newResult(r, clients, time.Since(start))
	for _, w := range workers {
		res.addWorker(w)
	}
	return res
}

// sleepUntil waits for t, giving up (false) when the run stops first.
func sleepUntil(ctx context.Context, stop *atomic.Bool, t time.Time) bool {
	for {
		d := time.Until(t)
		if d <= 0 {
			return true
		}
		if stop.Load() || ctx.Err() != nil {
			return false
		}
		time.Sleep(min(d, 50*time.Millisecond))
	}
}

func newResult(r *runner, clients int, elapsed time.Duration) *Result {
	return &Result{
		Target: r.t.Name(), Clients: clients, Elapsed: elapsed,
		Errors: map[string]int64{}, hist: &Histogram{},
	}
}

// addWorker merges one worker's numbers into res.
func (res *Result) addWorker(w *worker) {
	res.Requests += w.requests
	res.Ops += w.ops
	res.PayloadBytes += w.payload
	res.hist.Merge(&w.hist)
	for k, v := range w.errs {
		res.Errors[k] += v
	}
	for _, v := range w.violations {
		if len(res.Violations) < 50 {
			res.Violations = append(res.Violations, v)
		}
	}
	if w.fatal != nil {
		res.Stopped++
		if res.StopReason == "" {
			res.StopReason = w.fatal.Error()
		}
	}
}
