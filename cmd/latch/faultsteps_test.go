package main

// Fault injection at each persistence step beyond the log's write and
// fsync (issue 5): segment creation, each step of a snapshot's publish, and
// the truncation after it, through LATCH_TEST_FAULT on the real binary.
// What each failure must do is in docs/OPERATIONS.md ("When storage
// fails"): a failure of the log or after a snapshot's rename stops the
// server (exit 1, nothing acknowledged after it); a snapshot failure before
// its rename is logged and retried while the server keeps serving. Either
// way a restart recovers everything acknowledged.

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// faultStepArgs make every step happen within seconds: 4 KiB segments,
// a snapshot after 40 records (the loop checks every second), and one
// snapshot kept so the first snapshot already truncates the log.
var faultStepArgs = []string{"--segment-size", "4096", "--snapshot-every-records", "40", "--snapshot-keep", "1"}

func TestFaultStepsFatal(t *testing.T) {
	cases := []struct{ spec, why string }{
		{"create:2", "a new segment could not be created: the log fails stop"},
		{"tail:2", "the tail marker could not be moved to a new segment: the log fails stop, and the marker one segment behind is harmless"},
		{"snapshot-dirsync:1", "a snapshot was renamed into place but its directory fsync failed"},
		{"truncate:1", "removing what a published snapshot made obsolete failed"},
		{"truncate:2", "a later removal failed, after part of the truncation"},
	}
	seed := testSeed(t)
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.spec, ":", "-"), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			m := newModel(t)
			ws := newWriters(8, "fstep", 2, seed)
			for _, w := range ws {
				w.versioned = true
			}
			s := startServer(t, dir, []string{"LATCH_TEST_FAULT=" + tc.spec}, faultStepArgs...)
			// The snapshot loop checks once a second; give a loaded
			// machine plenty of time to reach the step.
			outs, st := driveUntilExit(s, m, ws, 2*time.Minute)
			if st == nil || st.ExitCode() != 1 {
				t.Fatalf("%s (%s): exit %v, want exit code 1; stderr:\n%s", tc.spec, tc.why, st, s.tail(8))
			}
			if !strings.Contains(s.Stderr(), "storage failed") || !strings.Contains(s.Stderr(), "injected") {
				t.Errorf("stderr does not say that storage failed with the injected error:\n%s", s.tail(8))
			}
			checkNoAckAfterFailure(t, tc.spec, outs)

			s2 := startServer(t, dir, nil, faultStepArgs...)
			checkFailedOrder(t, s2, outs)
			m.verify(s2)
			s2.stop()
		})
	}
}

// TestFaultStepsSnapshotRetried fails one step of a snapshot before its
// rename: the server must log it, keep acknowledging writes, publish a later
// snapshot, leave no temporary file behind, and recover everything after
// a SIGKILL.
func TestFaultStepsSnapshotRetried(t *testing.T) {
	seed := testSeed(t)
	for _, step := range []string{"snapshot-write", "snapshot-fsync", "snapshot-rename"} {
		t.Run(step, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			m := newModel(t)
			ws := newWriters(4, "fsnap", 2, seed)
			s := startServer(t, dir, []string{"LATCH_TEST_FAULT=" + step + ":1"}, faultStepArgs...)
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() { defer close(done); m.run(s, ws, stop) }()
			if _, ok := s.waitLine("snapshot failed", 1, 2*time.Minute); !ok {
				close(stop)
				<-done
				t.Fatalf("no failed snapshot was logged; stderr:\n%s", s.tail(8))
			}
			acksAtFailure := m.freeze()
			// A later attempt publishes: the failure was not sticky.
			if _, ok := s.waitLine("msg=snapshot ", 1, 2*time.Minute); !ok {
				close(stop)
				<-done
				t.Fatalf("no snapshot succeeded after the injected %s failure; stderr:\n%s", step, s.tail(8))
			}
			close(stop)
			<-done
			if s.Exited() {
				t.Fatalf("the server exited after a %s failure; stderr:\n%s", step, s.tail(8))
			}
			m.mu.Lock()
			after := m.acks
			m.mu.Unlock()
			if len(acksAtFailure.kv)+len(acksAtFailure.ctr) == 0 || after == 0 {
				t.Errorf("nothing acknowledged around the failure: the test checks nothing")
			}
			if strings.Contains(s.Stderr(), "storage failed") {
				t.Errorf("a %s failure stopped the server; it should be retried:\n%s", step, s.tail(8))
			}
			// The failed attempt's temporary file was removed at once (a
			// later attempt may be writing its own right now).
			tmps, _ := filepath.Glob(filepath.Join(dir, "snap", "*.tmp-*"))
			if len(tmps) > 1 {
				t.Errorf("temporary snapshot files left behind: %v", tmps)
			}
			s.crash()
			s2 := startServer(t, dir, nil, faultStepArgs...)
			m.verify(s2)
			s2.stop()
			t.Logf("%s: %s", step, m.summary())
		})
	}
}

func TestFaultSpecRefused(t *testing.T) {
	t.Parallel()
	for _, spec := range []string{"bogus:1", "create:0", "snapshot-fsync", "truncate:x"} {
		code, _, stderr := runLatch(t, []string{"LATCH_TEST_FAULT=" + spec}, "serve", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir())
		if code != 2 || !strings.Contains(stderr, "snapshot-dirsync") || !strings.Contains(stderr, spec) {
			t.Errorf("LATCH_TEST_FAULT=%s: exit %d, stderr %q; want exit 2 listing the steps", spec, code, stderr)
		}
	}
}

func TestSegmentSizeFlag(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"100", "4095", "2000000000", "-1"} {
		code, _, stderr := runLatch(t, nil, "serve", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--segment-size", v)
		if code != 2 || !strings.Contains(stderr, "--segment-size") || !strings.Contains(stderr, "1 GiB") {
			t.Errorf("--segment-size %s: exit %d, stderr %q; want exit 2 naming the flag and its limits", v, code, stderr)
		}
	}
	// The smallest size works, and many segments come back after a restart.
	dir := t.TempDir()
	m := newModel(t)
	ws := newWriters(4, "seg", 2, 1)
	s := startServer(t, dir, nil, "--segment-size", "4096", "--snapshot-every-records", "-1")
	for i := 0; i < 60; i++ {
		for _, w := range ws {
			if o := m.step(context.Background(), s, w); !o.ok() {
				t.Fatalf("request failed: %d %s %v", o.status, o.code, o.err)
			}
		}
	}
	s.crash()
	segs, _ := filepath.Glob(filepath.Join(dir, "wal", "0*"))
	if len(segs) < 2 {
		t.Errorf("%d segment files after 240 writes with 4 KiB segments, want several", len(segs))
	}
	s2 := startServer(t, dir, nil, "--segment-size", "4096")
	m.verify(s2)
	s2.stop()
	if fi, err := os.Stat(filepath.Join(dir, "wal")); err != nil || !fi.IsDir() {
		t.Errorf("no wal directory: %v", err)
	}
}
