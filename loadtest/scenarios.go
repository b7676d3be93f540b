package loadtest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"sync/atomic"
	"time"
)

// Options tune a scenario run. The zero value runs each scenario with its
// own default clients for DefaultDuration.
type Options struct {
	// Clients is the number of concurrent clients (0: the scenario's default).
	Clients int
	// Duration is how long clients keep starting requests (0: DefaultDuration).
	Duration time.Duration
	// Seed makes key choice reproducible (0: random).
	Seed uint64
	// Prefix starts every namespace the run touches, so runs against one
	// server never see each other's keys (empty: random).
	Prefix string
	// Hold is how long a lock scenario's client keeps a lock before
	// releasing it, standing in for work done under the lock (0: release
	// at once, as the original's hand-off row did).
	Hold time.Duration
}

// DefaultDuration is how long a scenario runs when Options say nothing.
const DefaultDuration = 5 * time.Second

// Scenario is one row of the benchmark table.
type Scenario struct {
	Name           string // for --scenario, e.g. "kv64-1000x1000"
	Title          string // e.g. "64byte write KV for 1000 accounts and 1000 keys"
	DefaultClients int
	unit           string
	run            func(ctx context.Context, c *Client, o Options, r *runner) *Result
}

// runner carries what every scenario's run needs.
type runner struct {
	clients int
	seed    uint64
	prefix  string
}

// namespacePaths returns the /db paths of n namespaces of this run.
func (r *runner) namespacePaths(n int) []string {
	paths := make([]string, n)
	for i := range paths {
		paths[i] = "/db/" + r.namespace(i)
	}
	return paths
}

func (r *runner) namespace(i int) string { return r.prefix + "-" + strconv.Itoa(i) }

// Scenarios lists every scenario in table order.
func Scenarios() []Scenario {
	var s []Scenario
	for _, shape := range [][2]int{{1, 1}, {1, 1000}, {1000, 1}, {1000, 1000}} {
		s = append(s, kvWrite(64, shape[0], shape[1]))
	}
	s = append(s, kvWrite(1024, 1000, 1000), kvWrite(10240, 1000, 1000))
	s = append(s, atomicAdd(1, 1), atomicAdd(1000, 1000))
	s = append(s, lockUnlock("lock-handoff", 1, 1, 50), lockUnlock("lock-1000x1000", 1000, 1000, 400))
	return s
}

// Lookup finds a scenario by name.
func Lookup(name string) (Scenario, bool) {
	for _, s := range Scenarios() {
		if s.Name == name {
			return s, true
		}
	}
	return Scenario{}, false
}

// Run runs the scenario against c and returns what it measured and checked.
func (s Scenario) Run(ctx context.Context, c *Client, o Options) *Result {
	r := &runner{clients: o.Clients, seed: o.Seed, prefix: o.Prefix}
	if r.clients <= 0 {
		r.clients = s.DefaultClients
	}
	if r.seed == 0 {
		r.seed = rand.Uint64()
	}
	if r.prefix == "" {
		r.prefix = "lt" + strconv.FormatUint(rand.Uint64()%1e9, 36)
	}
	if o.Duration <= 0 {
		o.Duration = DefaultDuration
	}
	res := s.run(ctx, c, o, r)
	res.Scenario, res.Title, res.Unit = s.Name, s.Title, s.unit
	return res
}

func sizeName(n int) string {
	if n >= 1024 && n%1024 == 0 {
		return strconv.Itoa(n/1024) + "KB"
	}
	return strconv.Itoa(n) + "byte"
}

// jsonString returns a JSON string value of exactly size bytes, quotes
// included, of random letters.
func jsonString(rng *rand.Rand, size int) []byte {
	v := make([]byte, size)
	v[0], v[size-1] = '"', '"'
	for i := 1; i < size-1; i++ {
		v[i] = 'a' + byte(rng.IntN(26))
	}
	return v
}

// kvWrite: every client writes a size-byte value to a random key of a
// random namespace, one key per request.
func kvWrite(size, nss, keys int) Scenario {
	name := fmt.Sprintf("kv%s-%dx%d", map[int]string{64: "64", 1024: "1k", 10240: "10k"}[size], nss, keys)
	return Scenario{
		Name:           name,
		Title:          fmt.Sprintf("%s write KV for %d accounts and %d keys", sizeName(size), nss, keys),
		DefaultClients: 400,
		unit:           "req",
		run: func(ctx context.Context, c *Client, o Options, r *runner) *Result {
			paths := r.namespacePaths(nss)
			res := runWorkers(ctx, c, r.clients, o.Duration, r.seed, func(ctx context.Context, w *worker) {
				if w.body == nil {
					w.body = make([]byte, 0, size+64)
					w.body = append(w.body, jsonString(w.rng, size)...) // the value, kept at the front
				}
				value := w.body[:size]
				b := append(w.body[size:size], `{"KVSet":[{"Key":"k`...)
				b = strconv.AppendInt(b, int64(w.rng.IntN(keys)), 10)
				b = append(b, `","Value":`...)
				b = append(b, value...)
				b = append(b, `}]}`...)
				if _, lat, err := w.post(ctx, paths[w.rng.IntN(nss)], b); err == nil {
					w.done(lat, size)
				}
			})
			if got := res.Ops + res.ErrorCount(); got != res.Requests {
				res.Violations = append(res.Violations, fmt.Sprintf("%d requests but %d successes + %d errors", res.Requests, res.Ops, res.ErrorCount()))
			}
			return res
		},
	}
}

// atomicAdd: every client adds 1 to a random counter; at the end every
// touched counter must equal the number of acknowledged adds to it.
func atomicAdd(nss, keys int) Scenario {
	return Scenario{
		Name:           fmt.Sprintf("atomic-%dx%d", nss, keys),
		Title:          fmt.Sprintf("atomic add for %d accounts and %d keys", nss, keys),
		DefaultClients: 400,
		unit:           "req",
		run: func(ctx context.Context, c *Client, o Options, r *runner) *Result {
			paths := r.namespacePaths(nss)
			counts := make([]map[int]int64, r.clients) // per worker: ns*keys+key -> adds
			res := runWorkers(ctx, c, r.clients, o.Duration, r.seed, func(ctx context.Context, w *worker) {
				if counts[w.id] == nil {
					counts[w.id] = map[int]int64{}
				}
				ns, key := w.rng.IntN(nss), w.rng.IntN(keys)
				b := append(w.body[:0], `{"Atomic":[{"Key":"c`...)
				b = strconv.AppendInt(b, int64(key), 10)
				b = append(b, `","Add":1}]}`...)
				w.body = b
				if _, lat, err := w.post(ctx, paths[ns], b); err == nil {
					counts[w.id][ns*keys+key]++
					w.done(lat, 8)
				}
			})
			if got := res.Ops + res.ErrorCount(); got != res.Requests {
				res.Violations = append(res.Violations, fmt.Sprintf("%d requests but %d successes + %d errors", res.Requests, res.Ops, res.ErrorCount()))
			}
			// Only errors that may have applied (none of the API's codes
			// do) make a counter legitimately higher than counted.
			uncertain := res.Errors["transport"] + res.Errors["timeout"] + res.Errors["canceled"]
			res.Violations = append(res.Violations, checkCounters(ctx, c, r, keys, counts, uncertain)...)
			return res
		},
	}
}

// checkCounters reads back every touched counter.
func checkCounters(ctx context.Context, c *Client, r *runner, keys int, counts []map[int]int64, uncertain int64) []string {
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
	var bad []string
	for ns, ks := range byNS {
		sort.Ints(ks)
		for len(ks) > 0 {
			chunk := ks[:min(len(ks), 500)]
			ks = ks[len(chunk):]
			req := &Request{}
			for _, k := range chunk {
				req.Atomic = append(req.Atomic, AtomicOp{Key: "c" + strconv.Itoa(k)})
			}
			resp, err := c.Do(ctx, r.namespace(ns), req)
			if err != nil {
				return append(bad, "reading counters back: "+err.Error())
			}
			if len(resp.Atomic) != len(chunk) {
				return append(bad, fmt.Sprintf("reading %d counters back returned %d", len(chunk), len(resp.Atomic)))
			}
			for i, k := range chunk {
				exp, got := want[ns*keys+k], resp.Atomic[i].Value
				if got < exp || got > exp+uncertain {
					if len(bad) < 10 {
						bad = append(bad, fmt.Sprintf("counter %s/c%d is %d after %d acknowledged adds", r.namespace(ns), k, got, exp))
					}
				}
			}
		}
	}
	return bad
}

// lockUnlock: every client takes a random lock (waiting for it), then
// releases it with its handle. With one key this measures hand-offs: each
// release grants the next waiter. Checks: no two clients hold one lock at
// once, handles strictly increase per key and per client.
func lockUnlock(name string, nss, keys, clients int) Scenario {
	title := fmt.Sprintf("lock/unlock for %d accounts and %d keys", nss, keys)
	unit := "req"
	if nss*keys == 1 {
		title = fmt.Sprintf("lock hand-off for 1 account and 1 key with %d contending clients", clients)
		unit = "handoffs"
	}
	return Scenario{
		Name: name, Title: title, DefaultClients: clients, unit: unit,
		run: func(ctx context.Context, c *Client, o Options, r *runner) *Result {
			paths := r.namespacePaths(nss)
			holders := make([]atomic.Int64, nss*keys) // worker id+1 holding each lock
			last := make([]atomic.Uint64, nss*keys)   // last handle granted per lock
			lastByWorker := make([]uint64, r.clients)
			res := runWorkers(ctx, c, r.clients, o.Duration, r.seed, func(ctx context.Context, w *worker) {
				ns, key := w.rng.IntN(nss), w.rng.IntN(keys)
				slot := ns*keys + key
				b := append(w.body[:0], `{"LockID":"l`...)
				b = strconv.AppendInt(b, int64(key), 10)
				b = append(b, `","LockDurMs":30000,"LockWaitMs":20000}`...)
				w.body = b
				out, lat, err := w.post(ctx, paths[ns], b)
				if err != nil {
					return
				}
				h, ok := uintField(out, `"Lock":`)
				if !ok {
					w.violate("lock reply without a handle: %q", out)
					return
				}
				if !holders[slot].CompareAndSwap(0, int64(w.id)+1) {
					w.violate("granted l%d (handle %d) while client %d holds it", key, h, holders[slot].Load()-1)
				}
				if prev := last[slot].Swap(h); h <= prev {
					w.violate("handle %d for l%d after handle %d", h, key, prev)
				}
				if h <= lastByWorker[w.id] {
					w.violate("handle %d after this client's handle %d", h, lastByWorker[w.id])
				}
				lastByWorker[w.id] = h
				w.done(lat, 0)
				if o.Hold > 0 {
					time.Sleep(o.Hold)
				}
				// Give up the lock in our books before the unlock leaves,
				// since the next holder may be told before we are.
				holders[slot].CompareAndSwap(int64(w.id)+1, 0)
				b = append(w.body[:0], `{"UnlockID":"l`...)
				b = strconv.AppendInt(b, int64(key), 10)
				b = append(b, `","Unlock":`...)
				b = strconv.AppendUint(b, h, 10)
				b = append(b, '}')
				w.body = b
				// Unlock with a fresh context: a run ending must not
				// leave the lock held until it expires.
				w.post(context.WithoutCancel(ctx), paths[ns], b) //nolint:errcheck // counted by post
			})
			if got := 2*res.Ops + res.ErrorCount(); got < res.Requests {
				res.Violations = append(res.Violations, fmt.Sprintf("%d requests but %d grants (+ as many unlocks) + %d errors", res.Requests, res.Ops, res.ErrorCount()))
			}
			return res
		},
	}
}

// uintField finds "name":<digits> in a JSON reply without decoding it all.
func uintField(b []byte, name string) (uint64, bool) {
	i := bytes.Index(b, []byte(name))
	if i < 0 {
		return 0, false
	}
	b = b[i+len(name):]
	j := 0
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		j++
	}
	v, err := strconv.ParseUint(string(b[:j]), 10, 64)
	return v, err == nil
}
