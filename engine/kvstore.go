package engine

import (
	"math"
	"unsafe"

	"github.com/tidwall/btree"
)

// kvEntry is one stored key: the key's bytes and then the value's, in a
// single allocation that data points to, and the version. A key costs
// that allocation plus this 24-byte item in the B-tree's node arrays,
// where a string key and a []byte value would cost two allocations and a
// 48-byte item (tidwall/btree leaves nodes about half full when keys
// arrive in order, so the item's width counts twice). The bytes are never
// changed after newKVEntry, so key and value may be shared off the loop
// (replies, snapshot copies, admin pages) without copying.
type kvEntry struct {
	data    *byte
	keyLen  uint32
	valLen  uint32
	version uint64
}

// maxKVPart is the longest key or value a kvEntry holds. The body limit
// keeps real ones far below it; one above would be a bug, not input.
const maxKVPart = math.MaxUint32

func newKVEntry(key string, value []byte, version uint64) kvEntry {
	if len(key) > maxKVPart || len(value) > maxKVPart {
		panic("engine: a key or value over 4 GiB reached the store")
	}
	buf := make([]byte, len(key)+len(value))
	copy(buf, key)
	copy(buf[len(key):], value)
	return kvEntry{data: unsafe.SliceData(buf), keyLen: uint32(len(key)), valLen: uint32(len(value)), version: version}
}

// kvProbe is an entry to search the tree by, pointing at key's own bytes.
func kvProbe(key string) kvEntry {
	return kvEntry{data: unsafe.StringData(key), keyLen: uint32(len(key))}
}

func (e kvEntry) key() string { return unsafe.String(e.data, e.keyLen) }

// value is the stored value, with no spare capacity, so an append by a
// reader copies rather than writes into the entry.
func (e kvEntry) value() []byte {
	if e.valLen == 0 {
		return []byte{}
	}
	return unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(e.data), e.keyLen)), e.valLen)
}

func kvLess(a, b kvEntry) bool { return a.key() < b.key() }

// kvTree is a namespace's keys in key order.
type kvTree = btree.BTreeG[kvEntry]

func newKVTree() *kvTree {
	return btree.NewBTreeGOptions(kvLess, btree.Options{NoLocks: true})
}

// The accessors take a nil tree as empty: the shard's blank namespace,
// which stands in for missing ones, has none.

func (ns *namespace) kvGet(key string) (kvEntry, bool) {
	if ns.kv == nil {
		return kvEntry{}, false
	}
	return ns.kv.Get(kvProbe(key))
}

func (ns *namespace) kvLen() int {
	if ns.kv == nil {
		return 0
	}
	return ns.kv.Len()
}

func (ns *namespace) kvPut(key string, value []byte, version uint64) {
	ns.kv.Set(newKVEntry(key, value, version))
}

func (ns *namespace) kvDelete(key string) { ns.kv.Delete(kvProbe(key)) }
