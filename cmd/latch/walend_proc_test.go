package main

// A log that ends early or is damaged: the server refuses to start rather
// than serve with acknowledged writes and held locks missing, and `latch
// recover` is the way out that never reissues a lock handle.

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// smallSegments gives many log segments from a few hundred records, and no
// snapshot unless a test asks for one.
var smallSegments = []string{"--segment-size", "4096", "--snapshot-every-records", "-1"}

// fillKeys sets keys[i] = i, one request each, and returns the keys.
func fillKeys(s *server, ns, prefix string, n int) []string {
	s.t.Helper()
	var keys []string
	for i := 0; i < n; i++ {
		k := fmt.Sprintf("%s%04d", prefix, i)
		keys = append(keys, k)
		s.mustDB(ns, map[string]any{"KVSet": map[string]any{"Key": k, "Value": i}}, http.StatusOK)
	}
	return keys
}

// serveRefuses runs `latch serve` on dir and requires it to exit non-zero
// without ever listening. It returns its stderr.
func serveRefuses(t *testing.T, dir, why string, args ...string) string {
	t.Helper()
	argv := append([]string{"serve", "--addr", "127.0.0.1:0", "--data-dir", dir, "--shards", "2"}, args...)
	p := startProc(t, "latch serve (must refuse)", nil, argv...)
	if _, ok := p.waitLine("msg=listening", 1, hangGuard); ok {
		p.Kill()
		p.Wait(hangGuard)
		t.Fatalf("the server started on %s: %s\nstderr:\n%s", dir, why, p.Stderr())
	}
	st := p.Wait(hangGuard)
	if st == nil || st.ExitCode() == 0 {
		t.Fatalf("the server exited %v on %s (%s); want a non-zero exit\nstderr:\n%s", st, dir, why, p.Stderr())
	}
	return p.Stderr()
}

// recoverDir runs `latch recover` on dir, requires exit 0 and returns its
// output.
func recoverDir(t *testing.T, dir string) string {
	t.Helper()
	code, stdout, stderr := runLatch(t, nil, "recover", "--data-dir", dir)
	if code != 0 {
		t.Fatalf("latch recover --data-dir %s: exit %d\nstdout:\n%s\nstderr:\n%s", dir, code, stdout, stderr)
	}
	return stdout + stderr
}

// checkPrefixKept requires keys[i] = i for a prefix of keys and nothing
// after it (a log that lost its end loses a suffix), and returns the
// prefix's length.
func checkPrefixKept(t *testing.T, s *server, ns string, keys []string) int {
	t.Helper()
	vals, _ := readState(t, s, ns, keys, nil)
	kept := 0
	for kept < len(keys) && vals[keys[kept]] != nil {
		kept++
	}
	for i, k := range keys {
		switch got := vals[k]; {
		case i < kept && *got != int64(i):
			t.Errorf("%s/%s = %d, want %d", ns, k, *got, i)
		case i >= kept && got != nil:
			t.Errorf("%s/%s = %d is present although %s before it is lost: the log is not a prefix", ns, k, *got, keys[kept])
		}
	}
	return kept
}

// lockAbove takes a new lock and requires its handle to be above every
// handle issued before (fencing across a log that lost its end).
func lockAbove(t *testing.T, s *server, ns, key string, before uint64) uint64 {
	t.Helper()
	h := s.mustDB(ns, map[string]any{"LockID": key, "LockDur": 60}, http.StatusOK).Lock
	if h <= before {
		t.Fatalf("after recovery a grant got handle %d, but handles up to %d were already issued before: fencing broken", h, before)
	}
	return h
}

// checkRefusal requires the refusal to explain itself: what is missing,
// what that means, and the way out.
func checkRefusal(t *testing.T, stderr string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(stderr, w) {
			t.Errorf("the refusal does not say %q:\n%s", w, stderr)
		}
	}
}

// TestLogMissingNewestSegmentRefusedUntilRecover: acknowledged writes over
// several segments and a held lock, then the newest segment is deleted.
// The server must refuse to start (it used to start silently, with the
// lock free and its handle reissued); `latch recover` then lets it start
// with what is left, and new handles above every one issued before.
func TestLogMissingNewestSegmentRefusedUntilRecover(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServer(t, dir, nil, smallSegments...)
	keys := fillKeys(s, "end", "k", 300)
	held := s.mustDB("end", map[string]any{"LockID": "L", "LockDur": 600}, http.StatusOK).Lock
	s.stop()

	segs := segments(t, dir)
	if len(segs) < 3 {
		t.Fatalf("only %d segments after 300 writes with 4 KiB segments", len(segs))
	}
	newest := segs[len(segs)-1]
	if err := os.Remove(newest); err != nil {
		t.Fatal(err)
	}
	stderr := serveRefuses(t, dir, "its newest log segment "+filepath.Base(newest)+" was deleted", smallSegments...)
	checkRefusal(t, stderr, "wal-tail", filepath.Base(newest), "acknowledged", "latch recover")

	out := recoverDir(t, dir)
	checkRefusal(t, out, "handle", "lost")
	s = startServer(t, dir, nil, smallSegments...)
	kept := checkPrefixKept(t, s, "end", keys)
	if kept == 0 {
		t.Errorf("nothing was kept of %d writes, though only the newest segment was deleted", len(keys))
	}
	h := lockAbove(t, s, "end", "L", held)
	s.stop()

	// The recovered directory is a normal one: it restarts, and writes
	// across new segments stay protected.
	s = startServer(t, dir, nil, smallSegments...)
	fillKeys(s, "end", "m", 100)
	lockAbove(t, s, "end", "M", h)
	s.stop()
	segs = segments(t, dir)
	if err := os.Remove(segs[len(segs)-1]); err != nil {
		t.Fatal(err)
	}
	serveRefuses(t, dir, "its newest segment was deleted after recovery", smallSegments...)
}

// TestLogDeletedUnderSnapshotRefused: with a snapshot in snap/ and writes
// after it only in the log, deleting all of wal/ must be refused (it used
// to start from the snapshot alone), and recover must keep the snapshot.
func TestLogDeletedUnderSnapshotRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServer(t, dir, nil, "--segment-size", "4096", "--snapshot-every-records", "20")
	keys := fillKeys(s, "snapped", "k", 60)
	deadline := time.Now().Add(2 * hangGuard)
	for {
		snaps, _ := filepath.Glob(filepath.Join(dir, "snap", "snap-????????????????????"))
		if len(snaps) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no snapshot in %s/snap after %s (hang guard)", dir, 2*hangGuard)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.stop()
	s = startServer(t, dir, nil, smallSegments...)
	fillKeys(s, "later", "k", 50)
	held := s.mustDB("later", map[string]any{"LockID": "L", "LockDur": 600}, http.StatusOK).Lock
	s.stop()

	if err := os.RemoveAll(filepath.Join(dir, "wal")); err != nil {
		t.Fatal(err)
	}
	stderr := serveRefuses(t, dir, "all of wal/ was deleted while a snapshot remains", smallSegments...)
	checkRefusal(t, stderr, "wal-tail", "acknowledged", "latch recover")

	recoverDir(t, dir)
	s = startServer(t, dir, nil, smallSegments...)
	vals, _ := readState(t, s, "snapped", keys[:20], nil)
	for i, k := range keys[:20] {
		if got := vals[k]; got == nil || *got != int64(i) {
			t.Errorf("snapped/%s = %v after recovery, want %d (it is in the snapshot)", k, deref(got), i)
		}
	}
	lockAbove(t, s, "later", "L", held)
	s.stop()
}

// TestCorruptLogRecover: a flipped byte in a middle segment is refused as
// today; `latch recover` sets the damaged part aside (never deletes it),
// and the server starts with what comes before the damage and handles
// above every one issued before.
func TestCorruptLogRecover(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServer(t, dir, nil, smallSegments...)
	keys := fillKeys(s, "bad", "k", 300)
	held := s.mustDB("bad", map[string]any{"LockID": "L", "LockDur": 600}, http.StatusOK).Lock
	s.stop()

	segs := segments(t, dir)
	if len(segs) < 3 {
		t.Fatalf("only %d segments after 300 writes with 4 KiB segments", len(segs))
	}
	bad := segs[1]
	data, err := os.ReadFile(bad)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x40
	if err := os.WriteFile(bad, data, 0o644); err != nil {
		t.Fatal(err)
	}
	stderr := serveRefuses(t, dir, "a record in the middle of the log is damaged", smallSegments...)
	checkRefusal(t, stderr, filepath.Base(bad), "offset", "latch recover")

	out := recoverDir(t, dir)
	checkRefusal(t, out, "set aside", "lost", "handle")
	aside, _ := filepath.Glob(filepath.Join(dir, "wal", "lost-*", "*"))
	if len(aside) < len(segs)-1 {
		t.Errorf("recover set aside %v; want the damaged segment and every later one (%d files)", aside, len(segs)-1)
	}
	s = startServer(t, dir, nil, smallSegments...)
	kept := checkPrefixKept(t, s, "bad", keys)
	if kept == 0 || kept == len(keys) {
		t.Errorf("%d of %d writes kept: want those before the damage only", kept, len(keys))
	}
	lockAbove(t, s, "bad", "L", held)
	s.stop()
}

// TestRestoredDirectoryStartsDespiteTailMarker: a restore over a data
// directory whose log had grown far beyond the backup leaves no stale
// marker: the restored directory starts, as does one restored afresh.
func TestRestoredDirectoryStartsDespiteTailMarker(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServer(t, dir, nil, smallSegments...)
	keys := fillKeys(s, "rst", "k", 20)
	backup := filepath.Join(t.TempDir(), "backup.snap")
	if code, _, stderr := runLatch(t, nil, "snapshot", "save", "--addr", s.URL, "--out", backup); code != 0 {
		t.Fatalf("snapshot save: exit %d:\n%s", code, stderr)
	}
	fillKeys(s, "rst", "later", 200)
	s.stop()
	for _, target := range []string{dir, filepath.Join(t.TempDir(), "fresh")} {
		if code, _, stderr := runLatch(t, nil, "snapshot", "restore", "--in", backup, "--data-dir", target, "--force"); code != 0 {
			t.Fatalf("snapshot restore into %s: exit %d:\n%s", target, code, stderr)
		}
		s = startServer(t, target, nil, smallSegments...)
		if kept := checkPrefixKept(t, s, "rst", keys); kept != len(keys) {
			t.Errorf("%s: %d of the backup's %d keys", target, kept, len(keys))
		}
		fillKeys(s, "rst", "again", 100)
		s.stop()
		s = startServer(t, target, nil, smallSegments...)
		s.stop()
	}
}
