package engine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/latchkv/latch/wal"
)

// RestoreMarkerFile is in the data directory while `latch snapshot
// restore` replaces its contents: from before it deletes the old data
// until the new snapshot is published. Open refuses a directory that holds
// it, because what is there then is neither the old state nor the new one.
const RestoreMarkerFile = "RESTORING"

// ownedFiles are the regular files latch keeps at the top of a data
// directory; a crash can leave "<name>.tmp-*" beside each. "wal-tail"
// holds the first sequence of the newest log segment.
var ownedFiles = []string{"LOCK", HandleFloorFile, WalTailFile, RestoreMarkerFile}

// ownedDirs are the directories latch keeps there. It never makes a
// directory inside them.
var ownedDirs = []string{"wal", "snap"}

// ForeignEntries lists what in dir latch did not make (relative names,
// sorted): anything at the top but ownedFiles, their temp files and
// ownedDirs; an owned name of the wrong kind; any directory inside an
// owned directory. A tool that deletes latch's files refuses while the
// list is not empty, so that it never deletes an operator's.
func ForeignEntries(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		name := e.Name()
		switch {
		case isOwnedFile(name):
			if !e.Type().IsRegular() {
				out = append(out, name+" (not a regular file)")
			}
		case isOwnedDir(name):
			if !e.IsDir() {
				out = append(out, name+" (not a directory)")
				continue
			}
			inner, err := os.ReadDir(filepath.Join(dir, name))
			if err != nil {
				return nil, err
			}
			for _, ie := range inner {
				if !ie.Type().IsRegular() {
					out = append(out, filepath.Join(name, ie.Name()))
				}
			}
		default:
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out, nil
}

func isOwnedFile(name string) bool {
	for _, f := range ownedFiles {
		if name == f || strings.HasPrefix(name, f+".tmp-") {
			return true
		}
	}
	return false
}

func isOwnedDir(name string) bool {
	for _, d := range ownedDirs {
		if name == d {
			return true
		}
	}
	return false
}

// RemoveState deletes the state in dir that a restore replaces: the log,
// the snapshots, the log's tail marker (it describes the log deleted) and
// stray temp files. It keeps the
// lock, the handle floor (it only ever rises) and the restore marker, and
// touches nothing ForeignEntries would list: call that first.
func RemoveState(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		name := e.Name()
		keep := name == "LOCK" || name == HandleFloorFile || name == RestoreMarkerFile
		if keep || !(isOwnedFile(name) || isOwnedDir(name)) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return wal.SyncDir(dir)
}

// WriteRestoreMarker puts RestoreMarkerFile into dir durably, saying what
// is being restored, before anything of the old state is deleted.
func WriteRestoreMarker(dir, what string) error {
	tmp, err := os.CreateTemp(dir, RestoreMarkerFile+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	if _, err := fmt.Fprintln(tmp, what); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, RestoreMarkerFile)); err != nil {
		return err
	}
	return wal.SyncDir(dir)
}

// RemoveRestoreMarker ends a restore, durably: after it, dir boots.
func RemoveRestoreMarker(dir string) error {
	if err := os.Remove(filepath.Join(dir, RestoreMarkerFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return wal.SyncDir(dir)
}

// HasRestoreMarker reports whether a restore into dir was started and not
// finished, and what it restores.
func HasRestoreMarker(dir string) (bool, string, error) {
	b, err := os.ReadFile(filepath.Join(dir, RestoreMarkerFile))
	if errors.Is(err, os.ErrNotExist) {
		return false, "", nil
	}
	if err != nil {
		return false, "", err
	}
	return true, strings.TrimSpace(string(b)), nil
}

// errUnfinishedRestore is what Open says about a directory a restore left
// half done.
func errUnfinishedRestore(dir, what string) error {
	return fmt.Errorf("engine: %s holds an unfinished snapshot restore (%s says: %s): its old data is partly deleted and the backup is not yet in place; "+
		"finish it by running `latch snapshot restore --in FILE --data-dir %s` again, with that FILE or another backup",
		dir, filepath.Join(dir, RestoreMarkerFile), what, dir)
}
