package wal

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// segmentFile is one tidwall/wal segment: its first index is its name.
type segmentFile struct {
	first uint64
	path  string
}

// Repair describes a torn tail that Open cut off.
type Repair struct {
	Segment   string // the segment that was truncated
	Offset    int64  // its new length: the end of the last valid record
	LostBytes int64  // bytes cut off (never acknowledged)
	// KeptAs holds the bytes cut off, <segment>.broken-at-<Offset>; it is
	// "" when there was no room to keep them (NotKept says why).
	KeptAs  string
	NotKept string
}

// scanResult is what Open learned from the segment files.
type scanResult struct {
	first, last uint64 // sequence range of valid records; last = first-1 if none
	tailBytes   int64  // size of the last segment after any repair
	repair      *Repair
}

// listSegments returns the segments of dir in index order.
func listSegments(dir string) ([]segmentFile, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var segs []segmentFile
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || len(name) < 20 {
			continue
		}
		if strings.HasSuffix(name, ".START") || strings.HasSuffix(name, ".END") {
			return nil, &CorruptError{File: filepath.Join(dir, name), Reason: "unexpected tidwall/wal truncation file"}
		}
		if len(name) != 20 {
			continue // *.broken and anything else of ours
		}
		idx, err := strconv.ParseUint(name, 10, 64)
		if err != nil || idx == 0 {
			continue
		}
		segs = append(segs, segmentFile{first: idx, path: filepath.Join(dir, name)})
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].first < segs[j].first })
	return segs, nil
}

// scan validates every segment in order, calling replay for each valid
// record, and repairs a torn tail in the last segment. See doc.go.
func scan(dir string, replay func(seq uint64, payload []byte) error) (scanResult, error) {
	segs, err := listSegments(dir)
	if err != nil {
		return scanResult{}, err
	}
	if len(segs) == 0 {
		return scanResult{first: 1, last: 0}, nil
	}
	res := scanResult{first: segs[0].first}
	expect := segs[0].first
	for i, seg := range segs {
		isLast := i == len(segs)-1
		if seg.first != expect {
			return res, &CorruptError{File: seg.path, Offset: 0,
				Reason: fmt.Sprintf("segment starts at record %d but record %d was expected (a segment is missing)", seg.first, expect)}
		}
		data, err := os.ReadFile(seg.path)
		if err != nil {
			return res, err
		}
		off := 0
		for off < len(data) {
			frame, n, ok := nextEntry(data[off:])
			var seq uint64
			var payload []byte
			wrongSeq := false // an intact record in the wrong place: never a torn write
			if ok {
				seq, payload, err = DecodeFrame(frame)
				wrongSeq = err == nil && seq != expect
				ok = err == nil && seq == expect
			}
			if !ok {
				reason := describeDamage(data[off:], expect)
				if !isLast || wrongSeq {
					return res, &CorruptError{File: seg.path, Offset: int64(off), Reason: reason}
				}
				if later := findLaterRecord(data[off+1:], expect); later >= 0 && !unwrittenSector(data, off, off+1+later) {
					return res, &CorruptError{File: seg.path, Offset: int64(off),
						Reason: reason + fmt.Sprintf("; a valid later record follows at offset %d, so this is not a torn tail", off+1+later)}
				}
				rep, err := repairTail(seg.path, data, int64(off))
				if err != nil {
					return res, err
				}
				res.repair = rep
				break
			}
			if err := replay(seq, payload); err != nil {
				return res, fmt.Errorf("wal: replay of record %d in %s: %w", seq, seg.path, err)
			}
			expect++
			off += n
		}
		if isLast {
			res.tailBytes = int64(off)
		}
	}
	res.last = expect - 1
	return res, nil
}

// describeDamage says why the entry at the start of b was rejected.
func describeDamage(b []byte, expect uint64) string {
	frame, _, ok := nextEntry(b)
	if !ok {
		return "entry length runs past the end of the file (torn write)"
	}
	seq, _, err := DecodeFrame(frame)
	if err != nil {
		return "record checksum mismatch"
	}
	return fmt.Sprintf("record has sequence %d, expected %d", seq, expect)
}

// SectorSize is the unit a disk writes atomically, and the grain at which
// a power loss can leave a hole in data the page cache had not written back.
const SectorSize = 512

// unwrittenSector reports whether the damage between off and the valid
// record at later looks like sectors the disk never wrote rather than
// corruption: either a whole sector-aligned run of SectorSize zero bytes,
// or zeros from off itself up to a sector boundary (a valid entry never
// starts with a zero byte: that would be a length-0 entry, which this
// package never writes). Only the batch being written when the power
// failed can look like this, with later sectors of the same write reaching
// the disk before earlier ones; none of it was acknowledged, because a
// Ticket resolves only after its fsync. A flipped bit in an acknowledged
// record does not zero a sector, so it is still refused as corruption.
func unwrittenSector(data []byte, off, later int) bool {
	boundary := (off/SectorSize + 1) * SectorSize
	if data[off] == 0 && boundary <= later && allZero(data[off:boundary]) {
		return true
	}
	for s := boundary; s+SectorSize <= later; s += SectorSize {
		if allZero(data[s : s+SectorSize]) {
			return true
		}
	}
	return false
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// findLaterRecord looks for any valid record with a sequence number of at
// least expect that starts in b, byte by byte. It returns its offset in b,
// or -1. Only used on damage, so its cost does not matter.
func findLaterRecord(b []byte, expect uint64) int {
	for i := 0; i < len(b); i++ {
		frame, _, ok := nextEntry(b[i:])
		if !ok || len(frame) < headerSize {
			continue
		}
		// A cheap filter before the checksum: the sequence must be plausible.
		seq := leUint64(frame[crcSize:])
		if seq < expect || seq > expect+uint64(len(b)) {
			continue
		}
		if _, _, err := DecodeFrame(frame); err == nil {
			return i
		}
	}
	return -1
}

func leUint64(b []byte) uint64 {
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

// SyncDir fsyncs a directory so that file creations, renames and removals
// in it are durable; tidwall/wal never does this itself.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync of directory %s: %w", dir, err)
	}
	return nil
}
