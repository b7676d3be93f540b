package engine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/latchkv/latch/snapshot"
	"github.com/latchkv/latch/wal"
)

// WalTailFile is the file in the data directory that holds the first
// sequence number of the log's newest segment, so that a log whose newest
// segments are missing is refused (wal/tail.go).
const WalTailFile = "wal-tail"

// Recovered is what Recover did to a data directory.
type Recovered struct {
	wal.Salvaged
	Snapshot    string // the newest snapshot that passes its checks, "" if none
	SnapshotCut uint64 // the last record it covers
	HandleFloor uint64 // the handle floor now in force
}

// Recover makes a data directory whose log is damaged or ends early one
// that Open accepts, and that never reissues a lock handle: it raises the
// handle floor first, above every handle the clock allows to have been
// issued (TimeFloor of now, or of the newest file's modification time if
// the clock went back), then sets aside what the log cannot use
// (wal.Salvage). Nothing is deleted. What was set aside, and every record
// after the log's new end, is lost to the server.
func Recover(dir string, now time.Time) (Recovered, error) {
	var r Recovered
	if !looksLikeDataDir(dir) {
		return r, fmt.Errorf("%s does not look like a latch data directory (no wal/, snap/ or %s)", dir, WalTailFile)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return r, err
	}
	defer lock.Close()
	latest := now
	if t := newestWrite(dir); t.After(latest) {
		latest = t
	}
	// Before the log changes: a crash from here on still starts above
	// every handle the lost records held.
	if r.HandleFloor, err = RaiseHandleFloor(dir, TimeFloor(latest)); err != nil {
		return r, err
	}
	if r.Snapshot, r.SnapshotCut, err = newestGoodSnapshot(filepath.Join(dir, "snap")); err != nil {
		return r, err
	}
	r.Salvaged, err = wal.Salvage(filepath.Join(dir, "wal"), filepath.Join(dir, WalTailFile), r.SnapshotCut, now)
	return r, err
}

func looksLikeDataDir(dir string) bool {
	for _, n := range []string{"wal", "snap", WalTailFile} {
		if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
			return true
		}
	}
	return false
}

// newestWrite is the latest modification time of the log's and the
// snapshots' files and of the tail marker: when the old server last wrote,
// by its clock.
func newestWrite(dir string) time.Time {
	var latest time.Time
	paths := []string{filepath.Join(dir, WalTailFile)}
	for _, sub := range []string{"wal", "snap"} {
		ents, _ := os.ReadDir(filepath.Join(dir, sub))
		for _, e := range ents {
			paths = append(paths, filepath.Join(dir, sub, e.Name()))
		}
	}
	for _, p := range paths {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.ModTime().After(latest) {
			latest = st.ModTime()
		}
	}
	return latest
}

// newestGoodSnapshot finds the snapshot Open would load, without changing
// anything: the newest one that passes its checks.
func newestGoodSnapshot(dir string) (string, uint64, error) {
	names, err := snapshotFiles(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", 0, err
	}
	for _, n := range names {
		path := filepath.Join(dir, n)
		hdr, _, err := snapshot.ReadFile(path, func(snapshot.Entry) error { return nil })
		if err == nil {
			return path, hdr.Cut, nil
		}
		if !errors.Is(err, snapshot.ErrCorrupt) {
			return "", 0, err
		}
	}
	return "", 0, nil
}
