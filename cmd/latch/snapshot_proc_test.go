package main

// Process tests of snapshots (issue 3, acceptance 3 and 4): SIGKILL at every
// step of taking a snapshot, and save/restore of a live server under load.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSnapshotStepCrashes(t *testing.T) {
	t.Parallel()
	cycles := envInt(t, "LATCH_SNAPSHOT_CRASH_CYCLES", 10)
	seed := testSeed(t)
	for _, step := range []string{"written", "renamed", "published", "truncating"} {
		t.Run(step, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			dir := t.TempDir()
			m := newModel(t)
			ws := newWriters(6, "snap-"+step, 2, seed)
			h := &handles{}
			args := []string{"--snapshot-every-records", "100"}
			if step == "truncating" {
				// With one snapshot kept, every snapshot after the first
				// deletes the previous one: the truncation step.
				args = append(args, "--snapshot-keep", "1")
			}
			// load runs writers and a lock churner against s until it is
			// gone or stop is closed; the returned channel closes when all stopped.
			load := func(s *server, stop chan struct{}) chan struct{} {
				done := make(chan struct{})
				var wg sync.WaitGroup
				wg.Add(2)
				go func() { defer wg.Done(); m.run(s, ws, stop) }()
				go func() { defer wg.Done(); churn(t, s, h, "snap-"+step+"-locks", "churn", stop, nil) }()
				go func() { wg.Wait(); close(done) }()
				return done
			}
			for c := 0; c < cycles && !t.Failed(); c++ {
				// A server that SIGKILLs itself at the step, under write load.
				s := startServer(t, dir, []string{"LATCH_TEST_SNAPSHOT_KILL=" + step}, args...)
				done := load(s, nil)
				select {
				case <-s.exited:
				case <-time.After(hangGuard):
					s.Kill()
					<-done
					t.Fatalf("cycle %d: the server did not kill itself at snapshot step %q within %s: no snapshot reached that step (%d snapshots completed); stderr:\n%s",
						c, step, hangGuard, s.count("msg=snapshot "), s.tail(8))
				}
				<-done
				if !killedBySIGKILL(s.state) {
					t.Fatalf("cycle %d: the server ended with %v, want death by SIGKILL at snapshot step %q; stderr:\n%s", c, s.state, step, s.tail(8))
				}

				// Restarted without the kill: every acknowledged write is
				// there, and snapshots still work.
				s = startServer(t, dir, nil, args...)
				m.verify(s)
				if t.Failed() {
					t.FailNow()
				}
				stop := make(chan struct{})
				done = load(s, stop)
				_, ok := s.waitLine("msg=snapshot ", 1, hangGuard)
				close(stop)
				<-done
				if !ok {
					t.Fatalf("cycle %d: after the crash at %q the restarted server took no snapshot within %s; stderr:\n%s", c, step, hangGuard, s.tail(8))
				}
				if strings.Contains(s.Stderr(), "snapshot failed") {
					t.Errorf("cycle %d: a snapshot failed after the crash at %q:\n%s", c, step, s.tail(8))
				}
				if c%2 == 0 {
					s.crash()
				} else {
					s.stop()
				}
			}
			if t.Failed() {
				return
			}
			s := startServer(t, dir, nil, args...)
			m.verify(s)
			s.stop()
			t.Logf("%d kills at %q in %s: %s, %d lock handles", cycles, step, time.Since(start).Round(time.Millisecond), m.summary(), h.n)
			if leftovers, _ := filepath.Glob(filepath.Join(dir, "snap", "*.tmp-*")); len(leftovers) > 0 {
				t.Errorf("%d unfinished snapshot files left in snap/ after a clean start and stop: %v", len(leftovers), leftovers)
			}
		})
	}
}

// TestSnapshotCrashDuringLogTruncation kills while the log segments a new
// snapshot covers are being deleted. (TestSnapshotStepCrashes's
// "truncating" kills come when the old snapshot file is deleted, which
// comes first.) Each cycle fills a fresh directory
// with several segments (large values) and no snapshot, so the first
// snapshot deletes no snapshot file and its first deletion is a segment.
func TestSnapshotCrashDuringLogTruncation(t *testing.T) {
	t.Parallel()
	cycles := envInt(t, "LATCH_SNAPSHOT_LOG_CRASH_CYCLES", 4)
	seed := testSeed(t)
	start := time.Now()
	for c := 0; c < cycles && !t.Failed(); c++ {
		dir := t.TempDir()
		m := newModel(t)
		ws := newWriters(4, "segs", 2, seed+uint64(c))
		ws[0].pad, ws[0].onlyKV = strings.Repeat("x", 900_000), true
		ws[1].pad, ws[1].onlyKV = strings.Repeat("y", 900_000), true

		// Fill at least three segments (20 MiB each) without a snapshot, then crash.
		s := startServer(t, dir, nil, "--snapshot-every-records", "-1")
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() { defer close(done); m.run(s, ws, stop) }()
		deadline := time.Now().Add(2 * hangGuard)
		for len(segments(t, dir)) < 3 && time.Now().Before(deadline) && !s.Exited() {
			time.Sleep(20 * time.Millisecond)
		}
		s.crash()
		close(stop)
		<-done
		before := segments(t, dir)
		if len(before) < 3 {
			t.Fatalf("cycle %d: only %d log segments after the fill", c, len(before))
		}

		// The first snapshot deletes segments, and the process dies after the first.
		s = startServer(t, dir, []string{"LATCH_TEST_SNAPSHOT_KILL=truncating"}, "--snapshot-every-records", "10", "--snapshot-keep", "1")
		done = make(chan struct{})
		go func() { defer close(done); m.run(s, ws[2:], nil) }()
		select {
		case <-s.exited:
		case <-time.After(hangGuard):
			s.Kill()
			<-done
			t.Fatalf("cycle %d: the server did not kill itself while truncating the log within %s; stderr:\n%s", c, hangGuard, s.tail(8))
		}
		<-done
		if !killedBySIGKILL(s.state) {
			t.Fatalf("cycle %d: the server ended with %v, want death by SIGKILL while truncating; stderr:\n%s", c, s.state, s.tail(8))
		}
		after := segments(t, dir)
		if _, err := os.Stat(before[0]); err == nil || len(after) < len(before)-1 {
			t.Errorf("cycle %d: want exactly the oldest segment deleted when the kill came; before %d segments, after %d (oldest still there: %v)",
				c, len(before), len(after), err == nil)
		}

		// Restarted: every acknowledged write is there; snapshots and truncation still work.
		s = startServer(t, dir, nil, "--snapshot-every-records", "10", "--snapshot-keep", "1")
		m.verify(s)
		if t.Failed() {
			t.FailNow()
		}
		stop = make(chan struct{})
		done = make(chan struct{})
		go func() { defer close(done); m.run(s, ws[2:], stop) }()
		_, ok := s.waitLine("msg=snapshot ", 1, hangGuard)
		close(stop)
		<-done
		if !ok {
			t.Fatalf("cycle %d: after the crash the restarted server took no snapshot; stderr:\n%s", c, s.tail(8))
		}
		s.crash()
		if n := len(segments(t, dir)); n > 2 {
			t.Errorf("cycle %d: %d log segments remain after a snapshot covering all but the tail", c, n)
		}
		s = startServer(t, dir, nil)
		m.verify(s)
		s.stop()
	}
	t.Logf("%d kills while truncating the log in %s", cycles, time.Since(start).Round(time.Millisecond))
}

// The JSON of `latch snapshot inspect -o json`, the parts checked here.
type inspectJSON struct {
	Checksums  string `json:"checksums"`
	Error      string `json:"error"`
	Cut        uint64 `json:"cut"`
	LastHandle uint64 `json:"last_handle"`
	Entries    uint64 `json:"entries"`
	Namespaces []struct {
		Name string `json:"name"`
		Keys int    `json:"keys"`
	} `json:"namespaces"`
	Locks []struct {
		Namespace string    `json:"namespace"`
		Key       string    `json:"key"`
		Handle    uint64    `json:"handle"`
		Until     time.Time `json:"until"`
		Expired   bool      `json:"expired"`
	} `json:"locks"`
}

func TestSnapshotRoundTripUnderLoad(t *testing.T) {
	t.Parallel()
	dirA := t.TempDir()
	a := startServer(t, dirA, nil)
	m := newModel(t)
	ws := newWriters(6, "rt", 3, testSeed(t))
	h := &handles{}

	// Locks held across the save; the short one's deadline passes after
	// the restore, so it checks that the deadline was kept too.
	locks := []struct {
		ns, name string
		dur      int64
		handle   uint64
		tillMs   int64
	}{
		{ns: "rt-0", name: "held-a", dur: 60000},
		{ns: "rt-1", name: "held-b", dur: 60000},
		{ns: "rt-locks", name: "held-short", dur: 6000},
	}
	for i := range locks {
		l := &locks[i]
		r := a.mustDB(l.ns, map[string]any{"LockID": l.name, "LockDurMs": l.dur}, http.StatusOK)
		h.see(t, r.Lock, l.name)
		l.handle, l.tillMs = r.Lock, r.TillMs
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); m.run(a, ws, stop) }()
	go func() { defer wg.Done(); churn(t, a, h, "rt-locks", "churn", stop, nil) }()
	time.Sleep(300 * time.Millisecond) // the load is running

	before := m.freeze()
	maxHandle := h.highest()
	ackedBefore := m.summary()
	snapFile := filepath.Join(t.TempDir(), "backup.snap")
	code, _, stderr := runLatch(t, nil, "snapshot", "save", "--addr", a.URL, "--out", snapFile)
	time.Sleep(100 * time.Millisecond) // and continues after the save
	close(stop)
	wg.Wait()
	if code != 0 {
		t.Fatalf("snapshot save under load: exit %d:\n%s", code, stderr)
	}
	if len(before.kv) == 0 || len(before.ctr) == 0 {
		t.Fatalf("nothing was acknowledged before the save (%s): the round trip checks nothing", ackedBefore)
	}
	t.Logf("before the save: %s; handles up to %d. After the load: %s", ackedBefore, maxHandle, m.summary())

	code, out, stderr := runLatch(t, nil, "snapshot", "inspect", snapFile, "-o", "json")
	if code != 0 {
		t.Fatalf("snapshot inspect: exit %d:\n%s\n%s", code, out, stderr)
	}
	var rep inspectJSON
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("snapshot inspect -o json: %v:\n%s", err, out)
	}
	if rep.Checksums != "ok" || rep.Error != "" {
		t.Errorf("inspect: checksums %q, error %q", rep.Checksums, rep.Error)
	}
	if rep.LastHandle < maxHandle {
		t.Errorf("inspect: last_handle %d, below handle %d granted before the save", rep.LastHandle, maxHandle)
	}
	for _, l := range locks {
		found := false
		for _, il := range rep.Locks {
			if il.Namespace == l.ns && il.Key == l.name {
				found = true
				if il.Handle != l.handle || il.Until.UnixMilli() != l.tillMs || il.Expired {
					t.Errorf("inspect: lock %s/%s is handle %d until %s (expired %v), want handle %d until %d ms",
						l.ns, l.name, il.Handle, il.Until, il.Expired, l.handle, l.tillMs)
				}
			}
		}
		if !found {
			t.Errorf("inspect: lock %s/%s (handle %d) is not in the snapshot; locks: %+v", l.ns, l.name, l.handle, rep.Locks)
		}
	}

	newDir := filepath.Join(t.TempDir(), "restored")
	restore := []string{"snapshot", "restore", "--in", snapFile, "--data-dir", newDir}
	if code, _, stderr := runLatch(t, nil, restore...); code != 0 {
		t.Fatalf("snapshot restore: exit %d:\n%s", code, stderr)
	}
	if code, _, stderr := runLatch(t, nil, restore...); code == 0 || !strings.Contains(stderr, "not empty") {
		t.Errorf("a second restore into the non-empty %s without --force: exit %d, want a refusal saying it is not empty:\n%s", newDir, code, stderr)
	}
	if code, _, stderr := runLatch(t, nil, append(restore, "--force")...); code != 0 {
		t.Fatalf("snapshot restore --force: exit %d:\n%s", code, stderr)
	}
	// A live server's directory is refused even with --force.
	if code, _, stderr := runLatch(t, nil, "snapshot", "restore", "--in", snapFile, "--data-dir", dirA, "--force"); code == 0 {
		t.Errorf("restore --force into the directory of a running server succeeded:\n%s", stderr)
	}
	a.stop()

	b := startServer(t, newDir, nil)
	if !strings.Contains(b.Stderr(), fmt.Sprintf("snapshot_cut=%d", rep.Cut)) {
		t.Errorf("the restored server did not start from the snapshot's cut %d:\n%s", rep.Cut, b.Stderr())
	}
	m.verifyFrozen(b, before)
	newFloor := max(maxHandle, rep.LastHandle)
	for _, l := range locks {
		if l.dur == 60000 {
			// Still held: it blocks, and its handle still holds it.
			r := b.mustDB(l.ns, map[string]any{"LockID": l.name, "LockDurMs": 1000, "LockWaitMs": 0}, http.StatusConflict)
			if r.Code != "lock_timeout" {
				t.Errorf("lock %s after the restore: %s, want lock_timeout", l.name, r.Code)
			}
			b.mustDB(l.ns, map[string]any{"UnlockID": l.name, "Unlock": l.handle}, http.StatusOK)
		}
		// Granted (the short one only once its deadline has passed) with a
		// handle above every handle of the saved server.
		const dur = 5000
		wait := max(0, l.tillMs-time.Now().UnixMilli()) + 3000
		r := b.mustDB(l.ns, map[string]any{"LockID": l.name, "LockDurMs": dur, "LockWaitMs": wait}, http.StatusOK)
		if r.Lock <= newFloor {
			t.Errorf("lock %s after the restore: handle %d, want above %d (every handle issued before the save)", l.name, r.Lock, newFloor)
		}
		if l.dur != 60000 && r.TillMs-dur < l.tillMs {
			t.Errorf("lock %s held until %d was granted at %d (server clock) after the restore, before its deadline", l.name, l.tillMs, r.TillMs-dur)
		}
	}
	b.stop()
	if _, err := os.Stat(snapFile); err != nil {
		t.Error(err)
	}
}
