package main

// Linearizability of the real binary, checked with porcupine.
//
// Many clients send KV sets, deletes and gets, counter adds, reads and
// conditional sets, and lock acquires and releases over real HTTP to a real
// `latch serve`, while the test SIGKILLs the server and restarts it on the
// same data directory in the middle of the history. Every request is
// recorded with its call and return time; the history is then checked
// against the sequential model in linear_model_test.go.
//
// A request that got no reply, timed out or got a 5xx has an unknown
// outcome: it returns at the end of the history (it may or may not have
// applied). Definite errors (409 lock_timeout, lock_lost,
// precondition_failed) are outcomes and are modelled. A checker timeout is
// a failure, and on any failure porcupine's HTML visualization is written
// to a kept file whose path is logged. Lock handles are also checked across
// keys (unique, increasing in real time: fencing, I4), which the per-key
// model cannot see. TestLinearizabilityCatchesCorruption shows the checks
// fail on a corrupted real history.
//
// Short version (in `make test`): 3000 ops, 2 kills, 12 clients.
// Long version: set the environment, e.g.
//
//	LATCH_LINEAR_OPS=20000 LATCH_LINEAR_KILLS=6 go test -race -run TestLinearizability ./cmd/latch
//
//	LATCH_LINEAR_OPS      ops in the history (default 3000)
//	LATCH_LINEAR_KILLS    SIGKILL + restarts, evenly spread (default 2, at least 1;
//	                      at least 100 ops between two kills)
//	LATCH_LINEAR_CLIENTS  concurrent clients (default 12)
//	LATCH_LINEAR_VIS_DIR  where a failing history's visualization goes (default os.TempDir())
//	LATCH_TEST_SEED       repeat a run's choices of ops (the interleaving is real, so not exactly)

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

const (
	// linLockDurSec is far longer than any run, so no lock expires during
	// one and the model needs no clock. A lock granted to a request whose
	// reply was lost stays held for the rest of the run; that is why lock
	// keys change with every restart (see linWorkload.lockKey).
	linLockDurSec = 3600
	// linMaxLockWaitMs bounds LockWait: short, so lock_timeout means the
	// lock was held, and clients keep moving.
	linMaxLockWaitMs = 100
	// linRequestTimeout makes a stuck request an unknown outcome instead
	// of a hang. Never reached on a healthy run.
	linRequestTimeout = 10 * time.Second
	// linCheckTimeout bounds porcupine. Reaching it fails the test: an
	// unchecked history proves nothing.
	linCheckTimeout = 2 * time.Minute
	linNamespaces   = 2 // two namespaces, so both shards of the server are used
	// Objects per namespace (lock keys: per restart epoch too), for every
	// linOpsPerScale ops: porcupine's time grows faster than linearly in
	// the ops of one object, so long runs spread over more objects.
	linKVKeys      = 3
	linCounters    = 2
	linLockKeys    = 3
	linOpsPerScale = 10000
)

// linConfig is one run's shape.
type linConfig struct {
	ops, kills, clients int
	seed                uint64
}

// linRun is a recorded history and what happened while recording it.
type linRun struct {
	history   []porcupine.Operation
	kills     int
	unknown   int            // ops with unknown outcome
	codes     map[string]int // definite error replies by code
	kinds     map[linKind]int
	afterLast int // ops that completed after the last restart
	took      time.Duration
}

// linCluster is the current server; restarts replace it.
type linCluster struct {
	mu    sync.RWMutex
	srv   *server
	epoch int // restarts so far
}

func (c *linCluster) current() (*server, int) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.srv, c.epoch
}

// linWorkload is shared by the clients of one run.
type linWorkload struct {
	t       *testing.T
	cfg     linConfig
	cluster *linCluster
	start   time.Time
	issued  atomic.Int64
	killAt  chan struct{} // receives when the op count reaches a kill point (buffered: clients never wait)
	nerr    atomic.Int64
	// strictWait: a waited lock_timeout means "held" (linear_model_test.go).
	strictWait bool
	scale      int // multiplies the number of objects (linOpsPerScale)
}

func (w *linWorkload) now() int64 { return int64(time.Since(w.start)) }

// errorf reports an unexpected reply; after 10 the rest are only counted.
func (w *linWorkload) errorf(format string, args ...any) {
	switch n := w.nerr.Add(1); {
	case n <= 10:
		w.t.Errorf(format, args...)
	case n == 11:
		w.t.Errorf("... further unexpected replies not shown")
	}
}

func linNS(i int) string         { return fmt.Sprintf("lin%d", i) }
func linKVKey(i int) string      { return fmt.Sprintf("kv%d", i) }
func linCtrKey(i int) string     { return fmt.Sprintf("ctr%d", i) }
func linLockKey(e, i int) string { return fmt.Sprintf("lock-e%d-%d", e, i) }

// linClient is one client's own state.
type linClient struct {
	id       int
	w        *linWorkload
	rng      *rand.Rand
	ops      []porcupine.Operation
	writes   int
	held     *linInput           // the lock this client holds (Handle set), if any
	released map[string][]uint64 // handles it released for sure, by ns/key: stale releases must get lock_lost
	lastSeen map[string]int64    // last counter value seen, by ns/key: a likely IfEq
}

// do sends one request and records it as an operation. ok lists the
// definite error codes this kind of op may get.
func (c *linClient) do(in linInput, body map[string]any, ok ...string) linOutput {
	w := c.w
	srv, _ := w.cluster.current()
	ctx, cancel := context.WithTimeout(context.Background(), linRequestTimeout)
	call := w.now()
	status, r, err := srv.db(ctx, in.NS, body)
	ret := w.now()
	cancel()
	var out linOutput
	switch {
	case err != nil:
		out = linOutput{Unknown: true, Why: shortErr(err)}
	case status >= 500:
		out = linOutput{Unknown: true, Why: fmt.Sprintf("%d %s", status, r.Code)}
	case status == http.StatusOK:
		out = linResult(in, r)
	case status == http.StatusConflict && slices.Contains(ok, r.Code):
		out = linOutput{Code: r.Code}
	default:
		w.errorf("%s %s/%s %v: unexpected reply %d %s: %s", in.Kind, in.NS, in.Key, body, status, r.Code, r.Message)
		out = linOutput{Unknown: true, Why: fmt.Sprintf("unexpected %d %s", status, r.Code)}
	}
	if out.Unknown {
		ret = -1 // set to the end of the history once it is known
	}
	c.ops = append(c.ops, porcupine.Operation{ClientId: c.id, Input: in, Call: call, Output: out, Return: ret})
	return out
}

// shortErr keeps an error's last part (the cause), for the visualization.
func shortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && len(s)-i < 80 {
		return s[i+2:]
	}
	return s
}

// linResult reads a 200 reply into the op's output.
func linResult(in linInput, r dbResp) linOutput {
	var out linOutput
	switch in.Kind {
	case linKVSet, linKVDelete, linKVGet:
		if len(r.KV) == 1 {
			out.Version = r.KV[0].Version
			if v := r.KV[0].Value; len(v) > 0 && string(v) != "null" {
				var s string
				if json.Unmarshal(v, &s) != nil {
					s = "raw:" + string(v) // not what any client wrote: the model rejects it
				}
				out.Value = s
			}
		} else {
			out.Value = fmt.Sprintf("malformed: %d KV items", len(r.KV))
		}
	case linCtrAdd, linCtrRead, linCtrCAS:
		if len(r.Atomic) == 1 {
			out.Counter = r.Atomic[0].Value
		} else {
			out.Code = fmt.Sprintf("malformed: %d Atomic items", len(r.Atomic))
		}
	case linLockAcquire:
		out.Handle = r.Lock
	}
	return out
}

// run issues ops until the workload's total is reached.
func (c *linClient) run() {
	w := c.w
	for {
		n := w.issued.Add(1)
		if n > int64(w.cfg.ops) {
			return
		}
		if k := int64(w.cfg.kills); k > 0 && n%(int64(w.cfg.ops)/(k+1)) == 0 && n/(int64(w.cfg.ops)/(k+1)) <= k {
			w.killAt <- struct{}{}
		}
		c.step()
	}
}

// step picks and performs one op.
func (c *linClient) step() {
	ns := linNS(c.rng.IntN(linNamespaces))
	r := c.rng.IntN(100)
	if c.held != nil && r < 35 {
		c.release(*c.held)
		return
	}
	switch {
	case r < 35:
		c.kvOp(ns)
	case r < 65:
		c.counterOp(ns)
	case r < 92 && c.held == nil:
		c.acquire(ns)
	case r < 92:
		c.kvOp(ns)
	default:
		c.staleRelease(ns)
	}
}

func (c *linClient) kvOp(ns string) {
	key := linKVKey(c.rng.IntN(linKVKeys * c.w.scale))
	switch r := c.rng.IntN(100); {
	case r < 45:
		c.writes++
		v := fmt.Sprintf("c%d-w%d", c.id, c.writes) // unique: a read names its write
		c.do(linInput{Kind: linKVSet, NS: ns, Key: key, Value: v},
			map[string]any{"KVSet": []any{map[string]any{"Key": key, "Value": v}}, "KVGet": []string{key}})
	case r < 55:
		c.do(linInput{Kind: linKVDelete, NS: ns, Key: key},
			map[string]any{"KVSet": []any{map[string]any{"Key": key, "Delete": true}}, "KVGet": []string{key}})
	default:
		c.do(linInput{Kind: linKVGet, NS: ns, Key: key}, map[string]any{"KVGet": []string{key}})
	}
}

func (c *linClient) counterOp(ns string) {
	key := linCtrKey(c.rng.IntN(linCounters * c.w.scale))
	id := ns + "/" + key
	var out linOutput
	switch r := c.rng.IntN(100); {
	case r < 50:
		d := int64(c.rng.IntN(9) + 1)
		out = c.do(linInput{Kind: linCtrAdd, NS: ns, Key: key, Delta: d},
			map[string]any{"Atomic": []any{map[string]any{"Key": key, "Add": d}}})
	case r < 75:
		out = c.do(linInput{Kind: linCtrRead, NS: ns, Key: key},
			map[string]any{"Atomic": []any{map[string]any{"Key": key}}})
	default:
		ifEq := c.lastSeen[id]
		if c.rng.IntN(4) == 0 {
			ifEq += int64(c.rng.IntN(5)) - 2 // sometimes a guess that is likely wrong
		}
		set := ifEq + int64(c.rng.IntN(20)) - 5 // may go down: a CAS is not an add
		out = c.do(linInput{Kind: linCtrCAS, NS: ns, Key: key, Set: set, IfEq: ifEq},
			map[string]any{"Atomic": []any{map[string]any{"Key": key, "Set": set, "IfEq": ifEq}}}, "precondition_failed")
	}
	if !out.Unknown && out.Code == "" {
		c.lastSeen[id] = out.Counter
	}
}

// lockKey is a lock key of the current epoch, or sometimes of an earlier
// one: those may be held forever by grants whose reply a kill lost, and
// probing them checks that held locks stay held across restarts.
func (c *linClient) lockKey() string {
	_, epoch := c.w.cluster.current()
	if epoch > 0 && c.rng.IntN(100) < 15 {
		epoch = c.rng.IntN(epoch)
	}
	return linLockKey(epoch, c.rng.IntN(linLockKeys*c.w.scale))
}

func (c *linClient) acquire(ns string) {
	key := c.lockKey()
	var wait int64 // half the acquires fail at once: their lock_timeout says "held"
	if c.rng.IntN(2) == 0 {
		wait = int64(c.rng.IntN(linMaxLockWaitMs) + 1)
	}
	body := map[string]any{"LockID": key, "LockDur": linLockDurSec}
	if wait > 0 {
		body["LockWaitMs"] = wait
	}
	in := linInput{Kind: linLockAcquire, NS: ns, Key: key, WaitMs: wait, StrictWait: c.w.strictWait}
	out := c.do(in, body, "lock_timeout")
	if !out.Unknown && out.Code == "" {
		in.Handle = out.Handle
		c.held = &in
	}
}

// release releases a held lock, retrying an unknown outcome until the
// answer is definite (ok, or lock_lost when an earlier try applied), so a
// kill does not leave the lock held.
func (c *linClient) release(h linInput) {
	body := map[string]any{"UnlockID": h.Key, "Unlock": h.Handle}
	in := linInput{Kind: linLockRelease, NS: h.NS, Key: h.Key, Handle: h.Handle}
	for try := 0; ; try++ {
		out := c.do(in, body, "lock_lost")
		if !out.Unknown {
			if out.Code == "" {
				id := h.NS + "/" + h.Key
				c.released[id] = append(c.released[id], h.Handle)
			}
			break
		}
		if try == 50 {
			c.w.errorf("release of %s/%s handle %d: no definite answer in %d tries", h.NS, h.Key, h.Handle, try+1)
			break
		}
	}
	c.held = nil
}

// staleRelease releases a handle this client already released: the answer
// must be lock_lost, whoever holds the lock now.
func (c *linClient) staleRelease(ns string) {
	var ids []string
	for id := range c.released {
		if strings.HasPrefix(id, ns+"/") {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		c.kvOp(ns)
		return
	}
	sort.Strings(ids)
	id := ids[c.rng.IntN(len(ids))]
	hs := c.released[id]
	key := strings.TrimPrefix(id, ns+"/")
	h := hs[c.rng.IntN(len(hs))]
	c.do(linInput{Kind: linLockRelease, NS: ns, Key: key, Handle: h},
		map[string]any{"UnlockID": key, "Unlock": h}, "lock_lost")
}

// runLinearHistory records one history against a fresh server, with
// cfg.kills SIGKILL + restarts spread evenly over it.
func runLinearHistory(t *testing.T, cfg linConfig) linRun {
	t.Helper()
	if cfg.ops/(cfg.kills+1) < 100 {
		t.Fatalf("%d ops are too few for %d kills: want at least 100 ops between kills", cfg.ops, cfg.kills)
	}
	dir := t.TempDir()
	w := &linWorkload{t: t, cfg: cfg, start: time.Now(), killAt: make(chan struct{}, cfg.kills),
		strictWait: true, scale: max(1, cfg.ops/linOpsPerScale)}
	w.cluster = &linCluster{srv: startServer(t, dir, nil)}

	clients := make([]*linClient, cfg.clients)
	var wg sync.WaitGroup
	for i := range clients {
		c := &linClient{id: i, w: w, rng: rand.New(rand.NewPCG(cfg.seed, uint64(i))),
			released: map[string][]uint64{}, lastSeen: map[string]int64{}}
		clients[i] = c
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.run()
		}()
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()

	// The kills run here, on the test goroutine (startServer may t.Fatal):
	// each one waits until a client reaches a kill point, so it lands while
	// the clients are busy.
	var restartedAt int64
	run := linRun{codes: map[string]int{}, kinds: map[linKind]int{}}
	for run.kills < cfg.kills {
		select {
		case <-w.killAt:
		case <-done:
			t.Fatalf("the clients finished before kill %d of %d", run.kills+1, cfg.kills)
		}
		w.cluster.mu.Lock()
		old := w.cluster.srv
		old.crash()
		if st := old.state; st == nil || !killedBySIGKILL(st) {
			t.Errorf("kill %d: server state %v, want killed by SIGKILL", run.kills+1, st)
		}
		w.cluster.srv = startServer(t, dir, nil)
		w.cluster.epoch++
		restartedAt = w.now()
		w.cluster.mu.Unlock()
		run.kills++
	}
	<-done
	run.took = time.Since(w.start)

	var end int64
	for _, c := range clients {
		for _, op := range c.ops {
			end = max(end, op.Return, op.Call)
		}
	}
	for _, c := range clients {
		for _, op := range c.ops {
			out := op.Output.(linOutput)
			run.kinds[op.Input.(linInput).Kind]++
			switch {
			case out.Unknown:
				op.Return = end + 1
				run.unknown++
			case out.Code != "":
				run.codes[out.Code]++
			}
			if !out.Unknown && op.Call > restartedAt {
				run.afterLast++
			}
			run.history = append(run.history, op)
		}
	}
	if cfg.kills > 0 && run.afterLast == 0 {
		t.Errorf("no op completed after the last restart: the history does not check recovery")
	}
	return run
}

// checkLinear runs porcupine on history. Anything but Ok fails the test and
// writes the visualization to a kept file.
func checkLinear(t *testing.T, history []porcupine.Operation) time.Duration {
	t.Helper()
	start := time.Now()
	res, info := porcupine.CheckOperationsVerbose(linModel, history, linCheckTimeout)
	took := time.Since(start)
	if res == porcupine.Ok {
		return took
	}
	if res == porcupine.Unknown {
		t.Errorf("porcupine did not finish within %s: an unchecked history counts as a failure", linCheckTimeout)
	} else {
		t.Errorf("porcupine: the history of %d ops is %s (not linearizable)", len(history), res)
	}
	dir := os.Getenv("LATCH_LINEAR_VIS_DIR")
	if dir == "" {
		dir = os.TempDir()
	}
	name := regexp.MustCompile(`[^A-Za-z0-9_.-]+`).ReplaceAllString(t.Name(), "_")
	path := filepath.Join(dir, fmt.Sprintf("latch-linear-%s-%d.html", name, time.Now().UnixNano()))
	if err := porcupine.VisualizePath(linModel, info, path); err != nil {
		t.Errorf("writing the visualization: %v", err)
	} else {
		t.Errorf("visualization (kept): %s", path)
	}
	if res == porcupine.Illegal {
		logIllegalObjects(t, history, strings.TrimSuffix(path, ".html")+".txt")
	}
	return took
}

// logIllegalObjects names the objects whose own history is not
// linearizable and writes their operations, in call order, to a text file:
// quicker to read than the visualization when there are thousands of ops.
func logIllegalObjects(t *testing.T, history []porcupine.Operation, path string) {
	t.Helper()
	var b strings.Builder
	for _, part := range linPartition(history) {
		if porcupine.CheckOperationsTimeout(linModel, part, linCheckTimeout) != porcupine.Illegal {
			continue
		}
		in := part[0].Input.(linInput)
		t.Errorf("not linearizable: %s/%s (%d ops)", in.NS, in.Key, len(part))
		ops := slices.Clone(part)
		sort.Slice(ops, func(i, j int) bool { return ops[i].Call < ops[j].Call })
		fmt.Fprintf(&b, "== %s/%s\n", in.NS, in.Key)
		for _, op := range ops {
			ret := fmt.Sprintf("%.6f", float64(op.Return)/1e9)
			if op.Output.(linOutput).Unknown {
				ret = "end"
			}
			fmt.Fprintf(&b, "%.6f %s c%d %s\n", float64(op.Call)/1e9, ret, op.ClientId, linDescribeOperation(op.Input, op.Output))
		}
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Errorf("writing the illegal objects' ops: %v", err)
	} else {
		t.Errorf("their ops in call order (kept): %s", path)
	}
}

// handleViolations checks what the per-key model cannot see: lock handles
// are unique and increase across all keys and namespaces (I4, restarts
// included). A grant that returned before another was requested has the
// smaller handle.
func handleViolations(history []porcupine.Operation) []string {
	type grant struct {
		call, ret int64
		h         uint64
		what      string
	}
	var grants []grant
	for _, op := range history {
		in, out := op.Input.(linInput), op.Output.(linOutput)
		if in.Kind == linLockAcquire && !out.Unknown && out.Code == "" {
			grants = append(grants, grant{op.Call, op.Return, out.Handle, in.NS + "/" + in.Key})
		}
	}
	var bad []string
	owner := map[uint64]string{}
	for _, g := range grants {
		if prev, dup := owner[g.h]; dup {
			bad = append(bad, fmt.Sprintf("handle %d granted twice (%s and %s)", g.h, prev, g.what))
		}
		owner[g.h] = g.what
	}
	byCall := slices.Clone(grants)
	sort.Slice(byCall, func(i, j int) bool { return byCall[i].call < byCall[j].call })
	sort.Slice(grants, func(i, j int) bool { return grants[i].ret < grants[j].ret })
	var best *grant // the highest handle among the grants returned so far
	next := 0
	for _, g := range byCall {
		for ; next < len(grants) && grants[next].ret < g.call; next++ {
			if best == nil || grants[next].h > best.h {
				best = &grants[next]
			}
		}
		if best != nil && best.h >= g.h {
			bad = append(bad, fmt.Sprintf("handle %d (%s) granted after handle %d (%s) had returned", g.h, g.what, best.h, best.what))
		}
	}
	return bad
}

func (r linRun) summary() string {
	var kinds []string
	for k := linKVSet; k <= linLockRelease; k++ {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, r.kinds[k]))
	}
	var codes []string
	for code, n := range r.codes {
		codes = append(codes, fmt.Sprintf("%s %d", code, n))
	}
	sort.Strings(codes)
	return fmt.Sprintf("%d ops (%s), %d kills, %d unknown outcome, definite errors: %s, %d completed after the last restart, recorded in %s",
		len(r.history), strings.Join(kinds, ", "), r.kills, r.unknown, strings.Join(codes, ", "), r.afterLast, r.took.Round(time.Millisecond))
}

// TestLinearizability records a history of KV, counter and lock ops from
// many clients over HTTP, with SIGKILL + restarts in the middle, and checks
// it is linearizable.
func TestLinearizability(t *testing.T) {
	cfg := linConfig{
		ops:     envInt(t, "LATCH_LINEAR_OPS", 3000),
		kills:   envInt(t, "LATCH_LINEAR_KILLS", 2),
		clients: envInt(t, "LATCH_LINEAR_CLIENTS", 12),
		seed:    testSeed(t),
	}
	run := runLinearHistory(t, cfg)
	t.Logf("history: %s", run.summary())
	took := checkLinear(t, run.history)
	t.Logf("porcupine checked %d ops on %d objects in %s", len(run.history), len(linPartition(run.history)), took.Round(time.Millisecond))
	for i, v := range handleViolations(run.history) {
		if i == 10 {
			t.Errorf("... further handle violations not shown")
			break
		}
		t.Errorf("fencing: %s", v)
	}
	// The workload must exercise what the model checks, or a pass means
	// little (a tiny LATCH_LINEAR_OPS may legitimately see none).
	for _, code := range []string{"lock_timeout", "lock_lost", "precondition_failed"} {
		if run.codes[code] == 0 && cfg.ops >= 1000 {
			t.Errorf("no %s reply in the history: the workload does not exercise it", code)
		}
	}
}

// TestLinearizabilityCatchesCorruption shows the checker is not vacuous: a
// real history passes, and the same history with one reply corrupted (a
// stale read, a wrong version, a duplicated lock grant) is Illegal.
func TestLinearizabilityCatchesCorruption(t *testing.T) {
	run := runLinearHistory(t, linConfig{ops: 800, kills: 1, clients: 8, seed: testSeed(t)})
	t.Logf("history: %s", run.summary())
	checkLinear(t, run.history)
	if v := handleViolations(run.history); len(v) > 0 {
		t.Errorf("fencing: %v", v)
	}
	if t.Failed() {
		t.FailNow()
	}

	illegal := func(name string, h []porcupine.Operation) {
		t.Helper()
		res, info := porcupine.CheckOperationsVerbose(linModel, h, linCheckTimeout)
		if res != porcupine.Illegal {
			t.Errorf("%s: porcupine says %s, want Illegal", name, res)
			return
		}
		// The failure path's visualization works too.
		path := filepath.Join(t.TempDir(), "corrupt.html")
		if err := porcupine.VisualizePath(linModel, info, path); err != nil {
			t.Errorf("%s: visualization: %v", name, err)
		} else if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
			t.Errorf("%s: visualization not written: %v", name, err)
		}
		t.Logf("%s: Illegal, as it should be", name)
	}
	known := func(op porcupine.Operation) bool {
		out := op.Output.(linOutput)
		return !out.Unknown && out.Code == ""
	}
	// The known sets of each key, by value.
	sets := map[string]porcupine.Operation{}
	for _, op := range run.history {
		if in := op.Input.(linInput); in.Kind == linKVSet && known(op) {
			sets[in.NS+"/"+in.Key+"="+in.Value] = op
		}
	}

	// 1. A stale read: a get that returned X (written by a set that returned
	// before the get began) now returns Y, written by a set that returned
	// before X's set began.
	stale, wrongVersion := -1, -1
	var staleOut linOutput
	for i, op := range run.history {
		in := op.Input.(linInput)
		out := op.Output.(linOutput)
		if in.Kind != linKVGet || !known(op) || out.Value == "" {
			continue
		}
		sx, ok := sets[in.NS+"/"+in.Key+"="+out.Value]
		if !ok {
			continue
		}
		if wrongVersion < 0 {
			wrongVersion = i
		}
		if sx.Return >= op.Call {
			continue
		}
		for _, sy := range sets {
			yin := sy.Input.(linInput)
			if yin.NS == in.NS && yin.Key == in.Key && sy.Return < sx.Call {
				stale, staleOut = i, sy.Output.(linOutput)
				break
			}
		}
		if stale >= 0 {
			break
		}
	}
	if stale < 0 || wrongVersion < 0 {
		t.Fatalf("no get in the history to corrupt (stale %d, version %d): the workload is too small", stale, wrongVersion)
	}
	h := append([]porcupine.Operation(nil), run.history...)
	h[stale].Output = linOutput{Value: staleOut.Value, Version: staleOut.Version}
	illegal("stale read", h)

	// 2. The right value with another version.
	h = append([]porcupine.Operation(nil), run.history...)
	out := h[wrongVersion].Output.(linOutput)
	out.Version--
	h[wrongVersion].Output = out
	illegal("wrong version", h)

	// 3. A duplicated lock grant: another client is granted the same handle
	// while the first holder still holds it.
	releases := map[string]porcupine.Operation{}
	for _, op := range run.history {
		if in := op.Input.(linInput); in.Kind == linLockRelease && known(op) {
			releases[fmt.Sprintf("%s/%s#%d", in.NS, in.Key, in.Handle)] = op
		}
	}
	var dup *porcupine.Operation
	for _, op := range run.history {
		in := op.Input.(linInput)
		if in.Kind != linLockAcquire || !known(op) {
			continue
		}
		rel, ok := releases[fmt.Sprintf("%s/%s#%d", in.NS, in.Key, op.Output.(linOutput).Handle)]
		if ok && rel.Call-op.Return >= 3 {
			dup = &porcupine.Operation{ClientId: (op.ClientId + 1) % 8, Input: in, Output: op.Output,
				Call: op.Return + 1, Return: rel.Call - 1}
			break
		}
	}
	if dup == nil {
		t.Fatal("no acquire and release pair in the history to corrupt: the workload is too small")
	}
	illegal("duplicated lock grant", append(append([]porcupine.Operation(nil), run.history...), *dup))

	// 4. A lock reported held before anyone ever took it (lock_timeout
	// after no wait, before every other op of the run).
	held := porcupine.Operation{ClientId: 0, Call: 0, Return: 1,
		Input:  linInput{Kind: linLockAcquire, NS: dup.Input.(linInput).NS, Key: dup.Input.(linInput).Key},
		Output: linOutput{Code: "lock_timeout"}}
	illegal("lock_timeout on a free lock", append(append([]porcupine.Operation(nil), run.history...), held))

	// 5. The same handle granted on another key, where the per-key model
	// cannot see it: the fencing check must.
	other := *dup
	in := other.Input.(linInput)
	in.Key += "-other"
	other.Input = in
	if v := handleViolations(append(append([]porcupine.Operation(nil), run.history...), other)); len(v) == 0 {
		t.Errorf("a handle granted on two keys: the fencing check found nothing")
	} else {
		t.Logf("handle granted on two keys: %s", v[0])
	}
}

// TestLockTimeoutNeedsAHolder: a lock nobody ever took must be granted,
// whatever LockWait. It failed before the wait timer started at parking
// (a few percent of LockWaitMs 1 acquires of fresh keys got lock_timeout:
// the timer started when the request was queued).
func TestLockTimeoutNeedsAHolder(t *testing.T) {
	srv := startServer(t, t.TempDir(), nil)
	var timeouts, grants atomic.Int64
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				key := fmt.Sprintf("fresh-%d-%d", g, i)
				ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
				st, r, err := srv.db(ctx, "strict", map[string]any{"LockID": key, "LockDur": 60, "LockWaitMs": 1})
				cancel()
				switch {
				case err != nil:
					t.Errorf("acquire %s: %v", key, err)
					return
				case st == http.StatusOK:
					grants.Add(1)
				case r.Code == "lock_timeout":
					timeouts.Add(1)
				default:
					t.Errorf("acquire %s: %d %s: %s", key, st, r.Code, r.Message)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := timeouts.Load(); n > 0 {
		t.Errorf("%d of %d acquires of never-taken locks (LockWaitMs 1) got lock_timeout", n, n+grants.Load())
	}
}
