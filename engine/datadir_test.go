package engine

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenRefusesUnfinishedRestore: a directory with the restore marker is
// refused with a message naming the restore to run again, and nothing in
// it is touched: in particular not the temp file the restore was writing
// into snap/, which Open otherwise removes as a crash's leftover.
func TestOpenRefusesUnfinishedRestore(t *testing.T) {
	dir := t.TempDir()
	if err := WriteRestoreMarker(dir, "restoring /backups/b.snap"); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "snap", "restore.tmp-123")
	if err := os.MkdirAll(filepath.Dir(tmp), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmp, []byte("half a snapshot"), 0o644); err != nil {
		t.Fatal(err)
	}
	e, err := Open(Config{Dir: dir, Shards: 1})
	if err == nil {
		e.Close()
		t.Fatal("Open served a directory a restore left unfinished")
	}
	for _, want := range []string{"unfinished snapshot restore", "/backups/b.snap", "latch snapshot restore", "again"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Open's refusal does not say %q: %v", want, err)
		}
	}
	if _, err := os.Stat(tmp); err != nil {
		t.Errorf("Open removed the restore's temp file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "wal")); err == nil {
		t.Errorf("Open created wal/ in a directory it refused")
	}
	// Finished, the directory opens (and the lock was released).
	if err := RemoveRestoreMarker(dir); err != nil {
		t.Fatal(err)
	}
	openTest(t, dir, 1).Close()
}

// TestForeignEntries: latch's own names, temp files included, are not
// listed; anything else is, and so is an owned name of the wrong kind or a
// directory inside wal/ or snap/.
func TestForeignEntries(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"wal", "snap", "snap/x", "extra", "LOCK"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"handle-floor", "handle-floor.tmp-1", "wal-tail", "RESTORING.tmp-2", "wal/00000000000000000001", "wal/00000000000000000001.broken", "snap/snap-00000000000000000001", "notes.txt", "handle-floor.bak"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ForeignEntries(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := "LOCK (not a regular file), extra, handle-floor.bak, notes.txt, snap/x"
	if strings.Join(got, ", ") != want {
		t.Errorf("ForeignEntries = %q, want %q", strings.Join(got, ", "), want)
	}
	if got, err := ForeignEntries(filepath.Join(dir, "missing")); err != nil || len(got) != 0 {
		t.Errorf("a missing directory: %v, %v; want nothing foreign", got, err)
	}
}
