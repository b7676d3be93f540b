package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecodeFrame: DecodeFrame never panics; it accepts exactly the frames
// whose crc32c over bytes [4:] matches and whose kind byte is RecordKindV1
// (the only kind; anything else is rejected, so the kind is part of what
// re-encoding must reproduce), and an accepted frame re-encodes with
// appendFrame to the same bytes. appendFrame output always decodes back.
func FuzzDecodeFrame(f *testing.F) {
	f.Add(appendFrame(nil, 1, nil))
	f.Add(appendFrame(nil, 42, []byte("hello")))
	f.Add(appendFrame(nil, ^uint64(0), bytes.Repeat([]byte{0xff}, 200)))
	f.Add(appendFrame([]byte("prefix"), 7, []byte{0}))
	f.Add([]byte{})
	f.Add(make([]byte, headerSize))
	f.Add(appendFrame(nil, 3, []byte("abc"))[:headerSize-1])
	bad := appendFrame(nil, 9, []byte("kind"))
	bad[crcSize+seqSize] = 2
	f.Add(bad)
	table := crc32.MakeTable(crc32.Castagnoli)

	f.Fuzz(func(t *testing.T, frame []byte) {
		orig := bytes.Clone(frame)
		seq, payload, err := DecodeFrame(frame)
		if !bytes.Equal(frame, orig) {
			t.Fatal("DecodeFrame modified its input")
		}
		valid := len(frame) >= 13 && frame[12] == 1 &&
			binary.LittleEndian.Uint32(frame) == crc32.Checksum(frame[4:], table)
		if valid != (err == nil) {
			t.Fatalf("DecodeFrame(%x): err %v, independent check says valid=%v", frame, err, valid)
		}
		if err != nil {
			if seq != 0 || payload != nil {
				t.Fatalf("rejected frame returned seq %d payload %x", seq, payload)
			}
		} else {
			if seq != binary.LittleEndian.Uint64(frame[4:]) || !bytes.Equal(payload, frame[13:]) {
				t.Fatalf("DecodeFrame(%x) = %d %x", frame, seq, payload)
			}
			if re := appendFrame(nil, seq, payload); !bytes.Equal(re, frame) {
				t.Fatalf("re-encoded %x, want %x", re, frame)
			}
			// CRC32C catches every single-bit error.
			for _, bit := range []int{0, len(frame)*8 - 1, len(frame) * 7 % (len(frame) * 8)} {
				flipped := bytes.Clone(frame)
				flipped[bit/8] ^= 1 << (bit % 8)
				if _, _, err := DecodeFrame(flipped); err == nil {
					t.Fatalf("frame %x with bit %d flipped still decodes", frame, bit)
				}
			}
		}

		// The input as a payload: appendFrame output, after any prefix,
		// decodes back to the same sequence and payload.
		s := uint64(len(frame)) * 0x9E3779B97F4A7C15
		prefix := []byte("some earlier frame bytes")
		enc := appendFrame(bytes.Clone(prefix), s, frame)
		if !bytes.Equal(enc[:len(prefix)], prefix) || len(enc) != len(prefix)+headerSize+len(frame) {
			t.Fatalf("appendFrame damaged its prefix or has the wrong length")
		}
		s2, p2, err := DecodeFrame(enc[len(prefix):])
		if err != nil || s2 != s || !bytes.Equal(p2, frame) {
			t.Fatalf("appendFrame(%d, %x) decodes as %d %x %v", s, frame, s2, p2, err)
		}
	})
}

// fuzzLog is a small log written once per fuzzing process: its segment
// files (by name, in order), the records, and where the last segment's
// entries start.
type fuzzLog struct {
	names    []string
	files    [][]byte
	recs     [][]byte
	lastSegN int   // records in the last segment
	offs     []int // entry offsets in the last segment, plus its end
}

const fuzzSegSize = 300

func buildFuzzLog(f *testing.F) *fuzzLog {
	dir := f.TempDir()
	// The first record fills segment 1 (315 bytes >= fuzzSegSize), the
	// other five stay in segment 2 (284 bytes), the one the fuzzer damages.
	recs := [][]byte{
		payloadOf(0, 300),
		[]byte("alpha"),
		{},
		bytes.Repeat([]byte("b"), 40),
		[]byte("gamma"),
		payloadOf(5, 140), // two-byte length prefix
	}
	l, err := Open(dir, Options{SegmentSize: fuzzSegSize})
	if err != nil {
		f.Fatal(err)
	}
	for _, r := range recs {
		if err := l.Append(r).Wait(); err != nil {
			f.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		f.Fatal(err)
	}
	segs, err := listSegments(dir)
	if err != nil {
		f.Fatal(err)
	}
	fl := &fuzzLog{recs: recs}
	for _, s := range segs {
		b, err := os.ReadFile(s.path)
		if err != nil {
			f.Fatal(err)
		}
		fl.names = append(fl.names, filepath.Base(s.path))
		fl.files = append(fl.files, b)
	}
	last := segs[len(segs)-1]
	fl.lastSegN = len(recs) - int(last.first-1)
	fl.offs = entryOffsets(f, fl.files[len(fl.files)-1])
	if len(segs) < 2 || fl.lastSegN < 3 || len(fl.offs) != fl.lastSegN+1 {
		f.Fatalf("fuzz log has an unexpected shape: %d segments, last holds %d records", len(segs), fl.lastSegN)
	}
	return fl
}

// FuzzOpenDamagedTail damages the last segment of a small log: xor one
// byte at off, cut trim bytes off the end, then append zeros extra bytes.
// Open must either succeed, replaying a prefix of the written records
// byte-equal with the right sequences and losing none that the damage did
// not reach, or fail with *CorruptError. When the damage touches only the
// last record, Open must succeed and keep all the others.
func FuzzOpenDamagedTail(f *testing.F) {
	fl := buildFuzzLog(f)
	tail := fl.files[len(fl.files)-1]
	lastStart := fl.offs[len(fl.offs)-2]
	f.Add(uint(0), byte(0), uint(0), uint8(0))
	f.Add(uint(lastStart), byte(0x01), uint(0), uint8(0))
	f.Add(uint(lastStart+1), byte(0x80), uint(0), uint8(0))
	f.Add(uint(len(tail)-1), byte(0xff), uint(0), uint8(0))
	f.Add(uint(0), byte(0), uint(1), uint8(0))
	f.Add(uint(0), byte(0), uint(len(tail)-lastStart-1), uint8(0))
	f.Add(uint(0), byte(0), uint(0), uint8(16))
	f.Add(uint(fl.offs[1]+3), byte(0x10), uint(0), uint8(0))
	f.Add(uint(0), byte(0), uint(len(tail)-fl.offs[1]-2), uint8(3))

	f.Fuzz(func(t *testing.T, off uint, xor byte, trim uint, extra uint8) {
		data := bytes.Clone(tail)
		firstDamage := len(data) // first byte position that differs from the original
		if xor != 0 {
			p := int(off % uint(len(data)))
			data[p] ^= xor
			firstDamage = p
		}
		if cut := int(trim % uint(len(data)+1)); cut > 0 {
			data = data[:len(data)-cut]
			firstDamage = min(firstDamage, len(data))
		}
		if extra > 0 {
			firstDamage = min(firstDamage, len(data))
			data = append(data, make([]byte, extra)...)
		}
		// Records of the last segment untouched by the damage, counting
		// only whole entries that end before it.
		intactInTail := 0
		for i := 0; i < fl.lastSegN && fl.offs[i+1] <= firstDamage; i++ {
			intactInTail++
		}
		firstInTail := len(fl.recs) - fl.lastSegN
		mustKeep := firstInTail + intactInTail
		damaged := firstDamage < len(tail) || len(data) != len(tail)

		dir := t.TempDir()
		for i, name := range fl.names {
			b := fl.files[i]
			if i == len(fl.names)-1 {
				b = data
			}
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		var got []rec
		l, err := Open(dir, Options{SegmentSize: fuzzSegSize, Replay: func(seq uint64, p []byte) error {
			got = append(got, rec{seq, bytes.Clone(p)})
			return nil
		}})
		// Whatever was replayed, even before a refusal, is real data.
		if len(got) > len(fl.recs) {
			t.Fatalf("replayed %d records, only %d written", len(got), len(fl.recs))
		}
		for i, r := range got {
			if r.seq != uint64(i+1) || !bytes.Equal(r.payload, fl.recs[i]) {
				t.Fatalf("replayed record %d: seq %d payload %x, want seq %d %x", i, r.seq, r.payload, i+1, fl.recs[i])
			}
		}
		if err != nil {
			var ce *CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("Open failed with %v (%T), want *CorruptError", err, err)
			}
			if firstDamage >= fl.offs[fl.lastSegN-1] {
				t.Fatalf("damage only in the last record (at %d, record starts at %d) refused: %v", firstDamage, lastStart, err)
			}
			return
		}
		defer l.Close()
		if len(got) < mustKeep {
			t.Fatalf("Open kept %d records, the damage at %d spared %d", len(got), firstDamage, mustKeep)
		}
		if !damaged && (len(got) != len(fl.recs) || l.Repaired() != nil) {
			t.Fatalf("undamaged log: %d records, repair %+v", len(got), l.Repaired())
		}
		if l.LastSeq() != uint64(len(got)) {
			t.Fatalf("LastSeq %d after replaying %d", l.LastSeq(), len(got))
		}
		if rep := l.Repaired(); rep != nil {
			cut := fl.offs[len(got)-firstInTail]
			b, err := os.ReadFile(rep.KeptAs)
			if err != nil || !bytes.Equal(b, data[cut:]) {
				t.Fatalf("*.broken-at-* copy missing or not the cut bytes: %v", err)
			}
			if rep.Offset != int64(cut) || rep.LostBytes != int64(len(data)-cut) {
				t.Fatalf("repair %+v, want offset %d", *rep, cut)
			}
		}
	})
}
