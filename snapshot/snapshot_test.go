package snapshot

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

var testHeader = Header{Cut: 12345, LastHandle: 777, CreatedMs: 1_795_000_000_000}

func sampleEntries(n int) []Entry {
	es := []Entry{{Tag: TagNamespace, Name: "ns-a", Num: 42}}
	for i := 0; i < n; i++ {
		es = append(es, Entry{Tag: TagKV, Name: fmt.Sprintf("key-%04d", i), Num: uint64(i + 1), Value: []byte(fmt.Sprintf(`{"v": %d}`, i))})
	}
	es = append(es,
		Entry{Tag: TagCounter, Name: "c", Signed: -5},
		Entry{Tag: TagSeq, Name: "s", Num: 1 << 50},
		Entry{Tag: TagLock, Name: "L", Num: 776, Signed: 1_795_000_060_000},
		Entry{Tag: TagIdem, Name: "id", Signed: 1_795_086_400_000},
		Entry{Tag: TagNamespace, Name: "ns-b", Num: 0},
		Entry{Tag: TagKV, Name: "empty", Num: 1, Value: []byte{}},
	)
	return es
}

func writeEntries(w *Writer, es []Entry) error {
	for _, e := range es {
		var err error
		switch e.Tag {
		case TagNamespace:
			err = w.Namespace(e.Name, e.Num)
		case TagKV:
			err = w.KV(e.Name, e.Num, e.Value)
		case TagCounter:
			err = w.Counter(e.Name, e.Signed)
		case TagSeq:
			err = w.Seq(e.Name, e.Num)
		case TagLock:
			err = w.Lock(e.Name, e.Num, e.Signed)
		case TagIdem:
			err = w.Idem(e.Name, e.Signed)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func encode(t testing.TB, es []Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, testHeader)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeEntries(w, es); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readAll(b []byte) (Header, []Entry, error) {
	var got []Entry
	h, _, err := Read(bytes.NewReader(b), int64(len(b)), func(e Entry) error {
		got = append(got, e)
		return nil
	})
	return h, got, err
}

func TestRoundTrip(t *testing.T) {
	es := sampleEntries(1000)
	b := encode(t, es)
	h, got, err := readAll(b)
	if err != nil {
		t.Fatal(err)
	}
	if h != testHeader {
		t.Fatalf("header %+v, want %+v", h, testHeader)
	}
	if !reflect.DeepEqual(got, es) {
		t.Fatalf("entries differ after a round trip")
	}
}

// Every truncation of a snapshot is rejected as corrupt, never read as a
// smaller valid snapshot.
func TestTruncatedRejected(t *testing.T) {
	b := encode(t, sampleEntries(20))
	for n := 0; n < len(b); n++ {
		_, _, err := readAll(b[:n])
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d of %d bytes: err %v, want ErrCorrupt", n, len(b), err)
		}
	}
}

// Every single-bit flip anywhere in the file is detected.
func TestBitFlipsRejected(t *testing.T) {
	b := encode(t, sampleEntries(20))
	for i := 0; i < len(b); i++ {
		for bit := 0; bit < 8; bit++ {
			c := bytes.Clone(b)
			c[i] ^= 1 << bit
			if _, _, err := readAll(c); err == nil {
				t.Fatalf("flip of bit %d in byte %d of %d was not detected", bit, i, len(b))
			}
		}
	}
}

// A body that decompresses to far more than its trailer announces (a zstd
// bomb) is rejected once one byte past the announced size is read: the
// valid entry at its start is read, then the reader must notice the rest.
func TestZstdBombRejected(t *testing.T) {
	entry := []byte{TagNamespace, 2, 'n', 's', 1}
	var body bytes.Buffer
	zw, _ := zstd.NewWriter(&body)
	zw.Write(entry)
	zw.Write(make([]byte, 64<<20)) // 64 MiB of zeros compress to a few KiB
	zw.Close()
	zcrc := crc32.Checksum(body.Bytes(), castagnoli)
	file := func(tr Trailer) []byte {
		var f bytes.Buffer
		f.Write(encodeHeader(testHeader))
		f.Write(body.Bytes())
		f.Write(encodeTrailer(tr))
		return f.Bytes()
	}
	var seen int
	b := file(Trailer{RawLen: uint64(len(entry)), Entries: 1, BodyCRC: crc32.Checksum(entry, castagnoli), ZstdCRC: zcrc})
	_, _, err := Read(bytes.NewReader(b), int64(len(b)), func(Entry) error { seen++; return nil })
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "longer than") || seen != 1 {
		t.Fatalf("bomb: err %v after %d entries; want ErrCorrupt 'longer than' after 1", err, seen)
	}
	// The announced size itself is bounded too.
	if _, _, err := readAll(file(Trailer{RawLen: MaxRawLen + 1, ZstdCRC: zcrc})); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("oversized RawLen: err %v, want ErrCorrupt", err)
	}
}

// A zstd frame asking for a window over MaxWindow is refused.
func TestLargeWindowRejected(t *testing.T) {
	var body bytes.Buffer
	zw, _ := zstd.NewWriter(&body, zstd.WithWindowSize(64<<20), zstd.WithSingleSegment(false))
	data := bytes.Repeat([]byte("abcdefgh"), 16<<20/8)
	zw.Write(data)
	zw.Close()
	var file bytes.Buffer
	file.Write(encodeHeader(testHeader))
	file.Write(body.Bytes())
	file.Write(encodeTrailer(Trailer{RawLen: uint64(len(data)), ZstdCRC: crc32.Checksum(body.Bytes(), castagnoli)}))
	if _, _, err := readAll(file.Bytes()); err == nil {
		t.Fatal("a 64 MiB window was accepted")
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	es := sampleEntries(50)
	if _, err := WriteFile(dir, "snap-1", testHeader, func(w *Writer) error { return writeEntries(w, es) }, nil); err != nil {
		t.Fatal(err)
	}
	var got []Entry
	if _, _, err := ReadFile(filepath.Join(dir, "snap-1"), func(e Entry) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, es) {
		t.Fatal("entries differ after WriteFile/ReadFile")
	}
	// A failing fill leaves nothing behind and the old file untouched.
	before, _ := os.ReadFile(filepath.Join(dir, "snap-1"))
	boom := errors.New("boom")
	if _, err := WriteFile(dir, "snap-1", testHeader, func(w *Writer) error { w.Namespace("x", 1); return boom }, nil); !errors.Is(err, boom) {
		t.Fatalf("err %v, want boom", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, "snap-1"))
	names, _ := os.ReadDir(dir)
	if !bytes.Equal(before, after) || len(names) != 1 {
		t.Fatalf("failed WriteFile changed the directory: %d files, same content %v", len(names), bytes.Equal(before, after))
	}
}

// TestRoomRefusesWrite: PublishSteps.Room is asked before the temporary
// file exists and before each write into it; its refusal, at either point,
// fails the snapshot and leaves the directory as it was.
func TestRoomRefusesWrite(t *testing.T) {
	dir := t.TempDir()
	es := sampleEntries(5000)
	full := errors.New("no room")
	for _, allowed := range []int{0, 1} {
		var asked []int
		room := func(n int) error {
			asked = append(asked, n)
			if len(asked) > allowed {
				return full
			}
			return nil
		}
		_, err := WriteFileSteps(dir, "snap-1", testHeader, func(w *Writer) error { return writeEntries(w, es) }, PublishSteps{Room: room})
		if !errors.Is(err, full) {
			t.Fatalf("Room allowing %d calls: err %v, want its refusal", allowed, err)
		}
		if allowed == 1 && (len(asked) != 2 || asked[0] != 0 || asked[1] <= 0) {
			t.Fatalf("Room was asked %v, want 0 before the file and then a write's size", asked)
		}
		if names, _ := os.ReadDir(dir); len(names) != 0 {
			t.Fatalf("a refused snapshot left %d files", len(names))
		}
	}
}

func TestReadErrorNamesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snap-bad")
	os.WriteFile(path, []byte("not a snapshot at all, but long enough to have a header and a trailer......"), 0o644)
	_, _, err := ReadFile(path, func(Entry) error { return nil })
	if !errors.Is(err, ErrCorrupt) || !bytes.Contains([]byte(err.Error()), []byte(path)) {
		t.Fatalf("err %v: want ErrCorrupt naming %s", err, path)
	}
}

// FuzzRead: any input is rejected or read without panicking; whatever reads
// successfully re-encodes to a snapshot that reads back the same.
func FuzzRead(f *testing.F) {
	f.Add(encode(f, sampleEntries(3)))
	f.Add(encode(f, nil))
	f.Add([]byte(Magic))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, es, err := readAll(b)
		if err != nil {
			return
		}
		var buf bytes.Buffer
		w, _ := NewWriter(&buf, h)
		if err := writeEntries(w, es); err != nil {
			t.Fatal(err)
		}
		w.Close()
		h2, es2, err := readAll(buf.Bytes())
		if err != nil || h2 != h || !reflect.DeepEqual(es, es2) {
			t.Fatalf("re-encoded snapshot differs: %v", err)
		}
	})
}
