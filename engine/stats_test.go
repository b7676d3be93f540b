package engine

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// waitStats polls Stats until ok accepts it (the gauges are updated by the
// loops, so a change shows up shortly after the request that caused it).
func waitStats(t *testing.T, e *Engine, what string, ok func(Stats) bool) Stats {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := e.Stats()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats never showed %s; last %+v", what, st)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestStatsGauges follows a lock holder, a waiter that gives up, a waiter
// that is granted and a watcher through the gauges, which must return to
// zero: a gauge that leaks on any path keeps growing in production.
func TestStatsGauges(t *testing.T) {
	e := openTest(t, t.TempDir(), 2)
	ctx := context.Background()
	if st := e.Stats(); st.LocksHeld != 0 || st.Waiters != 0 || st.Watchers != 0 || len(st.ShardBusy) != 2 {
		t.Fatalf("fresh engine: %+v", st)
	}
	r, err := e.Do(ctx, "ns", &Request{LockID: "L", LockDurMs: 60_000})
	if err != nil {
		t.Fatal(err)
	}
	waitStats(t, e, "one lock held", func(s Stats) bool { return s.LocksHeld == 1 })

	// A waiter that is canceled leaves the gauge.
	cctx, cancel := context.WithCancel(ctx)
	gaveUp := make(chan error, 1)
	go func() {
		_, err := e.Do(cctx, "ns", &Request{LockID: "L", LockDurMs: 1000, LockWaitMs: 60_000})
		gaveUp <- err
	}()
	waitStats(t, e, "one waiter", func(s Stats) bool { return s.Waiters == 1 })
	cancel()
	<-gaveUp
	waitStats(t, e, "the canceled waiter gone", func(s Stats) bool { return s.Waiters == 0 })

	// A waiter that is granted becomes the holder.
	granted := make(chan *Response, 1)
	go func() {
		r, err := e.Do(ctx, "ns", &Request{LockID: "L", LockDurMs: 60_000, LockWaitMs: 60_000})
		if err != nil {
			t.Error(err)
		}
		granted <- r
	}()
	waitStats(t, e, "one waiter again", func(s Stats) bool { return s.Waiters == 1 && s.LocksHeld == 1 })
	if _, err := e.Do(ctx, "ns", &Request{UnlockID: "L", Unlock: r.Lock}); err != nil {
		t.Fatal(err)
	}
	r2 := <-granted
	waitStats(t, e, "the waiter holding", func(s Stats) bool { return s.Waiters == 0 && s.LocksHeld == 1 })

	// A watcher is counted until a write wakes it.
	woke := make(chan error, 1)
	go func() {
		_, err := e.Watch(ctx, "ns", "k", 0, time.Minute)
		woke <- err
	}()
	waitStats(t, e, "one watcher", func(s Stats) bool { return s.Watchers == 1 })
	if _, err := e.Do(ctx, "ns", &Request{KVSet: []KVSet{{Key: "k", Value: []byte(`1`)}}}); err != nil {
		t.Fatal(err)
	}
	if err := <-woke; err != nil {
		t.Fatal(err)
	}
	if _, err := e.Do(ctx, "ns", &Request{UnlockID: "L", Unlock: r2.Lock}); err != nil {
		t.Fatal(err)
	}
	st := waitStats(t, e, "everything released", func(s Stats) bool { return s.Watchers == 0 && s.LocksHeld == 0 && s.Waiters == 0 })
	var busy time.Duration
	for _, b := range st.ShardBusy {
		busy += b
	}
	if busy <= 0 {
		t.Errorf("the loops handled requests but report no busy time: %v", st.ShardBusy)
	}
}

// TestStatsWALAndSnapshot checks WALBytes against the files on disk and the
// snapshot bookkeeping, across a reopen.
func TestStatsWALAndSnapshot(t *testing.T) {
	dir := t.TempDir()
	e, err := Open(Config{Dir: dir, Shards: 2, SnapshotEveryRecords: -1})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		if _, err := e.Do(context.Background(), "ns", &Request{KVSet: []KVSet{{Key: "k", Value: []byte(`"some value"`)}}}); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := e.Stats().WALBytes, walFileBytes(t, dir); got != want || got == 0 {
		t.Errorf("WALBytes %d, segment files hold %d", got, want)
	}
	if st := e.Stats(); !st.LastSnapshot.IsZero() || st.SnapshotsTaken != 0 {
		t.Errorf("no snapshot yet, but %+v", st)
	}
	before := time.Now()
	if _, err := e.Snapshot(); err != nil {
		t.Fatal(err)
	}
	st := e.Stats()
	if st.SnapshotsTaken != 1 || st.SnapshotsFailed != 0 || st.LastSnapshot.Before(before.Add(-time.Second)) || st.LastSnapshotTook <= 0 {
		t.Errorf("after one snapshot: %+v", st)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e2 := openTest(t, dir, 2)
	st2 := e2.Stats()
	if st2.LastSnapshot.IsZero() || st2.SnapshotsTaken != 0 {
		t.Errorf("reopened from a snapshot: want its time and no snapshot taken yet, got %+v", st2)
	}
	if got, want := st2.WALBytes, walFileBytes(t, dir); got != want {
		t.Errorf("reopened: WALBytes %d, segment files hold %d", got, want)
	}
}

func walFileBytes(t *testing.T, dir string) int64 {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "wal"))
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, en := range ents {
		if len(en.Name()) != 20 {
			continue
		}
		fi, err := en.Info()
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}
