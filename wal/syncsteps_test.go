package wal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// syncEvent is one SyncHook call.
type syncEvent struct {
	step, file string
	size       int64
	actual     int64 // the file's size on disk during the call (-1 for a directory)
}

// TestSyncHookReportsWhatIsDurable checks SyncHook against the files: each
// "fsync" names the tail segment at its size on disk, each "cycle" a
// closed segment at its full size, a "dirsync" follows every batch that
// created a segment, "create" is stepped once per new segment, and
// TruncateBefore steps "truncate" once per removed file and then reports a
// "dirsync".
func TestSyncHookReportsWhatIsDurable(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	var events []syncEvent
	steps := map[string]int{}
	opts := Options{
		SegmentSize: 300,
		FaultHook: func(step string) error {
			mu.Lock()
			steps[step]++
			mu.Unlock()
			return nil
		},
		SyncHook: func(step, file string, size int64) {
			ev := syncEvent{step: step, file: file, size: size, actual: -1}
			if fi, err := os.Stat(file); err == nil && !fi.IsDir() {
				ev.actual = fi.Size()
			}
			mu.Lock()
			events = append(events, ev)
			mu.Unlock()
		},
	}
	l, _ := mustOpen(t, dir, opts)
	var recs [][]byte
	for i := 0; i < 40; i++ {
		recs = append(recs, payloadOf(i, 10+i*7%90))
	}
	// Some batches of several records, so one batch can close a segment
	// in its middle.
	for i := 0; i < len(recs); i += 3 {
		var tk *Ticket
		for _, p := range recs[i:min(i+3, len(recs))] {
			tk = l.Append(p)
		}
		if err := tk.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	segs := segmentPaths(t, dir)
	mu.Lock()
	created := len(segs) - 1
	if created < 5 || steps["create"] != countBatchesCreating(events) || steps["create"] == 0 {
		t.Errorf("%d segments created, %d create steps, %d batches followed by a dirsync", created, steps["create"], countBatchesCreating(events))
	}
	cycles := 0
	for _, ev := range events {
		switch ev.step {
		case "fsync", "cycle":
			if ev.size != ev.actual {
				t.Errorf("%s of %s reports %d bytes, the file has %d", ev.step, filepath.Base(ev.file), ev.size, ev.actual)
			}
			if ev.step == "cycle" {
				cycles++
			}
		case "dirsync":
			if ev.file != dir {
				t.Errorf("dirsync of %s, want %s", ev.file, dir)
			}
		default:
			t.Errorf("unknown SyncHook step %q", ev.step)
		}
	}
	if cycles != created {
		t.Errorf("%d cycle events for %d segments created", cycles, created)
	}
	events = nil
	mu.Unlock()

	removed, err := l.TruncateBefore(l.LastSeq(), nil)
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(removed) != created || steps["truncate"] != len(removed) {
		t.Errorf("removed %d of %d old segments with %d truncate steps", len(removed), created, steps["truncate"])
	}
	if len(events) != 1 || events[0].step != "dirsync" {
		t.Errorf("after truncation SyncHook heard %+v, want one dirsync", events)
	}
	mu.Unlock()
	mustClose(t, l)
}

// countBatchesCreating counts the dirsyncs that followed a batch.
func countBatchesCreating(events []syncEvent) int {
	n := 0
	for i, ev := range events {
		if ev.step == "dirsync" && i > 0 {
			n++
		}
	}
	return n
}

// TestCreateFault fails the step before a write that would start a new
// segment: the log fails stop, no new segment file appears, and a reopen
// has every record acknowledged before.
func TestCreateFault(t *testing.T) {
	dir := t.TempDir()
	var fails []error
	opts := Options{SegmentSize: 200, OnFail: func(err error) { fails = append(fails, err) },
		FaultHook: func(step string) error {
			if step == "create" {
				return errors.New("injected create failure")
			}
			return nil
		}}
	l, _ := mustOpen(t, dir, opts)
	var acked [][]byte
	var err error
	for i := 0; i < 20 && err == nil; i++ {
		p := payloadOf(i, 40)
		if err = l.Append(p).Wait(); err == nil {
			acked = append(acked, p)
		}
	}
	if !errors.Is(err, ErrFailed) || len(acked) == 0 {
		t.Fatalf("after %d acknowledged records: %v, want ErrFailed", len(acked), err)
	}
	if err := l.Append([]byte("later")).Wait(); !errors.Is(err, ErrFailed) {
		t.Fatalf("Append after the failure: %v", err)
	}
	if l.Close() == nil || len(fails) != 1 {
		t.Fatalf("Close returned nil or OnFail ran %d times", len(fails))
	}
	if segs := segmentPaths(t, dir); len(segs) != 1 {
		t.Fatalf("%d segments after a failed creation, want 1", len(segs))
	}
	l, got := mustOpen(t, dir, Options{SegmentSize: 200})
	checkRecords(t, got, 1, acked)
	mustClose(t, l)
}

// writeSectorLog writes n records of 100-byte payloads into one segment
// and returns its path, bytes and entry offsets.
func writeSectorLog(t *testing.T, dir string, n int) (string, []byte, []int) {
	t.Helper()
	var recs [][]byte
	for i := 0; i < n; i++ {
		recs = append(recs, payloadOf(i, 100))
	}
	return writeDamageLog(t, dir, recs)
}

// entryAt returns the index of the entry holding byte off.
func entryAt(offs []int, off int) int {
	for i := 0; i+1 < len(offs); i++ {
		if off >= offs[i] && off < offs[i+1] {
			return i
		}
	}
	return -1
}

// TestUnwrittenSectorIsTornTail: a power loss can leave a sector of the
// last, unacknowledged write unwritten (zeros) while later sectors of the
// same write reached the disk. That is a torn tail, cut at the damaged
// entry, even though valid records follow.
func TestUnwrittenSectorIsTornTail(t *testing.T) {
	for _, tc := range []struct {
		name     string
		records  int
		from, to func(offs []int) int // the zeroed range
	}{
		{"whole sector", 40, func([]int) int { return 2 * SectorSize }, func([]int) int { return 3 * SectorSize }},
		{"whole 4 KiB page", 90, func([]int) int { return 4096 }, func([]int) int { return 8192 }},
		{"entry start to sector end", 40, func(offs []int) int { return offs[entryAt(offs, 2*SectorSize+1)+1] },
			func([]int) int { return 3 * SectorSize }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			seg, data, offs := writeSectorLog(t, dir, tc.records)
			from, to := tc.from(offs), tc.to(offs)
			if to >= len(data)-200 {
				t.Fatalf("the log is too short (%d bytes) for zeros up to %d", len(data), to)
			}
			damaged := bytes.Clone(data)
			clear(damaged[from:to])
			writeFile(t, seg, damaged)
			cut := offs[entryAt(offs, from)]
			l, got, err := openReplay(t, dir, Options{})
			if err != nil {
				t.Fatalf("zeros at [%d,%d): Open: %v", from, to, err)
			}
			k := entryAt(offs, from)
			if len(got) != k {
				t.Errorf("%d records replayed, want the %d before the zeros", len(got), k)
			}
			if rep := l.Repaired(); rep == nil || rep.Offset != int64(cut) {
				t.Errorf("Repaired() = %+v, want a cut at %d", rep, cut)
			}
			mustClose(t, l)
		})
	}
}

// TestZerosThatAreNotASectorRefused: zeros short of a whole sector before a
// valid record, or a flipped bit followed by later records and a zero tail,
// are not an unwritten sector: Open refuses.
func TestZerosThatAreNotASectorRefused(t *testing.T) {
	for _, name := range []string{"511 zeros", "bit flip before a zeroed tail"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			seg, data, offs := writeSectorLog(t, dir, 40)
			damaged := bytes.Clone(data)
			want := 0
			switch name {
			case "511 zeros":
				clear(damaged[2*SectorSize : 3*SectorSize-1])
				want = offs[entryAt(offs, 2*SectorSize)]
			default:
				damaged[offs[5]+20] ^= 0x10
				damaged = append(damaged, make([]byte, 2*SectorSize)...)
				want = offs[5]
			}
			writeFile(t, seg, damaged)
			_, _, err := openReplay(t, dir, Options{})
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.Offset != int64(want) {
				t.Fatalf("Open: %v, want a CorruptError at offset %d", err, want)
			}
			if b, _ := os.ReadFile(seg); !bytes.Equal(b, damaged) {
				t.Error("the refused segment was changed")
			}
		})
	}
}
