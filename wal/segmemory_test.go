package wal

import (
	"testing"

	"github.com/latchkv/latch/internal/testheap"
)

// TestClosedSegmentsLeaveMemory holds that a log keeps no closed segment
// in memory: it never reads one back, yet tidwall/wal keeps the last two
// it closed cached. After 5.5 segments of records the heap may hold the
// tail segment's buffer, not the segments before it.
func TestClosedSegmentsLeaveMemory(t *testing.T) {
	const seg = 4 << 20
	before := testheap.Live()
	l, _ := mustOpen(t, t.TempDir(), Options{SegmentSize: seg})
	defer mustClose(t, l)
	payload := make([]byte, 8<<10)
	var last *Ticket
	for written := 0; written < seg*11/2; written += len(payload) {
		last = l.Append(payload)
	}
	if err := last.Wait(); err != nil {
		t.Fatal(err)
	}
	held := int64(testheap.Live()) - int64(before)
	t.Logf("log holds %.1f MiB with %d MiB segments", float64(held)/(1<<20), seg>>20)
	if held > seg*3/2 {
		t.Fatalf("the log holds %.1f MiB of heap after writing 5.5 segments of %d MiB; closed segments must not stay cached (at most 1.5 segments: the tail's buffer)", float64(held)/(1<<20), seg>>20)
	}
}
