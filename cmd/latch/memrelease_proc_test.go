package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rssKiB is a process's resident set now (VmRSS).
func rssKiB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no VmRSS in /proc/PID/status")
	return 0
}

// TestIdleServerReturnsHeap writes 300,000 keys of 64 bytes and waits for
// the idle server's resident set to fall below three quarters of what it
// was right after the writes: the garbage of the writes and the heap's
// growth headroom go back to the OS once the server is quiet. Go's
// scavenger alone keeps all of it (up to the next GC goal) mapped.
func TestIdleServerReturnsHeap(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("needs /proc")
	}
	s := startServer(t, t.TempDir(), childEnv(), "--snapshot-every-records", "-1")
	defer s.stop()
	value := strings.Repeat("v", 64)
	for first := 0; first < 300_000; first += 100 {
		sets := make([]map[string]any, 0, 100)
		for k := first; k < first+100; k++ {
			sets = append(sets, map[string]any{"Key": fmt.Sprintf("k%07d", k), "Value": value})
		}
		s.mustDB(fmt.Sprintf("n%d", first%10), map[string]any{"KVSet": sets}, 200)
	}
	s.tr.CloseIdleConnections()
	pid := s.cmd.Process.Pid
	after := rssKiB(t, pid)
	deadline := time.Now().Add(hangGuard)
	for {
		now := rssKiB(t, pid)
		if now < after*3/4 {
			t.Logf("RSS %d KiB after the writes, %d KiB once idle", after, now)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("RSS still %d KiB %s after the writes (%d KiB right after them); the idle server must return its free heap to the OS", now, hangGuard, after)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
