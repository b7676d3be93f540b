package wal

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// repairTail cuts the segment at path, whose bytes are data, back to keep
// bytes and makes the cut durable. The bytes cut off are kept aside first
// (setAside) when there is room for them; cutting itself needs no free
// space, so a full disk never stops the log from opening.
func repairTail(path string, data []byte, keep int64) (*Repair, error) {
	rep := &Repair{Segment: path, Offset: keep, LostBytes: int64(len(data)) - keep}
	kept, err := setAside(path, keep, data[keep:])
	switch {
	case err == nil:
		rep.KeptAs = kept
	case isNoSpace(err):
		rep.NotKept = err.Error()
	default:
		return nil, fmt.Errorf("wal: keeping the torn tail of %s aside: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(keep); err != nil {
		f.Close()
		return nil, fmt.Errorf("wal: truncating torn tail of %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("wal: fsync of repaired %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	if err := SyncDir(filepath.Dir(path)); err != nil {
		return nil, err
	}
	return rep, nil
}

// setAside writes cut, the bytes about to be cut off path at offset off,
// to <path>.broken-at-<off> (through a temporary file, so a crash or a
// full disk never leaves a partial copy under that name) and returns that
// name. The same damage met again, because a crash came before the cut was
// durable, finds its copy already there and reuses it; different bytes cut
// at the same offset later get a numbered name.
func setAside(path string, off int64, cut []byte) (string, error) {
	base := fmt.Sprintf("%s.broken-at-%d", path, off)
	name := base
	for n := 2; ; n++ {
		old, err := os.ReadFile(name)
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if err != nil {
			return "", err
		}
		if bytes.Equal(old, cut) {
			return name, nil
		}
		name = fmt.Sprintf("%s.%d", base, n)
	}
	tmp := name + ".tmp"
	if err := writeFileSync(tmp, cut); err != nil {
		os.Remove(tmp)
		return "", err
	}
	if err := os.Rename(tmp, name); err != nil {
		os.Remove(tmp)
		return "", err
	}
	return name, SyncDir(filepath.Dir(path))
}

func writeFileSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// isNoSpace reports whether err means the file system (or the user's
// quota) is full: the one failure that keeping the cut bytes may meet
// without refusing to start, because they were never acknowledged.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
