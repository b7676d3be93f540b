package wal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// # The tail marker
//
// Segments are checked for order and checksums, but a log whose newest
// segments are gone (deleted by hand, or the whole log directory beside a
// snapshot) looks like a log that simply ended there: the scan cannot see
// what is missing. So the log keeps, outside its own directory, the first
// sequence number of its newest segment (Options.TailFile). It is written
// after a new segment's file and name are durable and before any record in
// that segment is acknowledged, so it is a lower bound on where the log
// ends: a crash in between leaves it one segment behind, which is harmless.
// Open refuses a log in which no segment starts at or after it.
// TruncateBefore never removes a segment that ends before the marked one
// starts unless the marker has moved past it, so no crash leaves the marker
// naming a segment that truncation removed while its successor's name was
// not yet durable.

// EndsEarlyError reports a log whose newest segments are missing.
type EndsEarlyError struct {
	Marker string // the tail marker file
	Want   uint64 // the first sequence of the newest segment it records
	Newest string // the newest segment found, "" if none
}

func (e *EndsEarlyError) Error() string {
	found := "there is no log segment at all"
	if e.Newest != "" {
		found = "the newest segment is " + e.Newest
	}
	dataDir := filepath.Dir(e.Marker)
	return fmt.Sprintf("wal: the log ends early: %s records that a log segment starting at record %d (file %020d) was created, but %s; "+
		"the segments from record %d on are missing, and with them every acknowledged write and held lock they recorded, so the server refuses to start. "+
		"Put the missing segment files back if you have them, restore a backup (latch snapshot restore), "+
		"or start from what is left with: latch recover --data-dir %s (see docs/OPERATIONS.md)",
		e.Marker, e.Want, e.Want, found, e.Want, dataDir)
}

// Unwrap lets errors.Is(err, ErrCorrupt) match.
func (e *EndsEarlyError) Unwrap() error { return ErrCorrupt }

// readTail returns the value in the tail marker, 0 if there is none.
func readTail(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("wal: %s does not hold a sequence number: %q; it is written by latch, never by hand "+
			"(latch recover --data-dir %s rewrites it from the log as it is)", path, strings.TrimSpace(string(b)), filepath.Dir(path))
	}
	return n, nil
}

func writeTail(path string, first uint64) error { return WriteUintFile(path, first) }

// WriteUintFile replaces the file at path with the decimal n and a newline,
// atomically: a temp file beside it (path.tmp-*), fsynced, renamed over
// it, and the directory fsynced (without fsync under the latch_nofsync
// tag). The tail marker and the engine's handle floor are such files.
func WriteUintFile(path string, n uint64) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	if _, err := fmt.Fprintf(tmp, "%d\n", n); err != nil {
		tmp.Close()
		return err
	}
	if fsyncEnabled {
		if err := tmp.Sync(); err != nil {
			tmp.Close()
			return err
		}
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if !fsyncEnabled {
		return nil
	}
	return SyncDir(filepath.Dir(path))
}

// removeTail deletes the tail marker, durably.
func removeTail(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// removeTailTemps removes temp files a crash left while the marker was
// being replaced; they were never the marker.
func removeTailTemps(path string) error {
	temps, err := filepath.Glob(path + ".tmp-*")
	if err != nil {
		return err
	}
	for _, t := range temps {
		if err := os.Remove(t); err != nil {
			return err
		}
	}
	return nil
}

// checkTail refuses a log in dir with no segment at or after the marker.
func checkTail(dir, marker string) (uint64, error) {
	want, err := readTail(marker)
	if err != nil || want == 0 {
		return 0, err
	}
	segs, err := listSegments(dir)
	if err != nil {
		return 0, err
	}
	if len(segs) > 0 && segs[len(segs)-1].first >= want {
		return want, nil
	}
	e := &EndsEarlyError{Marker: marker, Want: want}
	if len(segs) > 0 {
		e.Newest = segs[len(segs)-1].path
	}
	return 0, e
}

// markTail records first as the newest segment's first sequence and tells
// SyncHook that the marker's directory was fsynced.
func (l *Log) markTail(first uint64) error {
	if err := writeTail(l.opts.TailFile, first); err != nil {
		return fmt.Errorf("wal: writing the tail marker %s: %w", l.opts.TailFile, err)
	}
	l.marked.Store(first)
	if fsyncEnabled {
		l.synced("dirsync", filepath.Dir(l.opts.TailFile), 0)
	}
	return nil
}
