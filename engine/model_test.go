package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"strconv"
	"testing"
)

// model is the plain-map reference latch must agree with. It implements the
// order of ops documented in doc.go, for requests that never wait.
type model struct {
	rev      map[string]uint64
	kv       map[string]map[string]kvDump
	counters map[string]map[string]int64
	seqs     map[string]map[string]uint64
	locks    map[string]map[string]uint64
	idem     map[string]map[string]bool
	handle   uint64
}

func newModel() *model {
	return &model{rev: map[string]uint64{}, kv: map[string]map[string]kvDump{}, counters: map[string]map[string]int64{},
		seqs: map[string]map[string]uint64{}, locks: map[string]map[string]uint64{}, idem: map[string]map[string]bool{}}
}

func sub[V any](m map[string]map[string]V, ns string) map[string]V {
	if m[ns] == nil {
		m[ns] = map[string]V{}
	}
	return m[ns]
}

// apply returns the expected response or the expected error kind.
func (m *model) apply(ns string, r *Request) (*Response, error) {
	for _, id := range r.IdempotencyIDs {
		if sub(m.idem, ns)[id] {
			return nil, ErrDuplicate
		}
	}
	locks := sub(m.locks, ns)
	extend := r.LockID != "" && r.LockID == r.UnlockID
	if r.UnlockID != "" && (locks[r.UnlockID] == 0 || locks[r.UnlockID] != r.Unlock) {
		return nil, ErrLockLost
	}
	kv := cloneMap(sub(m.kv, ns))
	ctr := cloneMap(sub(m.counters, ns))
	seq := cloneMap(sub(m.seqs, ns))
	rev := m.rev[ns]
	resp := &Response{}
	if len(r.KVSet) > 0 {
		rev++
		for _, s := range r.KVSet {
			if s.Delete {
				delete(kv, s.Key)
			} else {
				kv[s.Key] = kvDump{string(s.Value), rev}
			}
		}
	}
	for _, a := range r.Atomic {
		cur := ctr[a.Key]
		if a.IfEq != nil && *a.IfEq != cur {
			return nil, ErrPreconditionFailed
		}
		if a.Add != nil {
			cur += *a.Add
		} else if a.Set != nil {
			cur = *a.Set
		}
		if a.Add != nil || a.Set != nil {
			ctr[a.Key] = cur
			if cur == 0 {
				delete(ctr, a.Key) // the engine stores no counter at 0
			}
		}
		resp.Atomic = append(resp.Atomic, AtomicResult{Key: a.Key, Value: cur})
	}
	for _, s := range r.Seq {
		first := seq[s.Key]
		if first == 0 {
			first = 1
		}
		seq[s.Key] = first + s.Count
		resp.Seq = append(resp.Seq, SeqResult{Key: s.Key, First: first, Last: first + s.Count - 1})
	}
	newLocks := cloneMap(locks)
	if r.LockID != "" {
		switch {
		case extend:
			resp.Lock = r.Unlock
		case locks[r.LockID] != 0:
			return nil, ErrLockTimeout
		default:
			resp.Lock = m.handle + 1
		}
		newLocks[r.LockID] = resp.Lock
	}
	if r.UnlockID != "" && !extend {
		delete(newLocks, r.UnlockID)
	}
	for _, k := range r.KVGet {
		v, ok := kv[k]
		item := KVItem{Key: k}
		if ok {
			item.Value, item.Version = []byte(v.value), v.version
		}
		resp.KV = append(resp.KV, item)
	}
	// Everything passed: commit.
	if resp.Lock > m.handle {
		m.handle = resp.Lock
	}
	m.kv[ns], m.counters[ns], m.seqs[ns], m.locks[ns], m.rev[ns] = kv, ctr, seq, newLocks, rev
	for _, id := range r.IdempotencyIDs {
		sub(m.idem, ns)[id] = true
	}
	return resp, nil
}

func cloneMap[V any](m map[string]V) map[string]V {
	c := make(map[string]V, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// randomRequest builds a request over a small key space so ops collide.
func randomRequest(rng *rand.Rand, m *model, ns string) *Request {
	key := func(p string) string { return p + strconv.Itoa(rng.IntN(4)) }
	r := &Request{}
	for i := rng.IntN(3); i > 0; i-- {
		if rng.IntN(5) == 0 {
			r.KVSet = append(r.KVSet, KVSet{Key: key("k"), Delete: true})
		} else {
			r.KVSet = append(r.KVSet, KVSet{Key: key("k"), Value: []byte(fmt.Sprintf(`{"v": %d}`, rng.IntN(1000)))})
		}
	}
	for i := rng.IntN(3); i > 0; i-- {
		r.KVGet = append(r.KVGet, key("k"))
	}
	for i := rng.IntN(3); i > 0; i-- {
		a := AtomicOp{Key: key("c")}
		switch rng.IntN(4) {
		case 0:
			a.Add = ptr(int64(rng.IntN(10) - 3))
		case 1:
			a.Set = ptr(int64(rng.IntN(5)))
		case 2:
			a.Add = ptr(int64(1))
			a.IfEq = ptr(int64(rng.IntN(3)))
		}
		r.Atomic = append(r.Atomic, a)
	}
	if rng.IntN(3) == 0 {
		r.Seq = append(r.Seq, SeqOp{Key: key("s"), Count: uint64(1 + rng.IntN(5))})
	}
	if rng.IntN(4) == 0 {
		r.IdempotencyIDs = []string{key("id") + strconv.Itoa(rng.IntN(20))}
	}
	switch rng.IntN(5) {
	case 0: // acquire (never waits in this test)
		r.LockID, r.LockDurMs = key("L"), 3_600_000
	case 1: // unlock, usually with the right handle
		k := key("L")
		r.UnlockID, r.Unlock = k, m.locks[ns][k]
		if r.Unlock == 0 || rng.IntN(4) == 0 {
			r.Unlock = uint64(1 + rng.IntN(50))
		}
	case 2: // extend
		k := key("L")
		if h := m.locks[ns][k]; h != 0 {
			r.LockID, r.UnlockID, r.Unlock, r.LockDurMs = k, k, h, 3_600_000
		}
	}
	return r
}

func sameResponse(a, b *Response) bool {
	norm := func(r *Response) Response {
		c := *r
		c.TillMs = 0
		for i := range c.KV {
			if len(c.KV[i].Value) == 0 {
				c.KV[i].Value = nil
			}
		}
		return c
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

// TestModelRandom runs random requests against the engine and the model,
// with restarts in between, and requires identical replies and state.
// LATCH_MODEL_SEED replays a run; LATCH_MODEL_STEPS makes it longer.
func TestModelRandom(t *testing.T) {
	seed := uint64(rand.Int64())
	if s := os.Getenv("LATCH_MODEL_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	steps := 3000
	if s := os.Getenv("LATCH_MODEL_STEPS"); s != "" {
		steps, _ = strconv.Atoi(s)
	}
	t.Logf("seed %d (LATCH_MODEL_SEED=%d to replay)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	dir := t.TempDir()
	m := newModel()
	nss := []string{"a", "b", "c", "d", "e"}
	e, err := Open(Config{Dir: dir, Shards: 3, SegmentSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	for step := 0; step < steps; step++ {
		if step > 0 && step%100 == 0 && rng.IntN(2) == 0 {
			if _, err := e.Snapshot(); err != nil {
				t.Fatalf("seed %d step %d: snapshot: %v", seed, step, err)
			}
		}
		if step > 0 && step%500 == 0 {
			want := dumpStateAfterClose(t, e)
			e, err = Open(Config{Dir: dir, Shards: 1 + rng.IntN(4), SegmentSize: 4096})
			if err != nil {
				t.Fatalf("seed %d step %d: reopen: %v", seed, step, err)
			}
			if got := dumpStateAfterClose(t, e); !reflect.DeepEqual(got, want) {
				t.Fatalf("seed %d step %d: state after replay differs\n got %+v\nwant %+v", seed, step, got, want)
			}
			e, _ = Open(Config{Dir: dir, Shards: 2, SegmentSize: 4096})
			if e.LastHandle() < m.handle {
				t.Fatalf("seed %d: handle counter went back: %d < %d", seed, e.LastHandle(), m.handle)
			}
		}
		ns := nss[rng.IntN(len(nss))]
		req := randomRequest(rng, m, ns)
		wantResp, wantErr := m.apply(ns, req)
		gotResp, gotErr := e.Do(context.Background(), ns, req)
		if wantErr != nil || gotErr != nil {
			if !errors.Is(gotErr, wantErr) || wantErr == nil {
				t.Fatalf("seed %d step %d ns %s req %+v:\n got err %v\nwant err %v", seed, step, ns, req, gotErr, wantErr)
			}
			continue
		}
		if !sameResponse(gotResp, wantResp) {
			t.Fatalf("seed %d step %d ns %s req %+v:\n got %+v\nwant %+v", seed, step, ns, req, gotResp, wantResp)
		}
	}
	got := dumpStateAfterClose(t, e)
	for _, ns := range nss {
		if !reflect.DeepEqual(nonNil(got.kv[ns]), nonNil(m.kv[ns])) || !reflect.DeepEqual(nonNil(got.counters[ns]), nonNil(m.counters[ns])) {
			t.Fatalf("seed %d ns %s: final state differs from the model\n got %+v %+v\nwant %+v %+v", seed, ns, got.kv[ns], got.counters[ns], m.kv[ns], m.counters[ns])
		}
	}
}

func nonNil[V any](m map[string]V) map[string]V {
	if m == nil {
		return map[string]V{}
	}
	return m
}

func dumpStateAfterClose(t *testing.T, e *Engine) dump {
	t.Helper()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	return dumpState(e)
}
