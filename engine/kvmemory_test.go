package engine

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/latchkv/latch/internal/testheap"
)

// TestKVBytesPerKey holds what one stored key costs the heap: 100,000
// keys of 8 bytes with 66-byte values (a 64-character JSON string, the
// memory-per-key row's shape), written 100 a request through the same
// applyEffects as the live path and replay, each key and value a separate
// allocation as the decoder makes them. The store must not keep those
// decoder allocations, nor node arrays of wide items.
func TestKVBytesPerKey(t *testing.T) {
	const n, batch = 100_000, 100
	value := []byte(fmt.Sprintf(`"%064d"`, 0))
	s := &shard{}
	before := testheap.Live()
	ns := newNamespace("n")
	for first := 0; first < n; first += batch {
		effs := make([]effect, 0, batch)
		for k := first; k < first+batch; k++ {
			effs = append(effs, effect{kind: effPut, key: fmt.Sprintf("k%07d", k), value: append([]byte(nil), value...), num: ns.rev + 1})
		}
		s.applyEffects(ns, effs)
	}
	perKey := float64(testheap.Live()-before) / n
	runtime.KeepAlive(ns)
	t.Logf("%.1f bytes a key (key %d B, value %d B)", perKey, len("k0000000"), len(value))
	// Key and value bytes in one 80-byte size class, plus the B-tree's
	// share of its node arrays.
	if perKey > 140 {
		t.Fatalf("a stored key costs %.1f bytes of heap; at most 140 expected (key and value in one allocation, a compact B-tree item)", perKey)
	}
	if got, ok := ns.kvGet("k0000042"); !ok || string(got.value()) != string(value) || got.version != 1 {
		t.Fatalf("k0000042 reads back as %q version %d (found %v)", got.value(), got.version, ok)
	}
}
