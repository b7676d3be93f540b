package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// recoverFill opens dir with small segments and, rounds times, writes n
// keys and then takes a snapshot (but not after the last round); then it
// takes a lock and closes. It returns the lock's handle.
func recoverFill(t *testing.T, dir string, n, rounds, keep int) uint64 {
	t.Helper()
	e, err := Open(Config{Dir: dir, Shards: 2, SegmentSize: 4096, SnapshotEveryRecords: -1, SnapshotKeep: keep})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for r := 0; r < rounds; r++ {
		for i := 0; i < n; i++ {
			req := &Request{KVSet: []KVSet{{Key: fmt.Sprintf("k%d-%04d", r, i), Value: []byte("v")}}}
			if _, err := e.Do(ctx, "ns", req); err != nil {
				t.Fatal(err)
			}
		}
		if r+1 < rounds {
			if _, err := e.Snapshot(); err != nil {
				t.Fatal(err)
			}
		}
	}
	r, err := e.Do(ctx, "ns", &Request{LockID: "L", LockDurMs: 600_000})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	return r.Lock
}

func walSegments(t *testing.T, dir string) []string {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "wal", "????????????????????"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no segments in %s/wal: %v", dir, err)
	}
	return segs
}

// openAfterRecover runs Recover, opens dir, and requires every handle from
// now on above before.
func openAfterRecover(t *testing.T, dir string, before uint64) (*Engine, Recovered) {
	t.Helper()
	now := time.Now()
	rec, err := Recover(dir, now)
	if err != nil {
		t.Fatalf("Recover: %v", err)
	}
	if rec.HandleFloor < TimeFloor(now) {
		t.Errorf("handle floor %d is below the time floor %d", rec.HandleFloor, TimeFloor(now))
	}
	e := openTest(t, dir, 2)
	r, err := e.Do(context.Background(), "ns", &Request{LockID: "M", LockDurMs: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if r.Lock <= before || r.Lock <= rec.HandleFloor {
		t.Errorf("after Recover a grant got handle %d; %d was issued before, the floor is %d", r.Lock, before, rec.HandleFloor)
	}
	return e, rec
}

// TestLogEndingBeforeSnapshotRefused: with the tail marker gone too, a log
// that ends before the newest snapshot's cut is refused (appending would
// reuse sequence numbers the snapshot holds, and the next start would skip
// those records); Recover sets the covered log aside and loses nothing.
func TestLogEndingBeforeSnapshotRefused(t *testing.T) {
	dir := t.TempDir()
	held := recoverFill(t, dir, 100, 3, 2)
	// Remove the segment holding the snapshot's cut and every later one.
	snaps, _ := filepath.Glob(filepath.Join(dir, "snap", "snap-*"))
	cut := cutOf(filepath.Base(snaps[len(snaps)-1]))
	segs := walSegments(t, dir)
	for i := len(segs) - 1; i >= 0; i-- {
		if err := os.Remove(segs[i]); err != nil {
			t.Fatal(err)
		}
		if first, _ := strconv.ParseUint(filepath.Base(segs[i]), 10, 64); first <= cut {
			break
		}
	}
	if err := os.Remove(filepath.Join(dir, WalTailFile)); err != nil {
		t.Fatal(err)
	}
	_, err := Open(Config{Dir: dir, Shards: 2})
	if err == nil || !strings.Contains(err.Error(), "ends at record") || !strings.Contains(err.Error(), "latch recover --data-dir "+dir) {
		t.Fatalf("Open of a log ending before the snapshot's cut: %v; want a refusal naming latch recover", err)
	}
	e, rec := openAfterRecover(t, dir, held)
	if rec.Lost || len(rec.SetAside) == 0 {
		t.Errorf("Recover: %+v; want the log the snapshot covers set aside, nothing lost", rec)
	}
	if got := len(dumpState(e).kv["ns"]); got != 200 {
		t.Errorf("%d keys after Recover, want the snapshot's 200", got)
	}
}

// TestSnapshotGapRecovered: snapshots deleted after the log was truncated
// leave a gap, which Open refuses; Recover sets the whole log aside (none
// of it can be applied) and the server starts empty with handles above
// every one issued before.
func TestSnapshotGapRecovered(t *testing.T) {
	dir := t.TempDir()
	held := recoverFill(t, dir, 300, 2, 1)
	snaps, _ := filepath.Glob(filepath.Join(dir, "snap", "snap-*"))
	for _, s := range snaps {
		if err := os.Remove(s); err != nil {
			t.Fatal(err)
		}
	}
	_, err := Open(Config{Dir: dir, Shards: 2})
	if err == nil || !strings.Contains(err.Error(), "starts at record") || !strings.Contains(err.Error(), "latch recover --data-dir "+dir) {
		t.Fatalf("Open with the snapshots gone: %v; want the gap refusal naming latch recover", err)
	}
	e, rec := openAfterRecover(t, dir, held)
	if !rec.Lost || len(rec.SetAside) == 0 {
		t.Errorf("Recover: %+v; want the log set aside and records reported lost", rec)
	}
	if got := len(dumpState(e).kv["ns"]); got != 0 {
		t.Errorf("%d keys after Recover; the log after a gap cannot be applied", got)
	}
}

// TestRecoverRefusesOtherDirectories: Recover never starts building in a
// directory that holds no latch data.
func TestRecoverRefusesOtherDirectories(t *testing.T) {
	dir := t.TempDir()
	if _, err := Recover(dir, time.Now()); err == nil || !strings.Contains(err.Error(), "does not look like a latch data directory") {
		t.Fatalf("Recover of an empty directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, HandleFloorFile)); !os.IsNotExist(err) {
		t.Errorf("Recover wrote into a directory it refused: %v", err)
	}
}
