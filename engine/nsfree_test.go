package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/latchkv/latch/snapshot"
)

// namespacesInMemory counts the namespaces the shard loops hold, state or
// not, read on each loop: what the heap keeps, unlike Overview, which
// counts only namespaces with state.
func namespacesInMemory(t *testing.T, e *Engine) int {
	t.Helper()
	n := 0
	for _, s := range e.shards {
		c, err := onLoop(context.Background(), s, func() int { return len(s.nss) })
		if err != nil {
			t.Fatal(err)
		}
		n += c
	}
	return n
}

// snapshotNamespaces lists the namespace rows of the newest snapshot in dir.
func snapshotNamespaces(t *testing.T, dir string) []string {
	t.Helper()
	names, err := snapshotFiles(filepath.Join(dir, "snap"))
	if err != nil || len(names) == 0 {
		t.Fatalf("no snapshot in %s (%v)", dir, err)
	}
	var rows []string
	_, _, err = snapshot.ReadFile(filepath.Join(dir, "snap", names[0]), func(en snapshot.Entry) error {
		if en.Tag == snapshot.TagNamespace {
			rows = append(rows, en.Name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(rows)
	return rows
}

// Reads, watches and refused requests leave nothing behind: no namespace
// in memory, none in the next snapshot, none after a restart.
func TestReadsCreateNoNamespaces(t *testing.T) {
	dir := t.TempDir()
	e := openTest(t, dir, 2)
	ctx := context.Background()
	const n = 200
	for i := range n {
		doOK(t, e, fmt.Sprintf("read%d", i), &Request{KVGet: []string{"k"}})
		if _, err := e.Do(ctx, fmt.Sprintf("unlock%d", i), &Request{UnlockID: "L", Unlock: 7}); !errors.Is(err, ErrLockLost) {
			t.Fatalf("unlock of a lock never taken: %v, want lock_lost", err)
		}
		if _, err := e.Do(ctx, fmt.Sprintf("ifeq%d", i), &Request{Atomic: []AtomicOp{{Key: "c", IfEq: ptr(int64(1)), Add: ptr(int64(1))}}}); !errors.Is(err, ErrPreconditionFailed) {
			t.Fatalf("IfEq on a missing counter: %v, want precondition_failed", err)
		}
		// A watch that parks and times out, and one answered at once.
		if r, err := e.Watch(ctx, fmt.Sprintf("watch%d", i), "k", 0, time.Millisecond); err != nil || r.Version != 0 {
			t.Fatalf("watch that times out: %+v, %v", r, err)
		}
		if r, err := e.Watch(ctx, fmt.Sprintf("now%d", i), "k", 9, time.Minute); err != nil || r.Version != 0 {
			t.Fatalf("watch of a stale version: %+v, %v", r, err)
		}
	}
	// A watch's cancel notice reaches its loop just after Watch returns.
	waitForCount(t, "namespaces in memory after reads", 0, func() int { return namespacesInMemory(t, e) })
	if ov, err := e.Overview(ctx); err != nil || ov.Namespaces != 0 {
		t.Fatalf("Overview: %+v, %v; want 0 namespaces", ov, err)
	}

	doOK(t, e, "written", &Request{KVSet: []KVSet{{Key: "k", Value: []byte(`1`)}}})
	if _, err := e.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if got := snapshotNamespaces(t, dir); fmt.Sprint(got) != "[written]" {
		t.Fatalf("snapshot namespace rows: %v, want [written]", got)
	}
	e.Close()
	e = openTest(t, dir, 2)
	if got := namespacesInMemory(t, e); got != 1 {
		t.Fatalf("namespaces after restart: %d, want 1", got)
	}
}

// A namespace whose state is all undone is freed: counters back to 0,
// locks released, idempotency ids expired, watchers gone. One that ever
// held a KV key keeps its revision (see doc.go), so versions never repeat.
func TestEmptiedNamespacesAreFreed(t *testing.T) {
	dir := t.TempDir()
	e := openTest(t, dir, 1)
	ctx := context.Background()

	doOK(t, e, "ctr", &Request{Atomic: []AtomicOp{{Key: "c", Add: ptr(int64(5))}}})
	doOK(t, e, "ctr", &Request{Atomic: []AtomicOp{{Key: "c", Add: ptr(int64(-5))}}})

	held := doOK(t, e, "lock", &Request{LockID: "L", LockDurMs: 60_000})
	waiter := parkWaiter(e, ctx, "lock", "L")
	waitForCount(t, "waiters", 1, func() int { return e.LockWaiters("lock", "L") })
	doOK(t, e, "lock", &Request{UnlockID: "L", Unlock: held.Lock})
	w := <-waiter
	if w.err != nil {
		t.Fatal(w.err)
	}
	doOK(t, e, "lock", &Request{UnlockID: "L", Unlock: w.resp.Lock})

	doOK(t, e, "expiring", &Request{LockID: "E", LockDurMs: 1})

	doOK(t, e, "idem", &Request{IdempotencyIDs: []string{"once"}, IdempotencyTTLMs: 1})

	// A watch parked on a namespace that does not exist yet is woken
	// by the write that creates it.
	woke := make(chan WatchResult, 1)
	go func() {
		r, err := e.Watch(ctx, "kv", "k", 0, time.Minute)
		if err != nil {
			t.Error(err)
		}
		woke <- r
	}()
	waitForCount(t, "watchers", 1, func() int { return e.KeyWatchers("kv", "k") })
	doOK(t, e, "kv", &Request{KVSet: []KVSet{{Key: "k", Value: []byte(`1`)}}})
	if r := <-woke; r.Version != 1 {
		t.Fatalf("watch woke with %+v, want version 1", r)
	}
	doOK(t, e, "kv", &Request{KVSet: []KVSet{{Key: "k", Delete: true}}})

	waitForCount(t, "namespaces in memory", 1, func() int { return namespacesInMemory(t, e) })
	if _, err := e.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if got := snapshotNamespaces(t, dir); fmt.Sprint(got) != "[kv]" {
		t.Fatalf("snapshot namespace rows: %v, want [kv]", got)
	}
	// The same history replayed from the log alone frees the same ones.
	e.Close()
	if err := removeSnapshots(dir); err != nil {
		t.Fatal(err)
	}
	e = openTest(t, dir, 1)
	if got := namespacesInMemory(t, e); got != 1 {
		t.Fatalf("namespaces after replaying the log: %d, want 1", got)
	}
	// The kept revision: the next write is version 3, never 1 again.
	if r := doOK(t, e, "kv", &Request{KVSet: []KVSet{{Key: "k", Value: []byte(`2`)}}, KVGet: []string{"k"}}); r.KV[0].Version != 3 {
		t.Fatalf("version after delete and restart: %d, want 3", r.KV[0].Version)
	}
}

// removeSnapshots deletes every snapshot in dir, so Open replays the whole
// log. Only valid while the log has not been truncated.
func removeSnapshots(dir string) error {
	names, err := snapshotFiles(filepath.Join(dir, "snap"))
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := os.Remove(filepath.Join(dir, "snap", n)); err != nil {
			return err
		}
	}
	return nil
}

// A snapshot written before empty namespaces were freed holds a row for
// each; loading it must not bring them back.
func TestOldSnapshotEmptyRowsDropped(t *testing.T) {
	dir := t.TempDir()
	snapDir := filepath.Join(dir, "snap")
	if err := os.MkdirAll(snapDir, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := snapshot.WriteFile(snapDir, fmt.Sprintf("%s%020d", snapPrefix, 0), snapshot.Header{}, func(w *snapshot.Writer) error {
		for i := range 50 {
			if err := w.Namespace(fmt.Sprintf("ghost%d", i), 0); err != nil {
				return err
			}
		}
		if err := w.Namespace("real", 0); err != nil {
			return err
		}
		return w.Counter("c", 3)
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := openTest(t, dir, 2)
	if got := namespacesInMemory(t, e); got != 1 {
		t.Fatalf("namespaces after loading a snapshot with 50 empty rows: %d, want 1", got)
	}
	if r := doOK(t, e, "real", &Request{Atomic: []AtomicOp{{Key: "c"}}}); r.Atomic[0].Value != 3 {
		t.Fatalf("counter: %d, want 3", r.Atomic[0].Value)
	}
}
