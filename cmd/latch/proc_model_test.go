package main

// The client-side record of what a server acknowledged, and the workload
// that builds it: the process tests check a restarted (or restored) server
// against it.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// kvState is one key's history as the clients saw it. Every value written
// to a key is larger than the ones before (each key has one writer, whose
// values only grow).
type kvState struct {
	acked   int64 // last acknowledged value (or value read after a restart)
	hasAck  bool
	pending []int64 // attempted since, not acknowledged: may or may not have applied
}

// ctrState is one counter that only its own client adds 1 to.
type ctrState struct {
	acked     int64 // lower bound: adds acknowledged (or value read after a restart)
	attempted int64 // upper bound: adds sent
}

// model is what the clients were told. Its methods are safe for concurrent use.
type model struct {
	t      *testing.T
	mu     sync.Mutex
	kv     map[nsKey]*kvState
	ctr    map[nsKey]*ctrState
	seqIDs map[nsKey]map[uint64]bool // every id any Seq reply handed out
	acks   int                       // 2xx replies to writes
	nerr   atomic.Int64
}

// errorf reports a violation; after 20 the rest are only counted, so one
// broken invariant does not bury the log.
func (m *model) errorf(format string, args ...any) {
	switch n := m.nerr.Add(1); {
	case n <= 20:
		m.t.Errorf(format, args...)
	case n == 21:
		m.t.Errorf("... further violations not shown")
	}
}

type nsKey struct{ ns, key string }

func newModel(t *testing.T) *model {
	return &model{t: t, kv: map[nsKey]*kvState{}, ctr: map[nsKey]*ctrState{}, seqIDs: map[nsKey]map[uint64]bool{}}
}

// frozen is a copy of the acknowledged part of a model at one moment.
type frozen struct {
	kv     map[nsKey]int64
	ctr    map[nsKey]int64
	seqIDs map[nsKey]map[uint64]bool
}

func (m *model) freeze() frozen {
	m.mu.Lock()
	defer m.mu.Unlock()
	f := frozen{kv: map[nsKey]int64{}, ctr: map[nsKey]int64{}, seqIDs: map[nsKey]map[uint64]bool{}}
	for k, s := range m.kv {
		if s.hasAck {
			f.kv[k] = s.acked
		}
	}
	for k, c := range m.ctr {
		f.ctr[k] = c.acked
	}
	for k, ids := range m.seqIDs {
		f.seqIDs[k] = map[uint64]bool{}
		for id := range ids {
			f.seqIDs[k][id] = true
		}
	}
	return f
}

// writer is one sequential client. Its state lives across server restarts.
type writer struct {
	id   int
	ns   string
	next int64 // next value to write; values only grow
	rng  *rand.Rand
	pad  string // if set, every KV write also stores this under pad_<id>
	// onlyKV restricts the workload to KV writes (with the padding).
	onlyKV bool
	// versioned makes every request write a key and read it back, so its
	// reply tells the namespace revision it was applied at.
	versioned bool
}

func newWriters(n int, nsPrefix string, nss int, seed uint64) []*writer {
	ws := make([]*writer, n)
	for i := range ws {
		ws[i] = &writer{id: i, ns: fmt.Sprintf("%s-%d", nsPrefix, i%nss), next: 1, rng: rand.New(rand.NewPCG(seed, uint64(i)))}
	}
	return ws
}

// outcome is what one request got.
type outcome struct {
	sent, recv time.Time
	status     int // 0: no reply
	code       string
	err        error
	kv         nsKey  // the key written, if any
	val        int64  // and its value
	version    uint64 // the key's version in the reply (versioned writers)
}

func (o outcome) ok() bool { return o.err == nil && o.status >= 200 && o.status < 300 }

// step sends one random write and records it in the model.
func (m *model) step(ctx context.Context, s *server, w *writer) outcome {
	var kvKey, ctrKey nsKey
	var val int64
	body := map[string]any{}
	op := w.rng.IntN(4)
	if w.onlyKV {
		op = 0
	} else if w.versioned {
		op = []int{0, 3}[op%2]
	}
	if op == 0 || op == 3 {
		val = w.next
		w.next++
		kvKey = nsKey{w.ns, fmt.Sprintf("k_%d_%d", w.id, val%32)}
		set := []map[string]any{{"Key": kvKey.key, "Value": val}}
		if w.pad != "" {
			set = append(set, map[string]any{"Key": fmt.Sprintf("pad_%d", w.id), "Value": w.pad})
		}
		body["KVSet"] = set
		if w.versioned {
			body["KVGet"] = []string{kvKey.key}
		}
	}
	if op == 1 || op == 3 {
		ctrKey = nsKey{w.ns, fmt.Sprintf("cnt_%d", w.id)}
		body["Atomic"] = []map[string]any{{"Key": ctrKey.key, "Add": 1}}
	}
	count := 0
	if op == 2 {
		count = 1 + w.rng.IntN(3)
		body["Seq"] = []map[string]any{{"Key": "ids", "Count": count}}
	}

	m.mu.Lock()
	if kvKey.key != "" {
		st := m.kv[kvKey]
		if st == nil {
			st = &kvState{}
			m.kv[kvKey] = st
		}
		st.pending = append(st.pending, val)
	}
	if ctrKey.key != "" {
		c := m.ctr[ctrKey]
		if c == nil {
			c = &ctrState{}
			m.ctr[ctrKey] = c
		}
		c.attempted++
	}
	m.mu.Unlock()

	o := outcome{sent: time.Now(), kv: kvKey, val: val}
	var r dbResp
	o.status, r, o.err = s.db(ctx, w.ns, body)
	o.recv, o.code = time.Now(), r.Code
	if !o.ok() {
		return o
	}
	if w.versioned && kvKey.key != "" {
		if len(r.KV) != 1 || string(r.KV[0].Value) != strconv.FormatInt(val, 10) {
			m.errorf("%s/%s: KVGet after KVSet %d in one request replied %+v", kvKey.ns, kvKey.key, val, r.KV)
		} else {
			o.version = r.KV[0].Version
		}
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	m.acks++
	if kvKey.key != "" {
		st := m.kv[kvKey]
		st.acked, st.hasAck = val, true
		st.pending = prune(st.pending, val)
	}
	if ctrKey.key != "" {
		c := m.ctr[ctrKey]
		c.acked++
		if len(r.Atomic) != 1 || r.Atomic[0].Value < c.acked || r.Atomic[0].Value > c.attempted {
			m.errorf("%s/%s: Add 1 replied %+v; the counter must be within [%d, %d] (adds acknowledged, adds sent)", ctrKey.ns, ctrKey.key, r.Atomic, c.acked, c.attempted)
		}
	}
	if count > 0 {
		k := nsKey{w.ns, "ids"}
		if len(r.Seq) != 1 || r.Seq[0].Last-r.Seq[0].First+1 != uint64(count) || r.Seq[0].First == 0 {
			m.errorf("%s: Seq Count %d replied %+v", w.ns, count, r.Seq)
			return o
		}
		ids := m.seqIDs[k]
		if ids == nil {
			ids = map[uint64]bool{}
			m.seqIDs[k] = ids
		}
		for id := r.Seq[0].First; id <= r.Seq[0].Last; id++ {
			if ids[id] {
				m.errorf("%s/ids: id %d handed out twice (reply %+v)", w.ns, id, r.Seq[0])
			}
			ids[id] = true
		}
	}
	return o
}

// prune drops the pending values an acknowledged value v supersedes.
func prune(pending []int64, v int64) []int64 {
	out := pending[:0]
	for _, p := range pending {
		if p > v {
			out = append(out, p)
		}
	}
	return out
}

// run makes every writer send requests until it gets no reply (the
// server is gone) or stop is closed. It returns once all have stopped.
func (m *model) run(s *server, ws []*writer, stop <-chan struct{}) {
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				o := m.step(context.Background(), s, w)
				if o.err != nil {
					return
				}
				if !o.ok() {
					m.errorf("writer %d: unexpected reply %d %s", w.id, o.status, o.code)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// readState reads the given keys and counters of one namespace.
func readState(t *testing.T, s *server, ns string, keys, ctrs []string) (map[string]*int64, map[string]int64) {
	t.Helper()
	vals := map[string]*int64{}
	for i := 0; i < len(keys); i += 500 {
		batch := keys[i:min(len(keys), i+500)]
		r := s.mustDB(ns, map[string]any{"KVGet": batch}, http.StatusOK)
		if len(r.KV) != len(batch) {
			t.Fatalf("%s: KVGet of %d keys returned %d", ns, len(batch), len(r.KV))
		}
		for j, kv := range r.KV {
			if kv.Key != batch[j] {
				t.Fatalf("%s: KVGet returned key %q at position %d, want %q", ns, kv.Key, j, batch[j])
			}
			if string(kv.Value) == "null" || len(kv.Value) == 0 {
				vals[kv.Key] = nil
				continue
			}
			v, err := strconv.ParseInt(string(kv.Value), 10, 64)
			if err != nil {
				t.Fatalf("%s/%s: value %s is not what any client wrote", ns, kv.Key, kv.Value)
			}
			vals[kv.Key] = &v
		}
	}
	counters := map[string]int64{}
	for i := 0; i < len(ctrs); i += 500 {
		batch := ctrs[i:min(len(ctrs), i+500)]
		var ops []map[string]any
		for _, c := range batch {
			ops = append(ops, map[string]any{"Key": c})
		}
		r := s.mustDB(ns, map[string]any{"Atomic": ops}, http.StatusOK)
		if len(r.Atomic) != len(batch) {
			t.Fatalf("%s: reading %d counters returned %d", ns, len(batch), len(r.Atomic))
		}
		for _, a := range r.Atomic {
			counters[a.Key] = a.Value
		}
	}
	return vals, counters
}

// verify checks a restarted server against the model: every acknowledged
// write is there, nothing older than it, nothing that was never sent. Then
// the model takes what it read as the new truth (a read is acknowledged too).
func (m *model) verify(s *server) {
	m.t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	byNS := keysByNS(m.kv, m.ctr)
	nss := make([]string, 0, len(byNS))
	for ns := range byNS {
		nss = append(nss, ns)
	}
	sort.Strings(nss)
	lost := 0
	for _, ns := range nss {
		vals, ctrs := readState(m.t, s, ns, byNS[ns][0], byNS[ns][1])
		for key, got := range vals {
			st := m.kv[nsKey{ns, key}]
			switch {
			case got == nil && st.hasAck:
				lost++
				if lost <= 10 {
					m.t.Errorf("%s/%s: acknowledged value %d is missing after the restart", ns, key, st.acked)
				}
			case got == nil:
				// never acknowledged, and what was attempted did not apply
			case st.hasAck && *got == st.acked:
			case contains(st.pending, *got) && (!st.hasAck || *got > st.acked):
				st.acked, st.hasAck = *got, true // an unacknowledged write that applied
			default:
				lost++
				if lost <= 10 {
					m.t.Errorf("%s/%s = %d after the restart; last acknowledged %d (acked=%v), unacknowledged attempts since %v",
						ns, key, *got, st.acked, st.hasAck, st.pending)
				}
			}
			st.pending = nil
		}
		for key, got := range ctrs {
			c := m.ctr[nsKey{ns, key}]
			if got < c.acked || got > c.attempted {
				lost++
				if lost <= 10 {
					m.t.Errorf("%s/%s = %d after the restart; want within [%d acknowledged adds, %d adds sent]", ns, key, got, c.acked, c.attempted)
				}
			}
			c.acked, c.attempted = got, got
		}
	}
	if lost > 10 {
		m.t.Errorf("... %d violations in all", lost)
	}
}

// keysByNS groups the KV keys and counter keys a model tracks by
// namespace: [0] the KV keys, [1] the counters.
func keysByNS[V, W any](kv map[nsKey]V, ctr map[nsKey]W) map[string][2][]string {
	byNS := map[string][2][]string{}
	for k := range kv {
		e := byNS[k.ns]
		e[0] = append(e[0], k.key)
		byNS[k.ns] = e
	}
	for k := range ctr {
		e := byNS[k.ns]
		e[1] = append(e[1], k.key)
		byNS[k.ns] = e
	}
	return byNS
}

// verifyFrozen checks that a server holds everything f recorded as
// acknowledged (values at least as new; counters at least as high; no Seq
// id of f handed out again).
func (m *model) verifyFrozen(s *server, f frozen) {
	m.t.Helper()
	byNS := keysByNS(f.kv, f.ctr)
	bad := 0
	for ns, e := range byNS {
		vals, ctrs := readState(m.t, s, ns, e[0], e[1])
		for key, got := range vals {
			if want := f.kv[nsKey{ns, key}]; got == nil || *got < want {
				if bad++; bad <= 10 {
					m.t.Errorf("%s/%s: want a value >= %d (acknowledged before the save), got %v", ns, key, want, deref(got))
				}
			}
		}
		for key, got := range ctrs {
			if want := f.ctr[nsKey{ns, key}]; got < want {
				if bad++; bad <= 10 {
					m.t.Errorf("%s/%s = %d: want >= %d (adds acknowledged before the save)", ns, key, got, want)
				}
			}
		}
	}
	for k, ids := range f.seqIDs {
		r := s.mustDB(k.ns, map[string]any{"Seq": map[string]any{"Key": k.key, "Count": 5}}, http.StatusOK)
		for id := r.Seq[0].First; id <= r.Seq[0].Last; id++ {
			if ids[id] {
				m.t.Errorf("%s/%s: id %d handed out again after the restore", k.ns, k.key, id)
			}
		}
	}
}

func deref(p *int64) any {
	if p == nil {
		return "missing"
	}
	return *p
}

func contains(s []int64, v int64) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// handles checks that lock handles strictly increase over a server's life.
type handles struct {
	mu  sync.Mutex
	max uint64
	n   int
	bad int
}

func (h *handles) see(t *testing.T, hd uint64, what string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if hd <= h.max {
		if h.bad++; h.bad <= 5 {
			t.Errorf("%s: handle %d is not above %d, the highest handle seen before", what, hd, h.max)
		}
	}
	h.max = max(h.max, hd)
	h.n++
}

func (h *handles) highest() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.max
}

// churn acquires and releases one lock in a loop until the server is gone
// or stop is closed, checking that each new handle is above every earlier one.
// ops, if not nil, counts the requests that got a reply.
func churn(t *testing.T, s *server, h *handles, ns, lock string, stop <-chan struct{}, ops *atomic.Int64) {
	ctx := context.Background()
	for {
		select {
		case <-stop:
			return
		default:
		}
		st, r, err := s.db(ctx, ns, map[string]any{"LockID": lock, "LockDurMs": 600, "LockWaitMs": 1000})
		if err != nil {
			return
		}
		count(ops)
		if st == http.StatusConflict && r.Code == "lock_timeout" {
			continue // held by a grant we never saw, from before a crash
		}
		if st != http.StatusOK {
			t.Errorf("churn %s/%s: acquire replied %d %s %s", ns, lock, st, r.Code, r.Message)
			return
		}
		h.see(t, r.Lock, "churn "+lock)
		st, r, err = s.db(ctx, ns, map[string]any{"UnlockID": lock, "Unlock": r.Lock})
		if err != nil {
			return
		}
		count(ops)
		if st != http.StatusOK && r.Code != "lock_lost" { // lock_lost: it expired meanwhile
			t.Errorf("churn %s/%s: unlock replied %d %s %s", ns, lock, st, r.Code, r.Message)
			return
		}
	}
}

func count(n *atomic.Int64) {
	if n != nil {
		n.Add(1)
	}
}

// summary is a short description of a model for logs.
func (m *model) summary() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	ids := 0
	for _, s := range m.seqIDs {
		ids += len(s)
	}
	return strings.Join([]string{
		fmt.Sprintf("%d acknowledged writes", m.acks),
		fmt.Sprintf("%d keys", len(m.kv)),
		fmt.Sprintf("%d counters", len(m.ctr)),
		fmt.Sprintf("%d seq ids", ids),
	}, ", ")
}
