package loadtest

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options tune a scenario run. The zero value runs each scenario with its
// own default clients for DefaultDuration.
type Options struct {
	// Clients is the number of concurrent clients (0: the scenario's default).
	Clients int
	// Duration is how long clients keep starting operations (0:
	// DefaultDuration, or no limit when Ops is set).
	Duration time.Duration
	// Ops stops a scenario after this many operations were started,
	// across all clients (0: no limit). For watch rows it counts changes
	// observed; the idle-waiters row ignores it.
	Ops int64
	// Rate paces operation starts at this many per second across all
	// clients (open loop), and latency then counts from each operation's
	// scheduled start, so a server that falls behind shows it instead of
	// hiding it (coordinated omission). 0: every client goes as fast as
	// it can (closed loop). Watch and idle-waiter rows ignore it.
	Rate float64
	// Latency simulates a network round trip: every request sleeps half
	// of it before it is sent and half after its reply, as the original
	// benchmark did.
	Latency time.Duration
	// Seed makes key choice reproducible (0: random).
	Seed uint64
	// Prefix starts every namespace the run touches, so runs against one
	// server never see each other's keys (empty: random).
	Prefix string
	// Hold is how long a lock scenario's client keeps a lock before
	// releasing it, standing in for work done under the lock (0: release
	// at once, as the original's hand-off row did).
	Hold time.Duration
	// Scale multiplies the number of watchers and idle waiters of the
	// watch and idle-waiters rows (0: 1). Tests scale them down.
	Scale float64
	// Progress, if set, receives a live progress line (\r-updated).
	Progress io.Writer
}

// DefaultDuration is how long a scenario runs when Options say nothing.
const DefaultDuration = 5 * time.Second

// Scenario is one row of the benchmark table.
type Scenario struct {
	Name           string    // for --scenario, e.g. "kv64-1000x1000"
	Title          string    // e.g. "64byte write KV for 1000 accounts and 1000 keys"
	DefaultClients int       // clients when Options.Clients is 0
	Needs          []Feature // what the target must support
	unit           string
	run            func(ctx context.Context, r *runner) *Result
}

// Scenarios lists every scenario in the original table's order.
func Scenarios() []Scenario {
	var s []Scenario
	for _, n := range []int{1, 100, 1000, 10000} {
		s = append(s, watchReaction(1, n))
	}
	s = append(s, watchReaction(1000, 5))
	s = append(s, lockUnlock("lock-handoff", 1, 1, 50), lockUnlock("lock-1x1000", 1, 1000, 400),
		lockUnlock("lock-1000x1000", 1000, 1000, 400))
	shapes := [][2]int{{1, 1}, {1, 1000}, {1000, 1}, {1000, 1000}}
	for _, size := range []int{64, 1024, 10240} {
		for _, sh := range shapes {
			s = append(s, kvWrite(size, sh[0], sh[1]))
		}
	}
	for _, sh := range shapes {
		s = append(s, atomicAdd(sh[0], sh[1]))
	}
	s = append(s, idleWaiters(10000))
	return s
}

// aliases are other names accepted by Lookup.
var aliases = map[string]string{"lock-1x1": "lock-handoff"}

// Lookup finds a scenario by name.
func Lookup(name string) (Scenario, bool) {
	if a, ok := aliases[name]; ok {
		name = a
	}
	for _, s := range Scenarios() {
		if s.Name == name {
			return s, true
		}
	}
	return Scenario{}, false
}

// Select resolves "all" or a comma-separated list of names (or
// prefixes ending in *, e.g. "kv64-*") to scenarios in table order.
func Select(spec string) ([]Scenario, error) {
	all := Scenarios()
	if strings.TrimSpace(spec) == "" || spec == "all" {
		return all, nil
	}
	want := map[string]bool{}
	for _, name := range strings.Split(spec, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if p, ok := strings.CutSuffix(name, "*"); ok {
			n := 0
			for _, s := range all {
				if strings.HasPrefix(s.Name, p) {
					want[s.Name] = true
					n++
				}
			}
			if n == 0 {
				return nil, fmt.Errorf("no scenario matches %q", name)
			}
			continue
		}
		s, ok := Lookup(name)
		if !ok {
			return nil, fmt.Errorf("unknown scenario %q", name)
		}
		want[s.Name] = true
	}
	var out []Scenario
	for _, s := range all {
		if want[s.Name] {
			out = append(out, s)
		}
	}
	return out, nil
}

// Run runs the scenario against t and returns what it measured and
// checked. A target lacking a feature the scenario needs gets a Result
// with Skipped set.
func (s Scenario) Run(ctx context.Context, t Target, o Options) *Result {
	r := &runner{o: o, clients: o.Clients, seed: o.Seed, prefix: o.Prefix}
	label := func(res *Result) *Result {
		res.Scenario, res.Unit, res.Target = s.Name, s.unit, t.Name()
		if res.Title == "" {
			res.Title = s.Title
		}
		res.Rate, res.Latency = o.Rate, o.Latency
		if res.Errors == nil {
			res.Errors = map[string]int64{}
		}
		return res
	}
	for _, f := range s.Needs {
		if err := t.Supports(f); err != nil {
			return label(&Result{Skipped: fmt.Sprintf("%s does not support %s: %v", t.Name(), f, err), hist: &Histogram{}})
		}
	}
	if r.clients <= 0 {
		r.clients = s.DefaultClients
	}
	if r.seed == 0 {
		r.seed = rand.Uint64()
	}
	if r.prefix == "" {
		r.prefix = "lt" + strconv.FormatUint(rand.Uint64()%1e9, 36)
	}
	if r.o.Duration <= 0 && r.o.Ops <= 0 {
		r.o.Duration = DefaultDuration
	}
	r.t = withLatency(t, o.Latency)
	if o.Progress != nil {
		stop := startProgress(o.Progress, s.Name, r)
		defer stop()
	}
	return label(s.run(ctx, r))
}

// startProgress redraws a progress line every 200ms until stopped, then
// clears it.
func startProgress(w io.Writer, name string, r *runner) func() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				fmt.Fprintf(w, "\r%-79s\r", "")
				return
			case <-tick.C:
				el := time.Since(start)
				ops := r.liveOps.Load()
				fmt.Fprintf(w, "\r%-79.79s", fmt.Sprintf("%s %4.1fs %d ops %s/sec %d errors",
					name, el.Seconds(), ops, human(float64(ops)/el.Seconds()), r.liveErrs.Load()))
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func sizeName(n int) string {
	switch n {
	case 10240:
		return "10 KB" // as the original wrote it
	case 1024:
		return "1KB"
	}
	return strconv.Itoa(n) + "byte"
}

// shape describes namespaces x keys as the original did.
func shape(nss, keys int) string {
	return fmt.Sprintf("%d %s and %d %s", nss, plural(nss, "account"), keys, plural(keys, "key"))
}

func plural(n int, s string) string {
	if n == 1 {
		return s
	}
	return s + "s"
}

// letters returns size random letters.
func letters(rng *rand.Rand, size int) []byte {
	v := make([]byte, size)
	for i := range v {
		v[i] = 'a' + byte(rng.IntN(26))
	}
	return v
}

// bookkeeping checks that every request ended as a success or an error.
func bookkeeping(res *Result, requestsPerOp int64) {
	if got := requestsPerOp*res.Ops + res.ErrorCount(); got < res.Requests {
		res.Violations = append(res.Violations, fmt.Sprintf("%d requests but %d successes (x%d requests) + %d errors",
			res.Requests, res.Ops, requestsPerOp, res.ErrorCount()))
	}
}

// kvWrite: every client writes a size-byte value (random letters) to a
// random key of a random namespace, one key per request.
func kvWrite(size, nss, keys int) Scenario {
	name := fmt.Sprintf("kv%s-%dx%d", map[int]string{64: "64", 1024: "1k", 10240: "10k"}[size], nss, keys)
	return Scenario{
		Name:           name,
		Title:          fmt.Sprintf("%s write KV for %s", sizeName(size), shape(nss, keys)),
		DefaultClients: 400,
		Needs:          []Feature{FeatureKV},
		unit:           "req",
		run: func(ctx context.Context, r *runner) *Result {
			nsNames, keyNames := r.namespaces(nss), names("k", keys)
			res := runWorkers(ctx, r, r.clients, func(ctx context.Context, w *worker) {
				if w.body == nil {
					w.body = letters(w.rng, size)
				}
				err := w.conn.SetKV(ctx, nsNames[w.rng.IntN(nss)], keyNames[w.rng.IntN(keys)], w.body)
				if w.count(ctx, err) {
					w.done(size)
				}
			})
			bookkeeping(res, 1)
			return res
		},
	}
}

// atomicAdd: every client adds 1 to a random counter; at the end every
// touched counter must equal the number of acknowledged adds to it.
func atomicAdd(nss, keys int) Scenario {
	return Scenario{
		Name:           fmt.Sprintf("atomic-%dx%d", nss, keys),
		Title:          fmt.Sprintf("atomic add for %s", shape(nss, keys)),
		DefaultClients: 400,
		Needs:          []Feature{FeatureCounter},
		unit:           "req",
		run: func(ctx context.Context, r *runner) *Result {
			nsNames, keyNames := r.namespaces(nss), names("c", keys)
			counts := make([]map[int]int64, r.clients) // per worker: ns*keys+key -> adds
			res := runWorkers(ctx, r, r.clients, func(ctx context.Context, w *worker) {
				if counts[w.id] == nil {
					counts[w.id] = map[int]int64{}
				}
				ns, key := w.rng.IntN(nss), w.rng.IntN(keys)
				v, err := w.conn.Add(ctx, nsNames[ns], keyNames[key], 1)
				if w.count(ctx, err) {
					counts[w.id][ns*keys+key]++
					if v < 1 {
						w.violate("add 1 to %s/%s returned %d", nsNames[ns], keyNames[key], v)
					}
					w.done(0)
				}
			})
			bookkeeping(res, 1)
			// Only errors that may have applied (none of the API's codes
			// do) make a counter legitimately higher than counted.
			uncertain := res.Errors["transport"] + res.Errors["timeout"] + res.Errors["canceled"] + res.Errors["bad_reply"]
			res.Violations = append(res.Violations, checkCounters(ctx, r, nsNames, keyNames, counts, uncertain)...)
			return res
		},
	}
}

// checkCounters reads back every touched counter.
func checkCounters(ctx context.Context, r *runner, nsNames, keyNames []string, counts []map[int]int64, uncertain int64) []string {
	keys := len(keyNames)
	want := map[int]int64{}
	for _, m := range counts {
		for k, n := range m {
			want[k] += n
		}
	}
	byNS := map[int][]int{}
	for k := range want {
		byNS[k/keys] = append(byNS[k/keys], k%keys)
	}
	conn := r.t.Conn()
	ctx = context.WithoutCancel(ctx)
	var bad []string
	for ns, ks := range byNS {
		names := make([]string, len(ks))
		for i, k := range ks {
			names[i] = keyNames[k]
		}
		vals, err := conn.Counters(ctx, nsNames[ns], names)
		if err != nil {
			return append(bad, "reading counters back: "+err.Error())
		}
		if len(vals) != len(ks) {
			return append(bad, fmt.Sprintf("reading %d counters back returned %d", len(ks), len(vals)))
		}
		for i, k := range ks {
			exp, got := want[ns*keys+k], vals[i]
			if (got < exp || got > exp+uncertain) && len(bad) < 10 {
				bad = append(bad, fmt.Sprintf("counter %s/%s is %d after %d acknowledged adds", nsNames[ns], keyNames[k], got, exp))
			}
		}
	}
	return bad
}

// lockUnlock: every client takes a random lock (waiting for it), then
// releases it with its handle. With one key this measures hand-offs: each
// release grants the next waiter. Checks: no two clients hold one lock at
// once, and (on targets with fencing handles) handles strictly increase
// per key and per client.
func lockUnlock(name string, nss, keys, clients int) Scenario {
	title := fmt.Sprintf("lock/unlock for %s", shape(nss, keys))
	unit := "req"
	if nss*keys == 1 {
		title = fmt.Sprintf("lock hand-off for 1 account and 1 key with %d contending clients", clients)
		unit = "handoffs"
	}
	return Scenario{
		Name: name, Title: title, DefaultClients: clients, unit: unit,
		Needs: []Feature{FeatureLock},
		run: func(ctx context.Context, r *runner) *Result {
			fencing := r.t.Supports(FeatureFencing) == nil
			nsNames, lockNames := r.namespaces(nss), names("l", keys)
			holders := make([]atomic.Int64, nss*keys) // worker id+1 holding each lock
			last := make([]atomic.Uint64, nss*keys)   // last handle granted per lock
			lastByWorker := make([]uint64, r.clients)
			res := runWorkers(ctx, r, r.clients, func(ctx context.Context, w *worker) {
				ns, key := w.rng.IntN(nss), w.rng.IntN(keys)
				slot := ns*keys + key
				h, err := w.conn.Lock(ctx, nsNames[ns], lockNames[key], 30*time.Second, 20*time.Second)
				if !w.count(ctx, err) {
					return
				}
				if !holders[slot].CompareAndSwap(0, int64(w.id)+1) {
					w.violate("granted %s (handle %d) while client %d holds it", lockNames[key], h, holders[slot].Load()-1)
				}
				if fencing {
					if prev := last[slot].Swap(h); h <= prev {
						w.violate("handle %d for %s after handle %d", h, lockNames[key], prev)
					}
					if h <= lastByWorker[w.id] {
						w.violate("handle %d after this client's handle %d", h, lastByWorker[w.id])
					}
					lastByWorker[w.id] = h
				}
				w.done(0)
				if r.o.Hold > 0 {
					time.Sleep(r.o.Hold)
				}
				// Give up the lock in our books before the unlock leaves,
				// since the next holder may be told before we are.
				holders[slot].CompareAndSwap(int64(w.id)+1, 0)
				// Unlock with a fresh context: a run ending must not
				// leave the lock held until it expires.
				err = w.conn.Unlock(context.WithoutCancel(ctx), nsNames[ns], lockNames[key], h)
				if !w.count(ctx, err) && errorClass(err) == "lock_lost" && r.o.Hold < 10*time.Second {
					w.violate("unlock of %s right after its grant (handle %d): %v", lockNames[key], h, err)
				}
			})
			bookkeeping(res, 2)
			if nss*keys == 1 {
				// The title names the contending clients: keep it true.
				res.Title = fmt.Sprintf("lock hand-off for 1 account and 1 key with %d contending clients", r.clients)
			}
			return res
		},
	}
}
