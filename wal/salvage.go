package wal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Salvaged says what Salvage did to a log.
type Salvaged struct {
	Aside    string   // the folder holding what was set aside, "" if nothing was
	SetAside []string // files set aside, as named in Aside
	Cut      string   // a damaged segment cut at its last valid record (a full copy is in Aside), or ""
	CutAt    int64    // Cut's length now
	Why      []string // why each part was set aside
	First    uint64   // the first record the log holds now
	Last     uint64   // the last record the log holds now; First-1 if it holds none
	Marked   uint64   // the tail marker before, 0 if there was none
	// EndedEarly: the marker named a segment that was missing (the log
	// had lost its newest segments before Salvage ran).
	EndedEarly bool
	// Lost: records after the log's new end (Last) were lost, with
	// whatever acknowledged writes and lock grants they held.
	Lost bool
}

// Salvage makes the log in dir one that Open accepts, losing as little as
// it can and deleting nothing: whatever the log cannot use is moved into
// dir/lost-<unix>/. That is a damaged segment (copied aside whole, then cut
// at its last valid record) and every later segment, unless the damage is
// in records the snapshot holds (then the segments before the first
// usable one after it go instead); and, when the records
// up to cut are held elsewhere (a snapshot), every segment if the log
// starts after cut+1 (a gap) or ends before cut (all of it is in the
// snapshot, and appending after it would reuse sequence numbers). The tail
// marker is then rewritten to the log as it is, or removed if no segment is
// left. Records after the log's new end are lost for good. The caller must
// hold the data directory's lock and should have raised its handle floor
// first: nothing in what is left knows the handles issued later.
func Salvage(dir, tailFile string, cut uint64, now time.Time) (Salvaged, error) {
	var s Salvaged
	var err error
	if s.Marked, err = readTail(tailFile); err != nil {
		s.Marked = 0 // unreadable: it is rewritten below either way
	}
	if err := removeTailTemps(tailFile); err != nil {
		return s, err
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		s.EndedEarly, s.Lost = s.Marked > 0, s.Marked > 0
		return s, finishSalvage(&s, dir, tailFile, cut+1)
	}
	before, err := listSegments(dir)
	if err != nil && !errors.As(err, new(*CorruptError)) {
		return s, err
	}
	s.EndedEarly = s.Marked > 0 && (len(before) == 0 || before[len(before)-1].first < s.Marked)
	s.Lost = s.EndedEarly
	for guard := 0; ; guard++ {
		_, err := scan(dir, func(uint64, []byte) error { return nil })
		var ce *CorruptError
		if !errors.As(err, &ce) {
			if err != nil {
				return s, err
			}
			break
		}
		if guard > len(before)+3 {
			return s, fmt.Errorf("wal: %s is still refused after setting aside its damaged part: %w", dir, err)
		}
		s.Why = append(s.Why, ce.Error())
		if from := coveredUpTo(dir, ce, cut); from != nil {
			s.Why = append(s.Why, fmt.Sprintf("the snapshot holds every record before %d, so the log can start at %s", from.first, from.path))
			err = s.setAsideBefore(dir, from.first, now)
		} else {
			s.Lost = true
			err = s.setAsideFrom(dir, ce.File, ce.Offset, now)
		}
		if err != nil {
			return s, err
		}
	}
	res, err := scan(dir, func(uint64, []byte) error { return nil })
	if err != nil {
		return s, err
	}
	segs, err := listSegments(dir)
	if err != nil {
		return s, err
	}
	if len(segs) > 0 && (res.first > cut+1 || res.last < cut) {
		why := fmt.Sprintf("the log holds records %d to %d but the snapshot covers up to record %d", res.first, res.last, cut)
		if res.first > cut+1 {
			why += ": the records in between are missing, so nothing after them can be applied"
			s.Lost = true
		} else {
			why += ": all of it is in the snapshot"
		}
		s.Why = append(s.Why, why)
		if err := s.setAsideFrom(dir, segs[0].path, 0, now); err != nil {
			return s, err
		}
	}
	return s, finishSalvage(&s, dir, tailFile, cut+1)
}

// finishSalvage rewrites the tail marker and fills in the log's range;
// an empty log starts after the snapshot at next.
func finishSalvage(s *Salvaged, dir, tailFile string, next uint64) error {
	s.First, s.Last = next, next-1
	segs, err := listSegments(dir)
	if errors.Is(err, os.ErrNotExist) || (err == nil && len(segs) == 0) {
		return removeTail(tailFile)
	}
	if err != nil {
		return err
	}
	res, err := scan(dir, func(uint64, []byte) error { return nil })
	if err != nil {
		return err
	}
	s.First, s.Last = res.first, res.last
	return writeTail(tailFile, segs[len(segs)-1].first)
}

// coveredUpTo returns the newest segment after the damage (or the damaged
// one, if damaged at its very start: a gap before it) that starts at or
// before cut+1: every record before it is in the snapshot, so the log can
// start there instead of ending before the damage. nil if there is none.
func coveredUpTo(dir string, ce *CorruptError, cut uint64) *segmentFile {
	segs, err := listSegments(dir)
	if err != nil {
		return nil
	}
	var from *segmentFile
	seen := false
	for i := range segs {
		isDamaged := segs[i].path == ce.File
		ok := seen || (isDamaged && ce.Offset == 0 && i > 0)
		if ok && segs[i].first <= cut+1 {
			from = &segs[i]
		}
		seen = seen || isDamaged
	}
	if !seen {
		return nil
	}
	return from
}

// setAsideBefore moves every segment that starts before first, oldest
// first: a crash part way leaves a log that starts later, which the
// snapshot still covers.
func (s *Salvaged) setAsideBefore(dir string, first uint64, now time.Time) error {
	if err := s.makeAside(dir, now); err != nil {
		return err
	}
	segs, err := listSegments(dir)
	if err != nil {
		return err
	}
	for _, seg := range segs {
		if seg.first >= first {
			break
		}
		if err := s.moveAside(seg.path); err != nil {
			return err
		}
	}
	if err := SyncDir(s.Aside); err != nil {
		return err
	}
	return SyncDir(dir)
}

func (s *Salvaged) makeAside(dir string, now time.Time) error {
	if s.Aside != "" {
		return nil
	}
	aside := filepath.Join(dir, "lost-"+strconv.FormatInt(now.Unix(), 10))
	for n := 1; ; n++ {
		err := os.Mkdir(aside, 0o755)
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrExist) {
			return err
		}
		aside = filepath.Join(dir, fmt.Sprintf("lost-%d-%d", now.Unix(), n))
	}
	s.Aside = aside
	return nil
}

// setAsideFrom moves file and every later segment into the lost folder;
// a segment damaged at off > 0 is copied there whole and cut at off, so
// the valid records before the damage stay in the log.
func (s *Salvaged) setAsideFrom(dir, file string, off int64, now time.Time) error {
	if err := s.makeAside(dir, now); err != nil {
		return err
	}
	segs, err := listSegments(dir)
	if err != nil {
		return err
	}
	var damaged *segmentFile
	for i := range segs {
		if segs[i].path == file {
			damaged = &segs[i]
		}
	}
	// Newest first: a crash part way leaves a log that is still a prefix.
	for i := len(segs) - 1; i >= 0 && damaged != nil && segs[i].first > damaged.first; i-- {
		if err := s.moveAside(segs[i].path); err != nil {
			return err
		}
	}
	if damaged == nil || off == 0 {
		if err := s.moveAside(file); err != nil {
			return err
		}
	} else {
		kept := filepath.Join(s.Aside, filepath.Base(file))
		whole, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		if err := writeFileSync(kept, whole); err != nil {
			return err
		}
		s.SetAside = append(s.SetAside, filepath.Base(file))
		if err := truncateSync(file, off); err != nil {
			return err
		}
		s.Cut, s.CutAt = file, off
	}
	if err := SyncDir(s.Aside); err != nil {
		return err
	}
	return SyncDir(dir)
}

func (s *Salvaged) moveAside(path string) error {
	if err := os.Rename(path, filepath.Join(s.Aside, filepath.Base(path))); err != nil {
		return err
	}
	s.SetAside = append(s.SetAside, filepath.Base(path))
	return nil
}

func truncateSync(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
