package main

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Go's scavenger keeps the heap's free pages mapped up to the next GC
// goal, twice the live heap at the default GOGC: after a burst of writes
// the process keeps that headroom resident for as long as it stays idle,
// 296 MiB for 1,000,000 keys of 64 bytes whose live heap is 150 MiB.
// idleRelease gives it back once the process goes quiet.

// memSample is what one look at the runtime's memory reads.
type memSample struct {
	allocs   uint64 // bytes allocated since start
	retained uint64 // heap bytes mapped and not returned to the OS
	live     uint64 // live heap at the last GC
}

var memMetrics = []string{
	"/gc/heap/allocs:bytes",
	"/memory/classes/heap/objects:bytes",
	"/memory/classes/heap/unused:bytes",
	"/memory/classes/heap/free:bytes",
	"/gc/heap/live:bytes",
}

func readMem(s []metrics.Sample) memSample {
	metrics.Read(s)
	v := func(i int) uint64 {
		if s[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return s[i].Value.Uint64()
	}
	return memSample{allocs: v(0), retained: v(1) + v(2) + v(3), live: v(4)}
}

// idleReleaser decides when to release: the process allocated less than
// quietBytes since the last look (idle), it keeps more than slack(live)
// beyond its live heap, and it allocated at least that much since it
// last released (so a process whose fragmentation alone exceeds the slack
// does not collect over and over while idle).
type idleReleaser struct {
	lastAllocs    uint64
	releaseAllocs uint64 // allocs when it last released
}

const (
	quietBytes  = 1 << 20
	minSlack    = 16 << 20
	slackShare  = 4 // a quarter of the live heap
	releaseTick = 500 * time.Millisecond
)

func slack(live uint64) uint64 { return max(live/slackShare, minSlack) }

func (r *idleReleaser) shouldRelease(m memSample) bool {
	quiet := m.allocs-r.lastAllocs < quietBytes
	r.lastAllocs = m.allocs
	if !quiet || m.retained < m.live+slack(m.live) || m.allocs-r.releaseAllocs < slack(m.live) {
		return false
	}
	r.releaseAllocs = m.allocs
	return true
}

// releaseIdleMemory looks every releaseTick until ctx ends, and returns
// the free heap to the OS (debug.FreeOSMemory: one GC, then every free
// page) when shouldRelease says so.
func releaseIdleMemory(ctx context.Context) {
	s := make([]metrics.Sample, len(memMetrics))
	for i, name := range memMetrics {
		s[i].Name = name
	}
	var r idleReleaser
	t := time.NewTicker(releaseTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if r.shouldRelease(readMem(s)) {
				debug.FreeOSMemory()
			}
		}
	}
}
