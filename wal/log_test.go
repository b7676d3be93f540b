package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
)

// rec is one replayed record, copied out of the Replay callback.
type rec struct {
	seq     uint64
	payload []byte
}

// payloadOf returns a deterministic payload of size n that also encodes i,
// so a record moved to the wrong place cannot compare equal.
func payloadOf(i, n int) []byte {
	p := make([]byte, n)
	for j := range p {
		p[j] = byte(i*31 + j*7 + 1)
	}
	if n >= 4 {
		binary.LittleEndian.PutUint32(p, uint32(i))
	}
	return p
}

// openReplay opens dir with opts (its Replay replaced by a collector) and
// returns the log and every replayed record.
func openReplay(t testing.TB, dir string, opts Options) (*Log, []rec, error) {
	t.Helper()
	var got []rec
	opts.Replay = func(seq uint64, payload []byte) error {
		got = append(got, rec{seq, bytes.Clone(payload)})
		return nil
	}
	l, err := Open(dir, opts)
	return l, got, err
}

func mustOpen(t testing.TB, dir string, opts Options) (*Log, []rec) {
	t.Helper()
	l, got, err := openReplay(t, dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return l, got
}

func mustClose(t testing.TB, l *Log) {
	t.Helper()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// appendWait appends each payload and waits for it, one batch per record.
func appendWait(t testing.TB, l *Log, payloads ...[]byte) {
	t.Helper()
	for i, p := range payloads {
		before := l.LastSeq()
		tk := l.Append(p)
		if err := tk.Wait(); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		if got := l.LastSeq(); got != before+1 {
			t.Fatalf("append %d: LastSeq %d, want %d", i, got, before+1)
		}
		if tk.last != before+1 {
			t.Fatalf("append %d: ticket covers up to %d, want %d", i, tk.last, before+1)
		}
		if d := l.DurableSeq(); d < before+1 {
			t.Fatalf("append %d: DurableSeq %d after Wait, want >= %d", i, d, before+1)
		}
	}
}

// checkRecords asserts got is exactly want, with sequences first, first+1...
func checkRecords(t testing.TB, got []rec, first uint64, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("replayed %d records, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].seq != first+uint64(i) {
			t.Fatalf("record %d: seq %d, want %d", i, got[i].seq, first+uint64(i))
		}
		if !bytes.Equal(got[i].payload, want[i]) {
			t.Fatalf("record %d (seq %d): payload %x, want %x", i, got[i].seq, got[i].payload, want[i])
		}
	}
}

// segmentPaths lists the segment files of dir in order.
func segmentPaths(t testing.TB, dir string) []segmentFile {
	t.Helper()
	segs, err := listSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	return segs
}

// dirState is every regular file of a directory with its content.
func dirState(t testing.TB, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = string(b)
	}
	return m
}

func sameDirState(t testing.TB, before, after map[string]string) {
	t.Helper()
	var names []string
	for n := range before {
		names = append(names, n)
	}
	for n := range after {
		if _, ok := before[n]; !ok {
			t.Errorf("file %s appeared", n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		a, ok := after[n]
		if !ok {
			t.Errorf("file %s disappeared", n)
		} else if a != before[n] {
			t.Errorf("file %s changed: %d bytes, was %d", n, len(a), len(before[n]))
		}
	}
}

// entryOffsets parses a segment file as tidwall/wal binary entries and
// returns the start offset of every entry plus the end of the last one.
func entryOffsets(t testing.TB, data []byte) []int {
	t.Helper()
	offs := []int{0}
	for off := 0; off < len(data); {
		_, n, ok := nextEntry(data[off:])
		if !ok {
			t.Fatalf("segment does not parse at offset %d", off)
		}
		off += n
		offs = append(offs, off)
	}
	return offs
}

// TestFrameLayout pins the on-disk format described in doc.go with an
// independent encoder: uvarint(len) + crc32c | seq u64 LE | kind | payload.
func TestFrameLayout(t *testing.T) {
	payload := []byte("hello, latch")
	const seq = 0x0102030405060708
	frame := appendFrame(nil, seq, payload)
	want := make([]byte, 13, 13+len(payload))
	binary.LittleEndian.PutUint64(want[4:], seq)
	want[12] = 1
	want = append(want, payload...)
	binary.LittleEndian.PutUint32(want, crc32.Checksum(want[4:], crc32.MakeTable(crc32.Castagnoli)))
	if !bytes.Equal(frame, want) {
		t.Fatalf("frame %x, want %x", frame, want)
	}
	if RecordKindV1 != 1 || headerSize != 13 {
		t.Fatalf("RecordKindV1 %d headerSize %d", RecordKindV1, headerSize)
	}
	s, p, err := DecodeFrame(frame)
	if err != nil || s != seq || !bytes.Equal(p, payload) {
		t.Fatalf("DecodeFrame: %d %q %v", s, p, err)
	}

	// And the log writes exactly uvarint(len(frame)) + frame per record.
	dir := t.TempDir()
	l, _ := mustOpen(t, dir, Options{})
	appendWait(t, l, payload, nil)
	mustClose(t, l)
	data, err := os.ReadFile(filepath.Join(dir, "00000000000000000001"))
	if err != nil {
		t.Fatal(err)
	}
	var exp []byte
	for i, p := range [][]byte{payload, nil} {
		f := appendFrame(nil, uint64(i+1), p)
		exp = binary.AppendUvarint(exp, uint64(len(f)))
		exp = append(exp, f...)
	}
	if !bytes.Equal(data, exp) {
		t.Fatalf("segment holds %x, want %x", data, exp)
	}
}

// TestRoundTripAcrossSegments appends records of varied sizes (empty, tiny,
// larger than a segment) over many small segments and replays them.
func TestRoundTripAcrossSegments(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 256}
	l, got := mustOpen(t, dir, opts)
	if len(got) != 0 || l.FirstSeq() != 1 || l.LastSeq() != 0 || l.DurableSeq() != 0 || l.Repaired() != nil {
		t.Fatalf("fresh log: %d records, first %d last %d durable %d repair %v",
			len(got), l.FirstSeq(), l.LastSeq(), l.DurableSeq(), l.Repaired())
	}
	sizes := []int{0, 1, 5, 64, 127, 128, 200, 255, 256, 300, 1000, 3, 0, 17}
	var want [][]byte
	for i := 0; i < 60; i++ {
		want = append(want, payloadOf(i, sizes[i%len(sizes)]))
	}
	appendWait(t, l, want...)
	mustClose(t, l)
	if n := len(segmentPaths(t, dir)); n < 10 {
		t.Fatalf("only %d segments; the test wants many", n)
	}

	l, got = mustOpen(t, dir, opts)
	checkRecords(t, got, 1, want)
	if l.FirstSeq() != 1 || l.LastSeq() != 60 || l.DurableSeq() != 60 || l.Repaired() != nil {
		t.Fatalf("reopened: first %d last %d durable %d repair %v", l.FirstSeq(), l.LastSeq(), l.DurableSeq(), l.Repaired())
	}
	// Appending after a reopen continues the sequence; a different segment
	// size on reopen is fine too.
	more := [][]byte{payloadOf(100, 10), payloadOf(101, 400), payloadOf(102, 0)}
	appendWait(t, l, more...)
	mustClose(t, l)

	l, got = mustOpen(t, dir, Options{SegmentSize: 1000})
	checkRecords(t, got, 1, append(want, more...))
	mustClose(t, l)

	// Replay errors stop Open and name the record.
	boom := errors.New("boom")
	_, err := Open(dir, Options{Replay: func(seq uint64, _ []byte) error {
		if seq == 7 {
			return boom
		}
		return nil
	}})
	if !errors.Is(err, boom) {
		t.Fatalf("Open with failing Replay: %v", err)
	}
}

// TestSegmentCreationIsDirsynced checks that every batch that makes
// tidwall/wal create a segment file also fsyncs the directory before its
// Ticket resolves, and that no other batch does (the mirror of tidwall's
// cycling rule is exact), across a reopen.
func TestSegmentCreationIsDirsynced(t *testing.T) {
	dir := t.TempDir()
	var dirsyncs atomic.Int64
	opts := Options{SegmentSize: 100, FaultHook: func(step string) error {
		if step == "dirsync" {
			dirsyncs.Add(1)
		}
		return nil
	}}
	sizes := []int{10, 50, 0, 86, 87, 88, 120, 1, 30, 200, 2}
	var want [][]byte
	for round := 0; round < 2; round++ {
		l, got := mustOpen(t, dir, opts)
		checkRecords(t, got, 1, want)
		for i := 0; i < 40; i++ {
			segsBefore := len(segmentPaths(t, dir))
			syncsBefore := dirsyncs.Load()
			p := payloadOf(len(want), sizes[(i+round)%len(sizes)])
			appendWait(t, l, p)
			want = append(want, p)
			created := len(segmentPaths(t, dir)) - segsBefore
			synced := dirsyncs.Load() - syncsBefore
			if created < 0 || created > 1 || int64(created) != synced {
				t.Fatalf("round %d append %d (%d bytes): %d segments created, %d directory fsyncs",
					round, i, len(p), created, synced)
			}
		}
		mustClose(t, l)
	}
	if dirsyncs.Load() < 10 {
		t.Fatalf("only %d segments created", dirsyncs.Load())
	}
}

// TestConcurrentAppends has many goroutines append at once; every record is
// acknowledged, and replay holds each exactly once, in each writer's order.
func TestConcurrentAppends(t *testing.T) {
	dir := t.TempDir()
	l, _ := mustOpen(t, dir, Options{SegmentSize: 4096})
	const writers, per = 16, 40
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < per; i++ {
				p := []byte(fmt.Sprintf("w%02d-i%03d-%s", w, i, bytes.Repeat([]byte{'x'}, (w*i)%50)))
				tk := l.Append(p)
				if err := tk.Wait(); err != nil {
					errs <- fmt.Errorf("writer %d append %d: %v", w, i, err)
					return
				}
				if d := l.DurableSeq(); d < tk.last {
					errs <- fmt.Errorf("writer %d: DurableSeq %d below acknowledged %d", w, d, tk.last)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if l.LastSeq() != writers*per || l.DurableSeq() != writers*per {
		t.Fatalf("LastSeq %d DurableSeq %d, want %d", l.LastSeq(), l.DurableSeq(), writers*per)
	}
	mustClose(t, l)

	l, got := mustOpen(t, dir, Options{})
	defer mustClose(t, l)
	if len(got) != writers*per {
		t.Fatalf("replayed %d records, want %d", len(got), writers*per)
	}
	next := make([]int, writers)
	for i, r := range got {
		if r.seq != uint64(i+1) {
			t.Fatalf("record %d has seq %d", i, r.seq)
		}
		var w, n int
		if _, err := fmt.Sscanf(string(r.payload), "w%02d-i%03d-", &w, &n); err != nil || w < 0 || w >= writers {
			t.Fatalf("record %d: unexpected payload %q", i, r.payload)
		}
		want := fmt.Sprintf("w%02d-i%03d-%s", w, next[w], bytes.Repeat([]byte{'x'}, (w*next[w])%50))
		if string(r.payload) != want {
			t.Fatalf("record %d: payload %q, want %q (writer order broken or duplicate)", i, r.payload, want)
		}
		next[w]++
	}
}

// TestGroupCommit holds the committer inside a batch and shows that
// everything appended meanwhile goes into one next batch, one Ticket, one
// write and one fsync.
func TestGroupCommit(t *testing.T) {
	dir := t.TempDir()
	entered := make(chan struct{})
	release := make(chan struct{})
	var writes, fsyncs atomic.Int64
	l, _ := mustOpen(t, dir, Options{FaultHook: func(step string) error {
		switch step {
		case "write":
			if writes.Add(1) == 1 {
				close(entered)
				<-release
			}
		case "fsync":
			fsyncs.Add(1)
		}
		return nil
	}})
	first := l.Append([]byte("first"))
	<-entered // the committer has taken batch 1 and is blocked in it
	var tickets []*Ticket
	var want [][]byte
	want = append(want, []byte("first"))
	for i := 0; i < 10; i++ {
		p := payloadOf(i, 20)
		want = append(want, p)
		tickets = append(tickets, l.Append(p))
	}
	if l.LastSeq() != 11 || l.DurableSeq() != 0 {
		t.Fatalf("while blocked: LastSeq %d DurableSeq %d, want 11 and 0", l.LastSeq(), l.DurableSeq())
	}
	select {
	case <-first.Done():
		t.Fatal("ticket resolved before its batch was written")
	default:
	}
	for _, tk := range tickets[1:] {
		if tk != tickets[0] {
			t.Fatal("records appended during one commit got different Tickets")
		}
	}
	if tickets[0] == first {
		t.Fatal("records appended during a commit joined the batch being committed")
	}
	close(release)
	if err := first.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := tickets[0].Wait(); err != nil {
		t.Fatal(err)
	}
	if l.DurableSeq() != 11 || tickets[0].last != 11 || first.last != 1 {
		t.Fatalf("DurableSeq %d, batch lasts %d and %d", l.DurableSeq(), first.last, tickets[0].last)
	}
	mustClose(t, l)
	if writes.Load() != 2 || fsyncs.Load() != 2 {
		t.Fatalf("%d writes and %d fsyncs for two batches", writes.Load(), fsyncs.Load())
	}
	l, got := mustOpen(t, dir, Options{})
	checkRecords(t, got, 1, want)
	mustClose(t, l)
}

// TestDurableSeq follows the durable index through appends, a blocked
// commit, a reopen and a StartAfter log.
func TestDurableSeq(t *testing.T) {
	dir := t.TempDir()
	var block atomic.Bool
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	l, _ := mustOpen(t, dir, Options{FaultHook: func(step string) error {
		if step == "fsync" && block.Load() {
			entered <- struct{}{}
			<-release
		}
		return nil
	}})
	if l.DurableSeq() != 0 {
		t.Fatalf("fresh DurableSeq %d", l.DurableSeq())
	}
	appendWait(t, l, []byte("a"))
	if l.DurableSeq() != 1 {
		t.Fatalf("DurableSeq %d, want 1", l.DurableSeq())
	}
	appendWait(t, l, []byte("b"), []byte("c"), []byte("d"), []byte("e"), []byte("f"))
	if l.DurableSeq() != 6 {
		t.Fatalf("DurableSeq %d, want 6", l.DurableSeq())
	}
	// Written but not yet fsynced is not durable.
	block.Store(true)
	tk := l.Append([]byte("g"))
	<-entered
	if l.DurableSeq() != 6 || l.LastSeq() != 7 {
		t.Fatalf("during fsync: DurableSeq %d LastSeq %d, want 6 and 7", l.DurableSeq(), l.LastSeq())
	}
	block.Store(false)
	close(release)
	if err := tk.Wait(); err != nil {
		t.Fatal(err)
	}
	if l.DurableSeq() != 7 {
		t.Fatalf("DurableSeq %d, want 7", l.DurableSeq())
	}
	mustClose(t, l)
	l, got := mustOpen(t, dir, Options{})
	if len(got) != 7 || l.DurableSeq() != 7 || l.LastSeq() != 7 {
		t.Fatalf("reopened: %d records, DurableSeq %d LastSeq %d", len(got), l.DurableSeq(), l.LastSeq())
	}
	mustClose(t, l)

	l, _ = mustOpen(t, t.TempDir(), Options{StartAfter: 100})
	if l.DurableSeq() != 100 {
		t.Fatalf("StartAfter 100: DurableSeq %d", l.DurableSeq())
	}
	appendWait(t, l, []byte("x"))
	if l.DurableSeq() != 101 {
		t.Fatalf("StartAfter 100, one append: DurableSeq %d", l.DurableSeq())
	}
	mustClose(t, l)
}

// TestCloseThenAppend: Close commits what was appended, then Append fails
// with ErrClosed, which is not a failure of the log.
func TestCloseThenAppend(t *testing.T) {
	dir := t.TempDir()
	l, _ := mustOpen(t, dir, Options{})
	var tickets []*Ticket
	var want [][]byte
	for i := 0; i < 20; i++ {
		p := payloadOf(i, i)
		want = append(want, p)
		tickets = append(tickets, l.Append(p))
	}
	mustClose(t, l)
	for i, tk := range tickets {
		select {
		case <-tk.Done():
		default:
			t.Fatalf("ticket %d still pending after Close", i)
		}
		if tk.Err() != nil {
			t.Fatalf("ticket %d: %v", i, tk.Err())
		}
	}
	tk := l.Append([]byte("late"))
	select {
	case <-tk.Done():
	default:
		t.Fatal("Append after Close returned a pending ticket")
	}
	if !errors.Is(tk.Err(), ErrClosed) || !errors.Is(tk.Wait(), ErrClosed) || errors.Is(tk.Err(), ErrFailed) {
		t.Fatalf("Append after Close: %v", tk.Err())
	}
	if l.Err() != nil {
		t.Fatalf("Err after a clean Close: %v", l.Err())
	}
	if l.LastSeq() != 20 {
		t.Fatalf("LastSeq %d after a refused append, want 20", l.LastSeq())
	}
	l, got := mustOpen(t, dir, Options{})
	checkRecords(t, got, 1, want)
	mustClose(t, l)
}

// TestStartAfter: a fresh directory can start after a snapshot's cut; the
// option is ignored once a log exists.
func TestStartAfter(t *testing.T) {
	dir := t.TempDir()
	l, got := mustOpen(t, dir, Options{StartAfter: 41})
	if len(got) != 0 || l.FirstSeq() != 42 || l.LastSeq() != 41 {
		t.Fatalf("fresh StartAfter 41: %d records, first %d last %d", len(got), l.FirstSeq(), l.LastSeq())
	}
	if _, err := os.Stat(filepath.Join(dir, "00000000000000000042")); err != nil {
		t.Fatal(err)
	}
	want := [][]byte{[]byte("a"), []byte("bb"), []byte("ccc")}
	appendWait(t, l, want...)
	mustClose(t, l)

	// Reopen with no StartAfter and with another: same log.
	for _, sa := range []uint64{0, 7, 500} {
		l, got = mustOpen(t, dir, Options{StartAfter: sa})
		checkRecords(t, got, 42, want)
		if l.FirstSeq() != 42 || l.LastSeq() != 44 {
			t.Fatalf("StartAfter %d: first %d last %d", sa, l.FirstSeq(), l.LastSeq())
		}
		mustClose(t, l)
	}
	if segs := segmentPaths(t, dir); len(segs) != 1 || segs[0].first != 42 {
		t.Fatalf("segments %v", segs)
	}

	// An empty StartAfter log reopens as empty and still starts there.
	dir2 := t.TempDir()
	l, _ = mustOpen(t, dir2, Options{StartAfter: 9})
	mustClose(t, l)
	l, got = mustOpen(t, dir2, Options{})
	if len(got) != 0 || l.FirstSeq() != 10 || l.LastSeq() != 9 {
		t.Fatalf("empty StartAfter log reopened: %d records, first %d last %d", len(got), l.FirstSeq(), l.LastSeq())
	}
	appendWait(t, l, []byte("z"))
	mustClose(t, l)
	l, got = mustOpen(t, dir2, Options{})
	checkRecords(t, got, 10, [][]byte{[]byte("z")})
	mustClose(t, l)
}

// TestTruncateBefore removes whole segments at or below the cut, never the
// tail, and the log reopens starting later with sequences continuing.
func TestTruncateBefore(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 200}
	l, _ := mustOpen(t, dir, opts)
	var all [][]byte
	for i := 0; i < 40; i++ {
		all = append(all, payloadOf(i, 50))
	}
	appendWait(t, l, all...)

	if removed, err := l.TruncateBefore(0, nil); err != nil || len(removed) != 0 {
		t.Fatalf("TruncateBefore(0): %v %v", removed, err)
	}
	segs := segmentPaths(t, dir)
	if len(segs) < 5 {
		t.Fatalf("only %d segments", len(segs))
	}
	const cut = 20
	var wantRemoved []string
	keepFrom := segs[0].first
	for i := 0; i+1 < len(segs); i++ {
		if segs[i+1].first-1 <= cut { // every record of segs[i] is <= cut
			wantRemoved = append(wantRemoved, filepath.Base(segs[i].path))
			keepFrom = segs[i+1].first
		}
	}
	if len(wantRemoved) == 0 || keepFrom > cut+1 {
		t.Fatalf("bad test setup: segments %v", segs)
	}
	calls := 0
	removed, err := l.TruncateBefore(cut, func() { calls++ })
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(removed) != fmt.Sprint(wantRemoved) || calls != len(removed) {
		t.Fatalf("removed %v (%d callbacks), want %v", removed, calls, wantRemoved)
	}
	for _, name := range removed {
		if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Fatalf("%s still there: %v", name, err)
		}
	}
	// The open log keeps working after its front was cut.
	more := [][]byte{payloadOf(40, 70), payloadOf(41, 3)}
	appendWait(t, l, more...)
	all = append(all, more...)
	mustClose(t, l)

	l, got := mustOpen(t, dir, opts)
	checkRecords(t, got, keepFrom, all[keepFrom-1:])
	if l.FirstSeq() != keepFrom || l.LastSeq() != 42 {
		t.Fatalf("after truncation: first %d last %d, want %d and 42", l.FirstSeq(), l.LastSeq(), keepFrom)
	}
	appendWait(t, l, []byte("after"))
	all = append(all, []byte("after"))
	if l.LastSeq() != 43 {
		t.Fatalf("seq did not continue: %d", l.LastSeq())
	}

	// A cut past the end removes everything but the tail segment.
	removed, err = l.TruncateBefore(1000, nil)
	if err != nil {
		t.Fatal(err)
	}
	segs = segmentPaths(t, dir)
	if len(segs) != 1 || len(removed) == 0 {
		t.Fatalf("TruncateBefore(1000): removed %v, left %v", removed, segs)
	}
	mustClose(t, l)
	l, got = mustOpen(t, dir, opts)
	checkRecords(t, got, segs[0].first, all[segs[0].first-1:])
	appendWait(t, l, []byte("last"))
	if l.LastSeq() != 44 {
		t.Fatalf("LastSeq %d, want 44", l.LastSeq())
	}
	mustClose(t, l)
}
