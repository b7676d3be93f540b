package wal

import (
	"fmt"
	"os"
	"path/filepath"
)

// LastSeq is the sequence number of the last record appended (durable or
// not). With every appender paused it is a consistent cut of the log.
func (l *Log) LastSeq() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.next - 1
}

// FirstSeq is the sequence number of the first record on disk when the log
// was opened (last+1 when it held none).
func (l *Log) FirstSeq() uint64 { return l.first }

// TruncateBefore deletes every segment file whose records all have a
// sequence number of at most cut, oldest first, then fsyncs the directory.
// The segment being written is never deleted. Call it only once the state
// up to cut is durable elsewhere (a published snapshot, DESIGN I8).
//
// A crash part way leaves a prefix of those segments deleted, which Open
// accepts: the log then simply starts later. tidwall/wal is not told: it
// only ever touches its tail segment, and latch never reads through it.
//
// afterEach, if not nil, runs after each file is removed (crash tests).
func (l *Log) TruncateBefore(cut uint64, afterEach func()) (removed []string, err error) {
	segs, err := listSegments(l.dir)
	if err != nil {
		return nil, err
	}
	for i := 0; i+1 < len(segs); i++ {
		if segs[i+1].first-1 > cut {
			break
		}
		// Until the marker names the next segment, that segment's name may
		// not be durable yet, and this one may be all a crash leaves of
		// the log's end (see tail.go).
		if l.opts.TailFile != "" && segs[i+1].first > l.marked.Load() {
			break
		}
		if err := l.step("truncate"); err != nil {
			return removed, fmt.Errorf("wal: removing %s: %w", segs[i].path, err)
		}
		st, statErr := os.Stat(segs[i].path)
		if err := os.Remove(segs[i].path); err != nil {
			return removed, fmt.Errorf("wal: removing %s: %w", segs[i].path, err)
		}
		if statErr == nil {
			l.size.Add(-st.Size())
		}
		removed = append(removed, filepath.Base(segs[i].path))
		if afterEach != nil {
			afterEach()
		}
	}
	if len(removed) > 0 {
		if err := SyncDir(l.dir); err != nil {
			return removed, err
		}
		l.synced("dirsync", l.dir, 0)
	}
	return removed, nil
}

// startAfter makes an empty log begin at sequence after+1 by creating its
// first, empty segment under that name. Used when a data directory is built
// from a snapshot whose cut is after.
func startAfter(dir string, after uint64) error {
	segs, err := listSegments(dir)
	if err != nil || len(segs) > 0 || after == 0 {
		return err
	}
	f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("%020d", after+1)), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return SyncDir(dir)
}
