package wal

import (
	"bytes"
	"os"
	"sync"
	"testing"
	"time"
)

// TestOnCommitAndSize: OnCommit sees every record and byte once, Size
// matches the segment files through appends, segment rolls, a reopen and
// truncation.
func TestOnCommitAndSize(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	var records, commits, written int
	var fsyncs []time.Duration
	opts := Options{SegmentSize: 4 << 10, OnCommit: func(r, b int, fsync time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		records, written, commits = records+r, written+b, commits+1
		fsyncs = append(fsyncs, fsync)
	}}
	l, _ := mustOpen(t, dir, opts)
	payload := bytes.Repeat([]byte("x"), 300)
	for i := 0; i < 40; i++ {
		appendWait(t, l, payload)
	}
	files := func() int64 {
		var n int64
		for _, s := range segmentPaths(t, dir) {
			st, err := os.Stat(s.path)
			if err != nil {
				t.Fatal(err)
			}
			n += st.Size()
		}
		return n
	}
	mu.Lock()
	if records != 40 || commits != 40 || int64(written) != files() || len(fsyncs) != 40 {
		t.Errorf("OnCommit saw %d records in %d commits, %d bytes (files hold %d)", records, commits, written, files())
	}
	for _, d := range fsyncs {
		if d <= 0 {
			t.Errorf("a commit reported fsync time %v", d)
		}
	}
	mu.Unlock()
	if got, want := l.Size(), files(); got != want {
		t.Errorf("Size %d, files hold %d", got, want)
	}
	if len(segmentPaths(t, dir)) < 2 {
		t.Fatalf("the test needs several segments")
	}
	mustClose(t, l)

	l, _ = mustOpen(t, dir, Options{SegmentSize: 4 << 10})
	defer mustClose(t, l)
	if got, want := l.Size(), files(); got != want {
		t.Errorf("after reopen: Size %d, files hold %d", got, want)
	}
	removed, err := l.TruncateBefore(l.LastSeq()-1, nil)
	if err != nil || len(removed) == 0 {
		t.Fatalf("TruncateBefore: %v %v", removed, err)
	}
	if got, want := l.Size(), files(); got != want {
		t.Errorf("after truncation: Size %d, files hold %d", got, want)
	}
}
