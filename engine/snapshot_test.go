package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func writeKeys(t *testing.T, e *Engine, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		_, err := e.Do(context.Background(), fmt.Sprintf("ns%d", i%7), &Request{
			KVSet:  []KVSet{{Key: fmt.Sprintf("k%d", i), Value: []byte(fmt.Sprintf(`"value %d"`, i))}},
			Atomic: []AtomicOp{{Key: "n", Add: ptr(int64(1))}},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func segmentCount(t *testing.T, dir string) int {
	t.Helper()
	ents, _ := os.ReadDir(filepath.Join(dir, "wal"))
	n := 0
	for _, e := range ents {
		if len(e.Name()) == 20 {
			n++
		}
	}
	return n
}

// A snapshot bounds the log: segments it covers are removed, and a restart
// from snapshot + log tail restores exactly the same state, locks included.
func TestSnapshotTruncatesAndRestores(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, Shards: 2, SegmentSize: 4096, SnapshotEveryRecords: -1}
	e, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	writeKeys(t, e, 0, 500)
	lock, err := e.Do(context.Background(), "ns1", &Request{LockID: "L", LockDurMs: 3_600_000})
	if err != nil {
		t.Fatal(err)
	}
	before := segmentCount(t, dir)
	var last SnapshotInfo
	for i := 0; i < 3; i++ { // with SnapshotKeep 2, the second and third truncate
		writeKeys(t, e, 500+i*100, 600+i*100)
		if last, err = e.Snapshot(); err != nil {
			t.Fatal(err)
		}
	}
	after := segmentCount(t, dir)
	if after >= before {
		t.Fatalf("log not truncated: %d segments before, %d after", before, after)
	}
	snaps, _ := snapshotFiles(filepath.Join(dir, "snap"))
	if len(snaps) != 2 {
		t.Fatalf("%d snapshots kept, want 2: %v", len(snaps), snaps)
	}
	writeKeys(t, e, 800, 900) // a log tail after the newest snapshot
	want := dumpStateAfterClose(t, e)
	e2, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rec := e2.Recovered()
	if rec.Snapshot != last.Path || rec.Records == 0 {
		t.Fatalf("recovered from %q with %d records replayed; want %q and a tail", rec.Snapshot, rec.Records, last.Path)
	}
	if _, err := e2.Do(context.Background(), "ns1", &Request{LockID: "L", LockDurMs: 1000}); err == nil {
		t.Fatal("lock held before the snapshot is free after restoring it")
	}
	r, err := e2.Do(context.Background(), "ns2", &Request{LockID: "M", LockDurMs: 1000})
	if err != nil || r.Lock <= lock.Lock {
		t.Fatalf("handle after restore %v (err %v), want > %d", r, err, lock.Lock)
	}
	e2.Do(context.Background(), "ns2", &Request{UnlockID: "M", Unlock: r.Lock})
	if got := dumpStateAfterClose(t, e2); !reflect.DeepEqual(got, want) {
		t.Fatalf("state after snapshot restore differs")
	}
}

// A damaged newest snapshot is set aside as *.broken and the previous one,
// with the longer log tail it still has, gives the same state.
func TestDamagedSnapshotFallsBack(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, Shards: 2, SegmentSize: 4096, SnapshotEveryRecords: -1}
	e, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	writeKeys(t, e, 0, 300)
	if _, err := e.Snapshot(); err != nil {
		t.Fatal(err)
	}
	writeKeys(t, e, 300, 600)
	newest, err := e.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	want := dumpStateAfterClose(t, e)
	b, _ := os.ReadFile(newest.Path)
	b[len(b)/2] ^= 0x40
	os.WriteFile(newest.Path, b, 0o644)
	e2, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rec := e2.Recovered()
	if len(rec.BrokenSnapshots) != 1 || rec.Snapshot == newest.Path {
		t.Fatalf("recovery: %+v", rec)
	}
	if _, err := os.Stat(newest.Path + ".broken"); err != nil {
		t.Fatal("damaged snapshot not kept aside as .broken")
	}
	if got := dumpStateAfterClose(t, e2); !reflect.DeepEqual(got, want) {
		t.Fatal("state after falling back to the older snapshot differs")
	}
}

// With every snapshot gone but the log already truncated, recovery must
// refuse rather than start with part of the state.
func TestMissingSnapshotRefuses(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Dir: dir, Shards: 1, SegmentSize: 2048, SnapshotEveryRecords: -1}
	e, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		writeKeys(t, e, i*200, (i+1)*200)
		if _, err := e.Snapshot(); err != nil {
			t.Fatal(err)
		}
	}
	e.Close()
	os.RemoveAll(filepath.Join(dir, "snap"))
	_, err = Open(cfg)
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("open without the snapshots: %v, want a refusal naming missing records", err)
	}
}

// Automatic snapshots fire by record count.
func TestAutomaticSnapshot(t *testing.T) {
	dir := t.TempDir()
	done := make(chan SnapshotInfo, 10)
	e := openTestCfg(t, Config{Dir: dir, Shards: 2, SnapshotEveryRecords: 50,
		OnSnapshot: func(i SnapshotInfo, err error) {
			if err == nil {
				done <- i
			}
		}})
	writeKeys(t, e, 0, 100)
	info := <-done
	if info.Cut == 0 || info.Entries == 0 {
		t.Fatalf("automatic snapshot %+v", info)
	}
}

func openTestCfg(t testing.TB, cfg Config) *Engine {
	t.Helper()
	e, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}
