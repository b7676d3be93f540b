package wal

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// tailLog is a log in root/wal with its tail marker at root/wal-tail and
// small segments, so a few dozen records span several of them.
func tailLog(root string) (dir string, opts Options) {
	return filepath.Join(root, "wal"), Options{SegmentSize: 300, TailFile: filepath.Join(root, "wal-tail")}
}

func fillTail(t *testing.T, l *Log, n int) [][]byte {
	t.Helper()
	var recs [][]byte
	for i := 0; i < n; i++ {
		recs = append(recs, payloadOf(i, 40))
	}
	appendWait(t, l, recs...)
	return recs
}

func readMarker(t *testing.T, path string) uint64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatalf("%s holds %q", path, b)
	}
	return n
}

// TestTailMarkerRefusesLogThatEndsEarly: the marker follows the newest
// segment; a log missing its newest segment, or all of them, is refused
// with an *EndsEarlyError naming the marker and the way out.
func TestTailMarkerRefusesLogThatEndsEarly(t *testing.T) {
	root := t.TempDir()
	dir, opts := tailLog(root)
	l, _ := mustOpen(t, dir, opts)
	fillTail(t, l, 40)
	segs := segmentPaths(t, dir)
	if len(segs) < 3 {
		t.Fatalf("only %d segments", len(segs))
	}
	if got, want := readMarker(t, opts.TailFile), segs[len(segs)-1].first; got != want {
		t.Errorf("marker %d, want the newest segment's first record %d", got, want)
	}
	mustClose(t, l)

	if err := os.Remove(segs[len(segs)-1].path); err != nil {
		t.Fatal(err)
	}
	_, _, err := openReplay(t, dir, opts)
	var ee *EndsEarlyError
	if !errors.As(err, &ee) || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open without the newest segment: %v, want an *EndsEarlyError", err)
	}
	for _, w := range []string{opts.TailFile, filepath.Base(segs[len(segs)-1].path), "acknowledged", "latch recover --data-dir " + root} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("the refusal does not say %q: %v", w, err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	// As beside a snapshot: StartAfter must not rebuild the log empty.
	opts.StartAfter = 10
	if _, _, err := openReplay(t, dir, opts); !errors.As(err, &ee) || ee.Newest != "" {
		t.Fatalf("Open with wal/ deleted: %v, want an *EndsEarlyError with no segment", err)
	}
}

// TestTailMarkerLagging: a marker behind the log (a crash before it moved,
// or a directory from a version without it) opens, and Open brings it up
// to the newest segment.
func TestTailMarkerLagging(t *testing.T) {
	root := t.TempDir()
	dir, opts := tailLog(root)
	l, _ := mustOpen(t, dir, opts)
	recs := fillTail(t, l, 40)
	mustClose(t, l)
	segs := segmentPaths(t, dir)
	newest := segs[len(segs)-1].first
	for _, marker := range []string{"1\n", ""} {
		if marker == "" {
			os.Remove(opts.TailFile)
		} else if err := os.WriteFile(opts.TailFile, []byte(marker), 0o644); err != nil {
			t.Fatal(err)
		}
		// A temp file a crash left while the marker was being replaced.
		if err := os.WriteFile(opts.TailFile+".tmp-123", []byte("99999"), 0o644); err != nil {
			t.Fatal(err)
		}
		l, got := mustOpen(t, dir, opts)
		checkRecords(t, got, 1, recs)
		mustClose(t, l)
		if m := readMarker(t, opts.TailFile); m != newest {
			t.Errorf("marker %q: after Open it holds %d, want %d", marker, m, newest)
		}
		if _, err := os.Stat(opts.TailFile + ".tmp-123"); !os.IsNotExist(err) {
			t.Errorf("the marker's leftover temp file is still there: %v", err)
		}
	}
	if err := os.WriteFile(opts.TailFile, []byte("twelve\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := openReplay(t, dir, opts); err == nil || !strings.Contains(err.Error(), "latch recover") {
		t.Errorf("Open with a marker that is not a number: %v, want a refusal naming latch recover", err)
	}
}

// TestTailStepFailureHarmless: the batch that created a segment fails at
// the marker step (as a crash there would stop it): nothing is
// acknowledged, the marker still names the previous segment, and the log
// opens with every acknowledged record.
func TestTailStepFailureHarmless(t *testing.T) {
	root := t.TempDir()
	dir, opts := tailLog(root)
	var fail atomic.Bool
	opts.FaultHook = func(step string) error {
		if step == "tail" && fail.Load() {
			return errors.New("injected")
		}
		return nil
	}
	l, _ := mustOpen(t, dir, opts)
	var acked [][]byte
	for i := 0; ; i++ {
		before := len(segmentPaths(t, dir))
		fail.Store(i > 10)
		p := payloadOf(i, 40)
		if err := l.Append(p).Wait(); err != nil {
			if len(segmentPaths(t, dir)) == before {
				t.Fatalf("record %d failed without creating a segment: %v", i, err)
			}
			break
		}
		acked = append(acked, p)
		if i > 100 {
			t.Fatal("no segment was created in 100 records")
		}
	}
	l.Close()
	segs := segmentPaths(t, dir)
	if m := readMarker(t, opts.TailFile); m != segs[len(segs)-2].first {
		t.Errorf("after the failed step the marker holds %d, want the previous segment's %d", m, segs[len(segs)-2].first)
	}
	opts.FaultHook = nil
	l, got := mustOpen(t, dir, opts)
	if len(got) < len(acked) {
		t.Fatalf("%d records after reopening, %d were acknowledged", len(got), len(acked))
	}
	checkRecords(t, got[:len(acked)], 1, acked)
	mustClose(t, l)
}

// TestTruncateKeepsMarkedSegment: a snapshot's truncation that runs while
// a batch has created a new segment but not yet made its name durable and
// moved the marker must not remove the segment the marker names. If it
// did, a power loss that lost the new segment's name would leave no
// segment at or after the marker, and a log that is complete would be
// refused.
func TestTruncateKeepsMarkedSegment(t *testing.T) {
	root := t.TempDir()
	dir, opts := tailLog(root)
	var l *Log
	var creates atomic.Int32
	var truncated atomic.Bool
	var removed []string
	var truncErr error
	var markedThen uint64
	opts.FaultHook = func(step string) error {
		switch {
		case step == "create":
			creates.Add(1)
		case step == "fsync" && creates.Load() == 3 && !truncated.Load():
			// The new segment's file exists; a snapshot covering every
			// record before it truncates now.
			truncated.Store(true)
			markedThen, truncErr = readTail(opts.TailFile)
			segs := listSegmentsOrNil(dir)
			removed, truncErr = l.TruncateBefore(segs[len(segs)-1].first-1, nil)
		}
		return nil
	}
	l, _ = mustOpen(t, dir, opts)
	for i := 0; !truncated.Load(); i++ {
		if i > 100 {
			t.Fatal("no segment was created in 100 records")
		}
		appendWait(t, l, payloadOf(i, 40))
	}
	mustClose(t, l)
	if truncErr != nil || markedThen == 0 {
		t.Fatalf("marker %d: %v", markedThen, truncErr)
	}
	if len(removed) == 0 {
		t.Fatal("the truncation removed nothing: it did not run where it should")
	}
	// The power loss: the new segment's name never reached the disk.
	segs := segmentPaths(t, dir)
	if err := os.Remove(segs[len(segs)-1].path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(opts.TailFile, []byte(strconv.FormatUint(markedThen, 10)), 0o644); err != nil {
		t.Fatal(err)
	}
	opts.FaultHook = nil
	l, _, err := openReplay(t, dir, opts)
	if err != nil {
		t.Fatalf("a log that lost only a segment never acknowledged was refused: %v (truncation removed %v)", err, removed)
	}
	mustClose(t, l)
}

func listSegmentsOrNil(dir string) []segmentFile {
	segs, _ := listSegments(dir)
	return segs
}

// TestSalvageDamageCoveredBySnapshot: damage in records a snapshot holds
// sets aside the segments before the first usable one after it, and loses
// nothing; damage after the snapshot sets aside the damaged part and every
// later segment, keeping the valid records before it.
func TestSalvageDamageCoveredBySnapshot(t *testing.T) {
	for _, tc := range []struct {
		name    string
		covered bool
	}{{"covered", true}, {"after the cut", false}} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			dir, opts := tailLog(root)
			l, _ := mustOpen(t, dir, opts)
			recs := fillTail(t, l, 60)
			mustClose(t, l)
			segs := segmentPaths(t, dir)
			if len(segs) < 4 {
				t.Fatalf("only %d segments", len(segs))
			}
			bad := segs[1]
			data, err := os.ReadFile(bad.path)
			if err != nil {
				t.Fatal(err)
			}
			offs := entryOffsets(t, data)
			data[offs[1]+3] ^= 0x10 // inside the second record's checksum
			writeFile(t, bad.path, data)
			cut := uint64(0)
			if tc.covered {
				cut = segs[2].first + 1
			}
			s, err := Salvage(dir, opts.TailFile, cut, time.Unix(1000, 0))
			if err != nil {
				t.Fatal(err)
			}
			l, got := mustOpen(t, dir, opts)
			mustClose(t, l)
			if tc.covered {
				if s.Lost || len(s.SetAside) != 2 || s.First != segs[2].first || s.Last != uint64(len(recs)) {
					t.Errorf("salvaged %+v: want segments 1 and 2 set aside, records %d to %d kept, nothing lost", s, segs[2].first, len(recs))
				}
				checkRecords(t, got, segs[2].first, recs[segs[2].first-1:])
			} else {
				want := bad.first // the first record of bad is valid, the second damaged
				if !s.Lost || s.Last != want || s.Cut != bad.path || len(s.SetAside) != len(segs)-1 {
					t.Errorf("salvaged %+v: want records up to %d kept, %s cut, %d files set aside", s, want, bad.path, len(segs)-1)
				}
				checkRecords(t, got, 1, recs[:want])
			}
			if filepath.Base(s.Aside) != "lost-1000" {
				t.Errorf("set aside into %s, want wal/lost-1000", s.Aside)
			}
			for _, n := range s.SetAside {
				if _, err := os.Stat(filepath.Join(s.Aside, n)); err != nil {
					t.Errorf("set aside %s is not in %s: %v", n, s.Aside, err)
				}
			}
			if m := readMarker(t, opts.TailFile); m != segmentPaths(t, dir)[len(segmentPaths(t, dir))-1].first {
				t.Errorf("marker %d does not name the newest segment left", m)
			}
		})
	}
}
