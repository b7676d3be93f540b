package main

// Fencing across state that goes back in time: a backup restored after its
// server went on issuing handles must never issue one of them again.

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/latchkv/latch/engine"
)

// TestRestoreNeverReissuesHandles: lock X (handle h1), save a backup,
// unlock, lock X, Y, Z (three more handles), stop; restore the backup into
// a new directory and serve it: the next grant is above every handle the
// old server issued, not h1+1 again.
func TestRestoreNeverReissuesHandles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServer(t, dir, nil)
	h1 := s.mustDB("fence", map[string]any{"LockID": "X", "LockDur": 60}, 200).Lock
	backup := filepath.Join(t.TempDir(), "backup.snap")
	if code, _, stderr := runLatch(t, nil, "snapshot", "save", "--addr", s.URL, "--out", backup); code != 0 {
		t.Fatalf("snapshot save: exit %d:\n%s", code, stderr)
	}
	s.mustDB("fence", map[string]any{"UnlockID": "X", "Unlock": h1}, 200)
	var last uint64
	for _, k := range []string{"X", "Y", "Z"} {
		last = s.mustDB("fence", map[string]any{"LockID": k, "LockDur": 60}, 200).Lock
	}
	s.stop()
	if last <= h1 {
		t.Fatalf("handles did not increase on the old server: %d then %d", h1, last)
	}

	before := time.Now()
	restored := filepath.Join(t.TempDir(), "restored")
	if code, _, stderr := runLatch(t, nil, "snapshot", "restore", "--in", backup, "--data-dir", restored); code != 0 {
		t.Fatalf("snapshot restore: exit %d:\n%s", code, stderr)
	}
	r := startServer(t, restored, nil)
	// X is still held by h1 in the backup: wait out nothing, take W.
	got := r.mustDB("fence", map[string]any{"LockID": "W", "LockDur": 60}, 200).Lock
	if got <= last {
		t.Fatalf("after restoring the backup, a grant got handle %d: the old server had already issued every handle up to %d (fencing broken)", got, last)
	}
	if got > engine.MaxSafeHandle {
		t.Errorf("handle %d is above 2^53-1: JavaScript clients cannot hold it exactly", got)
	}
	if floor := engine.TimeFloor(before); got <= floor {
		t.Errorf("handle %d is not above the time floor at restore (%d)", got, floor)
	}
	// The floor is durable: after a restart with no grant logged in
	// between, handles stay above it.
	r.stop()
	r = startServer(t, restored, nil)
	if again := r.mustDB("fence", map[string]any{"LockID": "V", "LockDur": 60}, 200).Lock; again <= got {
		t.Errorf("after a restart, handle %d is not above %d", again, got)
	}
	r.stop()
	b, err := os.ReadFile(filepath.Join(restored, engine.HandleFloorFile))
	if err != nil {
		t.Fatalf("the restored directory has no %s: %v", engine.HandleFloorFile, err)
	}
	if _, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err != nil {
		t.Errorf("%s holds %q, not a number", engine.HandleFloorFile, b)
	}
}
