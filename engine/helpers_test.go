package engine

import (
	"testing"
)

func ptr[T any](v T) *T { return &v }

// openTest opens an engine on dir and closes it at cleanup.
func openTest(t testing.TB, dir string, shards int) *Engine {
	t.Helper()
	e, err := Open(Config{Dir: dir, Shards: shards})
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// dump is a plain copy of every namespace's durable state, read after the
// loops have stopped (Close), for comparisons.
type dump struct {
	kv       map[string]map[string]kvDump
	counters map[string]map[string]int64
	seqs     map[string]map[string]uint64
	locks    map[string]map[string]uint64 // held locks: handle
	revs     map[string]uint64
}

type kvDump struct {
	value   string
	version uint64
}

func dumpState(e *Engine) dump {
	d := dump{
		kv: map[string]map[string]kvDump{}, counters: map[string]map[string]int64{},
		seqs: map[string]map[string]uint64{}, locks: map[string]map[string]uint64{}, revs: map[string]uint64{},
	}
	now := nowMs()
	for _, s := range e.shards {
		for name, ns := range s.nss {
			kv := map[string]kvDump{}
			ns.kv.Scan(func(v kvEntry) bool { kv[v.key()] = kvDump{string(v.value()), v.version}; return true })
			ctr := map[string]int64{}
			ns.counters.Scan(func(k string, v int64) bool { ctr[k] = v; return true })
			seq := map[string]uint64{}
			ns.seqs.Scan(func(k string, v uint64) bool { seq[k] = v; return true })
			locks := map[string]uint64{}
			for k, l := range ns.locks {
				if l.heldAt(now) {
					locks[k] = l.handle
				}
			}
			if len(kv)+len(ctr)+len(seq)+len(locks) == 0 && ns.rev == 0 {
				continue
			}
			d.kv[name], d.counters[name], d.seqs[name], d.locks[name], d.revs[name] = kv, ctr, seq, locks, ns.rev
		}
	}
	return d
}
