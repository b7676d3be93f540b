package wal

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// damageRecords are the K records the damage tests write. The last one has
// a 120-byte payload: its frame is 133 bytes, so tidwall/wal's uvarint
// length prefix takes two bytes (0x85 0x01) and the tests also tear and
// flip inside the length prefix itself.
func damageRecords() [][]byte {
	return [][]byte{
		payloadOf(0, 10),
		payloadOf(1, 0),
		payloadOf(2, 50),
		payloadOf(3, 200),
		payloadOf(4, 7),
		payloadOf(5, 120),
	}
}

// writeDamageLog writes recs into a fresh one-segment log in dir, closes
// it, and returns the segment path, its bytes and the entry offsets.
func writeDamageLog(t testing.TB, dir string, recs [][]byte) (string, []byte, []int) {
	t.Helper()
	l, _ := mustOpen(t, dir, Options{})
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
	if len(offs) != len(recs)+1 || offs[len(recs)] != len(data) {
		t.Fatalf("segment has entry offsets %v for %d records", offs, len(recs))
	}
	return segs[0].path, data, offs
}

// checkRepaired opens dir holding segment seg (written with recs) whose
// last record was damaged into damaged; the torn tail must be repaired
// and exactly the first len(recs)-1 records come back. If appendAfter, a
// new record is appended and must survive another reopen.
func checkRepaired(t *testing.T, dir, seg string, damaged []byte, recs [][]byte, lastStart int, appendAfter bool) {
	t.Helper()
	k := len(recs)
	l, got, err := openReplay(t, dir, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	checkRecords(t, got, 1, recs[:k-1])
	rep := l.Repaired()
	if rep == nil {
		t.Fatal("Repaired() is nil")
	}
	want := Repair{Segment: seg, Offset: int64(lastStart), LostBytes: int64(len(damaged) - lastStart), KeptAs: fmt.Sprintf("%s.broken-at-%d", seg, lastStart)}
	if *rep != want {
		t.Fatalf("Repaired() = %+v, want %+v", *rep, want)
	}
	if b, err := os.ReadFile(rep.KeptAs); err != nil || !bytes.Equal(b, damaged[lastStart:]) {
		t.Fatalf("*.broken-at-* copy: %v, holds the cut bytes: %v", err, bytes.Equal(b, damaged[lastStart:]))
	}
	if fi, err := os.Stat(seg); err != nil || fi.Size() != int64(lastStart) {
		t.Fatalf("segment after repair: %v, size %d, want %d", err, fi.Size(), lastStart)
	}
	if l.LastSeq() != uint64(k-1) || l.DurableSeq() != uint64(k-1) {
		t.Fatalf("LastSeq %d DurableSeq %d, want %d", l.LastSeq(), l.DurableSeq(), k-1)
	}
	if !appendAfter {
		mustClose(t, l)
		return
	}
	fresh := []byte("written after the repair")
	appendWait(t, l, fresh)
	mustClose(t, l)
	l, got, err = openReplay(t, dir, Options{})
	if err != nil {
		t.Fatalf("reopen after repair and append: %v", err)
	}
	checkRecords(t, got, 1, append(append([][]byte{}, recs[:k-1]...), fresh))
	if l.Repaired() != nil {
		t.Fatalf("second reopen repaired again: %+v", l.Repaired())
	}
	mustClose(t, l)
	if _, err := os.Stat(want.KeptAs); err != nil {
		t.Fatal(err)
	}
}

// TestTornTailEveryOffset cuts the segment at every byte offset inside the
// last record's entry (length prefix included) and checks the repair.
func TestTornTailEveryOffset(t *testing.T) {
	recs := damageRecords()
	k := len(recs)
	base := t.TempDir()
	seg, data, offs := writeDamageLog(t, filepath.Join(base, "orig"), recs)
	name := filepath.Base(seg)
	start, end := offs[k-1], offs[k]
	if data[start] != 0x85 || data[start+1] != 0x01 || end-start != 135 {
		t.Fatalf("unexpected last entry: prefix %x, %d bytes", data[start:start+2], end-start)
	}

	for cut := start; cut <= end; cut++ {
		dir := filepath.Join(base, fmt.Sprintf("cut%d", cut))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data[:cut], 0o644); err != nil {
			t.Fatal(err)
		}
		switch cut {
		case start, end:
			// A cut at an entry boundary is no damage at all: the log
			// simply holds K-1 or K records and nothing is repaired.
			n := k - 1
			if cut == end {
				n = k
			}
			l, got, err := openReplay(t, dir, Options{})
			if err != nil {
				t.Fatalf("cut at %d (boundary): %v", cut, err)
			}
			checkRecords(t, got, 1, recs[:n])
			if l.Repaired() != nil {
				t.Fatalf("cut at %d (boundary): repaired %+v", cut, l.Repaired())
			}
			mustClose(t, l)
			if kept, _ := filepath.Glob(path + ".broken*"); len(kept) != 0 {
				t.Fatalf("cut at %d (boundary): %v exist", cut, kept)
			}
		default:
			t.Run(fmt.Sprintf("cut%d", cut-start), func(t *testing.T) {
				checkRepaired(t, dir, path, data[:cut], recs, start, true)
			})
		}
	}
}

// TestBitFlipLastRecord flips every bit of the last record's entry, one at
// a time: always a torn tail, repaired, the earlier records intact and the
// damaged record never replayed.
func TestBitFlipLastRecord(t *testing.T) {
	recs := damageRecords()
	k := len(recs)
	base := t.TempDir()
	seg, data, offs := writeDamageLog(t, filepath.Join(base, "orig"), recs)
	name := filepath.Base(seg)
	start, end := offs[k-1], offs[k]
	for off := start; off < end; off++ {
		for bit := 0; bit < 8; bit++ {
			dir := filepath.Join(base, fmt.Sprintf("b%d.%d", off, bit))
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			damaged := bytes.Clone(data)
			damaged[off] ^= 1 << bit
			path := filepath.Join(dir, name)
			if err := os.WriteFile(path, damaged, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Run(fmt.Sprintf("byte%d/bit%d", off-start, bit), func(t *testing.T) {
				// Appending after every one of ~1000 repairs costs fsyncs
				// for nothing new; do it for one bit per byte.
				checkRepaired(t, dir, path, damaged, recs, start, bit == off%8)
			})
		}
	}
}

// TestRepairTwiceKeepsBothCopies: a second torn tail in the same segment,
// cut at the same offset, is kept beside the first one's cut bytes, not
// over them.
func TestRepairTwiceKeepsBothCopies(t *testing.T) {
	recs := damageRecords()
	dir := t.TempDir()
	seg, data, offs := writeDamageLog(t, dir, recs)
	start := offs[len(recs)-1]
	if err := os.Truncate(seg, int64(start+3)); err != nil {
		t.Fatal(err)
	}
	checkRepaired(t, dir, seg, data[:start+3], recs, start, true)

	// The log now holds recs[:k-1] + one new record; tear that one.
	l, _ := mustOpen(t, dir, Options{})
	mustClose(t, l)
	data2, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	o2 := entryOffsets(t, data2)
	if err := os.Truncate(seg, int64(len(data2)-1)); err != nil {
		t.Fatal(err)
	}
	l, got := mustOpen(t, dir, Options{})
	checkRecords(t, got, 1, recs[:len(recs)-1])
	rep := l.Repaired()
	// The new record went where the first cut was, so the second cut is
	// at the same offset, with other bytes: a numbered name.
	start2 := o2[len(o2)-2]
	if start2 != start {
		t.Fatalf("the record written after the repair starts at %d, not at the cut %d", start2, start)
	}
	if rep == nil || rep.KeptAs != fmt.Sprintf("%s.broken-at-%d.2", seg, start2) || rep.Offset != int64(start2) {
		t.Fatalf("second repair: %+v", rep)
	}
	mustClose(t, l)
	first, _ := os.ReadFile(fmt.Sprintf("%s.broken-at-%d", seg, start))
	second, _ := os.ReadFile(rep.KeptAs)
	if !bytes.Equal(first, data[start:start+3]) || !bytes.Equal(second, data2[start2:len(data2)-1]) {
		t.Fatal("the *.broken-at-* files do not hold the bytes of the two cuts")
	}
}

// TestTrailingZerosRepaired appends zeros to the last segment, as a file
// system may leave after extending a file whose data never arrived. Each
// zero byte parses as a tidwall/wal entry of length 0 (which tidwall/wal
// itself would accept as thousands of phantom empty entries); our frame
// check rejects it, nothing valid follows, so scan treats the zeros as a
// torn tail: the segment is REPAIRED (cut back to its last record, the
// zeros kept as *.broken-at-<offset>) and no record is lost.
func TestTrailingZerosRepaired(t *testing.T) {
	recs := damageRecords()
	for _, zeros := range []int{1, 2, 13, 4096} {
		t.Run(fmt.Sprint(zeros), func(t *testing.T) {
			dir := t.TempDir()
			seg, data, _ := writeDamageLog(t, dir, recs)
			damaged := append(bytes.Clone(data), make([]byte, zeros)...)
			if err := os.WriteFile(seg, damaged, 0o644); err != nil {
				t.Fatal(err)
			}
			// checkRepaired expects all but the last of the records it is
			// given back, so hand it one more "record" that the zeros
			// stand in for.
			withZeros := append(append([][]byte{}, recs...), nil)
			checkRepaired(t, dir, seg, damaged, withZeros, len(data), true)
		})
	}
}

// corruptCase damages a freshly written log and says where the damage is.
type corruptCase struct {
	name    string
	segSize int
	recs    [][]byte
	// damage changes the files of dir and returns the damaged file and
	// the byte offset Open must report.
	damage func(t *testing.T, dir string, segs []segmentFile) (file string, off int64)
}

func fileOffsets(t *testing.T, path string) ([]byte, []int) {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data, entryOffsets(t, data)
}

func writeFile(t *testing.T, path string, data []byte) {
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCorruptionRefused: damage that is not a torn tail makes Open return a
// *CorruptError naming the file and offset, and leaves the directory
// exactly as it was.
func TestCorruptionRefused(t *testing.T) {
	five := [][]byte{payloadOf(0, 30), payloadOf(1, 30), payloadOf(2, 30), payloadOf(3, 30), payloadOf(4, 100)}
	var many [][]byte
	for i := 0; i < 12; i++ {
		many = append(many, payloadOf(i, 40))
	}
	cases := []corruptCase{
		{name: "flip payload byte of record 2 of 5", recs: five,
			damage: func(t *testing.T, dir string, segs []segmentFile) (string, int64) {
				data, offs := fileOffsets(t, segs[0].path)
				data[offs[1]+1+headerSize+5] ^= 0x40
				writeFile(t, segs[0].path, data)
				return segs[0].path, int64(offs[1])
			}},
		{name: "flip crc byte of record 2 of 5", recs: five,
			damage: func(t *testing.T, dir string, segs []segmentFile) (string, int64) {
				data, offs := fileOffsets(t, segs[0].path)
				data[offs[1]+1] ^= 0x01
				writeFile(t, segs[0].path, data)
				return segs[0].path, int64(offs[1])
			}},
		{name: "length prefix of record 2 of 5 made longer", recs: five,
			damage: func(t *testing.T, dir string, segs []segmentFile) (string, int64) {
				data, offs := fileOffsets(t, segs[0].path)
				data[offs[1]] += 3
				writeFile(t, segs[0].path, data)
				return segs[0].path, int64(offs[1])
			}},
		{name: "record 2 of 5 zero-filled", recs: five,
			damage: func(t *testing.T, dir string, segs []segmentFile) (string, int64) {
				data, offs := fileOffsets(t, segs[0].path)
				clear(data[offs[1]:offs[2]])
				writeFile(t, segs[0].path, data)
				return segs[0].path, int64(offs[1])
			}},
		{name: "record 2 of 5 missing (sequence gap)", recs: five,
			damage: func(t *testing.T, dir string, segs []segmentFile) (string, int64) {
				data, offs := fileOffsets(t, segs[0].path)
				data = append(data[:offs[1]:offs[1]], data[offs[2]:]...)
				writeFile(t, segs[0].path, data)
				return segs[0].path, int64(offs[1])
			}},
		{name: "records 2 and 3 of 5 swapped", recs: five,
			damage: func(t *testing.T, dir string, segs []segmentFile) (string, int64) {
				data, offs := fileOffsets(t, segs[0].path)
				var b []byte
				b = append(b, data[:offs[1]]...)
				b = append(b, data[offs[2]:offs[3]]...)
				b = append(b, data[offs[1]:offs[2]]...)
				b = append(b, data[offs[3]:]...)
				writeFile(t, segs[0].path, b)
				return segs[0].path, int64(offs[1])
			}},
		// The last record is valid but carries the wrong sequence number:
		// that is not something a torn write produces. A missing record
		// followed by an intact, acknowledged one must not be "repaired"
		// away.
		{name: "last record's predecessor missing (gap at the tail)", recs: five,
			damage: func(t *testing.T, dir string, segs []segmentFile) (string, int64) {
				data, offs := fileOffsets(t, segs[0].path)
				data = append(data[:offs[3]:offs[3]], data[offs[4]:]...)
				writeFile(t, segs[0].path, data)
				return segs[0].path, int64(offs[3])
			}},
		{name: "last record duplicated", recs: five,
			damage: func(t *testing.T, dir string, segs []segmentFile) (string, int64) {
				data, offs := fileOffsets(t, segs[0].path)
				data = append(data, data[offs[4]:]...)
				writeFile(t, segs[0].path, data)
				return segs[0].path, int64(offs[5])
			}},
		{name: "payload byte flipped in a non-last segment", segSize: 150, recs: many,
			damage: func(t *testing.T, dir string, segs []segmentFile) (string, int64) {
				p := segs[1].path
				data, offs := fileOffsets(t, p)
				last := offs[len(offs)-2] // its last record: no valid record follows in that file
				data[len(data)-3] ^= 0xff
				writeFile(t, p, data)
				return p, int64(last)
			}},
		{name: "non-last segment torn at its end", segSize: 150, recs: many,
			damage: func(t *testing.T, dir string, segs []segmentFile) (string, int64) {
				p := segs[0].path
				data, offs := fileOffsets(t, p)
				writeFile(t, p, data[:len(data)-1])
				return p, int64(offs[len(offs)-2])
			}},
		{name: "zeros after a non-last segment", segSize: 150, recs: many,
			damage: func(t *testing.T, dir string, segs []segmentFile) (string, int64) {
				p := segs[1].path
				data, _ := fileOffsets(t, p)
				writeFile(t, p, append(data, 0, 0, 0, 0))
				return p, int64(len(data))
			}},
		{name: "middle segment missing", segSize: 150, recs: many,
			damage: func(t *testing.T, dir string, segs []segmentFile) (string, int64) {
				if err := os.Remove(segs[1].path); err != nil {
					t.Fatal(err)
				}
				return segs[2].path, 0
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			l, _ := mustOpen(t, dir, Options{SegmentSize: c.segSize})
			appendWait(t, l, c.recs...)
			mustClose(t, l)
			segs := segmentPaths(t, dir)
			if c.segSize > 0 && len(segs) < 4 {
				t.Fatalf("only %d segments", len(segs))
			}
			file, off := c.damage(t, dir, segs)
			before := dirState(t, dir)

			var got []rec
			_, err := Open(dir, Options{SegmentSize: c.segSize, Replay: func(seq uint64, p []byte) error {
				got = append(got, rec{seq, bytes.Clone(p)})
				return nil
			}})
			if err == nil {
				t.Fatal("Open accepted a corrupt log")
			}
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("Open: %v (%T), want *CorruptError", err, err)
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%v does not match ErrCorrupt", err)
			}
			if ce.File != file || ce.Offset != off {
				t.Fatalf("CorruptError at %s:%d, want %s:%d (%v)", ce.File, ce.Offset, file, off, err)
			}
			msg := err.Error()
			if !strings.Contains(msg, file) || !strings.Contains(msg, fmt.Sprintf("offset %d", off)) {
				t.Fatalf("message does not name the file and offset: %s", msg)
			}
			// Whatever Replay saw before the damage was real data.
			if len(got) > len(c.recs) {
				t.Fatalf("replayed %d records of %d", len(got), len(c.recs))
			}
			checkRecords(t, got, 1, c.recs[:len(got)])
			sameDirState(t, before, dirState(t, dir))
		})
	}
}

// TestTruncationFilesRefused: tidwall/wal's *.START / *.END files are not
// ours; Open refuses them rather than let tidwall/wal act on them.
func TestTruncationFilesRefused(t *testing.T) {
	for _, suffix := range []string{".START", ".END"} {
		dir := t.TempDir()
		l, _ := mustOpen(t, dir, Options{})
		appendWait(t, l, []byte("a"), []byte("b"))
		mustClose(t, l)
		odd := filepath.Join(dir, "00000000000000000002"+suffix)
		writeFile(t, odd, nil)
		before := dirState(t, dir)
		_, err := Open(dir, Options{})
		var ce *CorruptError
		if !errors.As(err, &ce) || ce.File != odd {
			t.Fatalf("%s: Open: %v", suffix, err)
		}
		sameDirState(t, before, dirState(t, dir))
	}
}
