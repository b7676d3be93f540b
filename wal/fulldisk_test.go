package wal

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/latchkv/latch/internal/testfs"
)

// fullDiskLog writes a one-segment log of 100 records of 1 KiB into dir on
// a small file system, tears its last record and returns the segment's
// path, the damaged bytes and where the last record starts.
func fullDiskLog(t *testing.T, dir string) (seg string, damaged []byte, lastStart int, recs [][]byte) {
	t.Helper()
	for i := range 100 {
		recs = append(recs, payloadOf(i, 1024))
	}
	l, _ := mustOpen(t, dir, Options{SegmentSize: 256 << 10})
	appendWait(t, l, recs...)
	mustClose(t, l)
	segs := segmentPaths(t, dir)
	if len(segs) != 1 {
		t.Fatalf("%d segments, want 1", len(segs))
	}
	data, err := os.ReadFile(segs[0].path)
	if err != nil {
		t.Fatal(err)
	}
	offs := entryOffsets(t, data)
	damaged = data[:len(data)-3]
	if err := os.WriteFile(segs[0].path, damaged, 0o644); err != nil {
		t.Fatal(err)
	}
	return segs[0].path, damaged, offs[len(offs)-2], recs
}

// filesBesideSegments lists what dir holds besides its segment files.
func filesBesideSegments(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if len(e.Name()) != 20 {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestTornTailRepairOnFullDisk: repairing a torn tail needs no free space.
// With the disk full the cut bytes cannot be kept, yet the log opens, cut
// back, with no partial file left behind; with less room than the segment
// but enough for the cut bytes they are kept; and the same damage met again
// (a crash before the cut was durable) reuses that file instead of piling
// up another.
func TestTornTailRepairOnFullDisk(t *testing.T) {
	mnt := testfs.Small(t, 1<<20)
	dir := filepath.Join(mnt, "wal")
	seg, damaged, lastStart, recs := fullDiskLog(t, dir)
	filler := testfs.Fill(t, mnt, 0)

	var noRoom []error
	l, got, err := openReplay(t, dir, Options{SegmentSize: 256 << 10, OnNoRoom: func(_ string, err error) { noRoom = append(noRoom, err) }})
	if err != nil {
		t.Fatalf("Open with the disk full: %v", err)
	}
	if len(noRoom) != 1 || !errors.Is(noRoom[0], syscall.ENOSPC) {
		t.Errorf("OnNoRoom heard %v, want one ENOSPC: the segment's room cannot be reserved on a full disk", noRoom)
	}
	checkRecords(t, got, 1, recs[:len(recs)-1])
	rep := l.Repaired()
	if rep == nil || rep.Offset != int64(lastStart) || rep.KeptAs != "" || !strings.Contains(rep.NotKept, "no space left") {
		t.Fatalf("Repaired() = %+v, want a cut at %d, nothing kept for want of space", rep, lastStart)
	}
	mustClose(t, l)
	if extra := filesBesideSegments(t, dir); len(extra) != 0 {
		t.Fatalf("a full disk left %v beside the segment", extra)
	}
	if fi, err := os.Stat(seg); err != nil || fi.Size() != int64(lastStart) {
		t.Fatalf("segment after the repair: %v, want %d bytes", err, lastStart)
	}

	// Room for the cut bytes, not for a copy of the segment.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	testfs.Fill(t, mnt, int64(len(damaged))/2)
	for attempt := range 2 {
		if err := os.WriteFile(seg, damaged, 0o644); err != nil {
			t.Fatal(err)
		}
		l, got, err := openReplay(t, dir, Options{SegmentSize: 256 << 10})
		if err != nil {
			t.Fatalf("attempt %d: Open with %d bytes free: %v", attempt, testfs.Free(t, mnt), err)
		}
		checkRecords(t, got, 1, recs[:len(recs)-1])
		rep := l.Repaired()
		mustClose(t, l)
		if rep == nil || rep.KeptAs == "" {
			t.Fatalf("attempt %d: Repaired() = %+v, want the cut bytes kept", attempt, rep)
		}
		kept, err := os.ReadFile(rep.KeptAs)
		if err != nil || !slices.Equal(kept, damaged[lastStart:]) {
			t.Fatalf("attempt %d: %s holds %d bytes (%v), want the %d bytes cut off", attempt, rep.KeptAs, len(kept), err, len(damaged)-lastStart)
		}
		if extra := filesBesideSegments(t, dir); len(extra) != 1 || extra[0] != filepath.Base(rep.KeptAs) {
			t.Fatalf("attempt %d: beside the segment: %v, want only %s", attempt, extra, filepath.Base(rep.KeptAs))
		}
	}
}

// allocated is the space a file holds on disk, which a reservation beyond
// its length counts in.
func allocated(t *testing.T, path string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// TestSegmentRoomReserved: a segment's whole size is reserved on disk when
// the log opens it or creates it, without changing its length, so appends
// inside it succeed on a disk that something else has filled.
func TestSegmentRoomReserved(t *testing.T) {
	mnt := testfs.Small(t, 1<<20)
	dir := filepath.Join(mnt, "wal")
	const seg = 256 << 10
	l, _ := mustOpen(t, dir, Options{SegmentSize: seg})
	filler := testfs.Fill(t, mnt, 0)
	var recs [][]byte
	for i := range 200 {
		recs = append(recs, payloadOf(i, 1000))
	}
	appendWait(t, l, recs...)
	mustClose(t, l)
	segs := segmentPaths(t, dir)
	if fi, err := os.Stat(segs[0].path); err != nil || len(segs) != 1 || fi.Size() != l.Size() {
		t.Fatalf("after the appends: %d segments, first %v, want one of %d bytes", len(segs), err, l.Size())
	}
	l, got := mustOpen(t, dir, Options{SegmentSize: seg})
	checkRecords(t, got, 1, recs)

	// The segment the log cycles to is reserved as it is created.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for len(segmentPaths(t, dir)) < 2 {
		appendWait(t, l, payloadOf(0, 1000))
	}
	segs = segmentPaths(t, dir)
	if a := allocated(t, segs[1].path); a < seg {
		t.Fatalf("the new segment holds %d bytes on disk, want its whole %d reserved", a, seg)
	}
	mustClose(t, l)
}
