// Package testheap measures the live heap for tests that hold what a
// stored key, a parked request or a closed log segment costs in memory.
package testheap

import "runtime"

// Live is the heap in live objects after two full collections (the
// second finishes what finalizers and sync.Pool's victim cache left to
// the first).
func Live() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
