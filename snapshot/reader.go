package snapshot

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"
)

// Entry is one decoded body entry. Which fields mean something depends on
// Tag: Name is the namespace name, key or id; Num the revision, version,
// next id or handle; Signed the counter value, deadline or expiry; Value a
// KV value.
type Entry struct {
	Tag    byte
	Name   string
	Num    uint64
	Signed int64
	Value  []byte
}

// hashingReader counts and checksums the decompressed body as it is read.
type hashingReader struct {
	r   io.Reader
	crc uint32
	n   uint64
}

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.crc = crc32.Update(h.crc, castagnoli, p[:n])
	h.n += uint64(n)
	return n, err
}

// Read checks and decodes a snapshot of size bytes from r, calling fn for
// each entry in order. fn runs before the body checksum is known to match:
// if Read returns an error, everything fn built must be thrown away.
func Read(r io.ReaderAt, size int64, fn func(Entry) error) (Header, Trailer, error) {
	if size < HeaderSize+TrailerSize {
		return Header{}, Trailer{}, corruptf("file is %d bytes, shorter than a header and trailer (%d)", size, HeaderSize+TrailerSize)
	}
	hb := make([]byte, HeaderSize)
	if _, err := r.ReadAt(hb, 0); err != nil {
		return Header{}, Trailer{}, err
	}
	h, err := decodeHeader(hb)
	if err != nil {
		return Header{}, Trailer{}, err
	}
	tb := make([]byte, TrailerSize)
	if _, err := r.ReadAt(tb, size-TrailerSize); err != nil {
		return h, Trailer{}, err
	}
	t, err := decodeTrailer(tb)
	if err != nil {
		return h, Trailer{}, err
	}
	body := io.NewSectionReader(r, HeaderSize, size-HeaderSize-TrailerSize)
	zcrc := crc32.New(castagnoli)
	if _, err := io.Copy(zcrc, body); err != nil {
		return h, t, err
	}
	if zcrc.Sum32() != t.ZstdCRC {
		return h, t, corruptf("checksum mismatch in the compressed body")
	}
	body.Seek(0, io.SeekStart) //nolint:errcheck // a SectionReader seek to 0 cannot fail
	zr, err := zstd.NewReader(body, zstd.WithDecoderMaxWindow(MaxWindow),
		zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
	if err != nil {
		return h, t, err
	}
	defer zr.Close()
	// Never decompress more than the trailer announced, plus one byte to
	// notice a body (or a bomb) that is longer.
	hr := &hashingReader{r: io.LimitReader(zr, int64(t.RawLen)+1)}
	br := bufio.NewReaderSize(hr, 64<<10)
	d := &bodyDecoder{br: br, left: t.RawLen}
	var entries uint64
	for d.left > 0 {
		e, err := d.entry()
		if err != nil {
			return h, t, corruptf("entry %d: %v", entries, err)
		}
		entries++
		if err := fn(e); err != nil {
			return h, t, err
		}
	}
	if _, err := br.ReadByte(); err != io.EOF {
		if err == nil {
			return h, t, corruptf("the body is longer than the %d bytes its trailer announces", t.RawLen)
		}
		return h, t, corruptf("reading the body: %v", err)
	}
	switch {
	case hr.n != t.RawLen:
		return h, t, corruptf("the body is %d bytes, its trailer says %d", hr.n, t.RawLen)
	case hr.crc != t.BodyCRC:
		return h, t, corruptf("body checksum mismatch")
	case entries != t.Entries:
		return h, t, corruptf("%d entries, the trailer says %d", entries, t.Entries)
	}
	return h, t, nil
}

// ReadFile is Read on a file, with the file's name in any error.
func ReadFile(path string, fn func(Entry) error) (Header, Trailer, error) {
	f, err := os.Open(path)
	if err != nil {
		return Header{}, Trailer{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Header{}, Trailer{}, err
	}
	h, t, err := Read(f, st.Size(), fn)
	if err != nil {
		return h, t, fmt.Errorf("%s: %w", path, err)
	}
	return h, t, nil
}

// bodyDecoder reads entries, never trusting a length beyond what is left.
type bodyDecoder struct {
	br   *bufio.Reader
	left uint64 // body bytes not yet consumed
}

var errShort = errors.New("entry runs past the end of the body")

func (d *bodyDecoder) byte1() (byte, error) {
	if d.left == 0 {
		return 0, errShort
	}
	b, err := d.br.ReadByte()
	if err != nil {
		return 0, unexpected(err)
	}
	d.left--
	return b, nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func (d *bodyDecoder) uvarint() (uint64, error) {
	var x uint64
	var s uint
	for i := 0; i < binary.MaxVarintLen64; i++ {
		b, err := d.byte1()
		if err != nil {
			return 0, err
		}
		if b < 0x80 {
			if i == binary.MaxVarintLen64-1 && b > 1 {
				return 0, errors.New("varint overflows 64 bits")
			}
			return x | uint64(b)<<s, nil
		}
		x |= uint64(b&0x7f) << s
		s += 7
	}
	return 0, errors.New("varint overflows 64 bits")
}

func (d *bodyDecoder) varint() (int64, error) {
	ux, err := d.uvarint()
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x, err
}

func (d *bodyDecoder) bytes() ([]byte, error) {
	n, err := d.uvarint()
	if err != nil {
		return nil, err
	}
	if n > d.left {
		return nil, fmt.Errorf("a length of %d bytes, but only %d are left in the body", n, d.left)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(d.br, b); err != nil {
		return nil, unexpected(err)
	}
	d.left -= n
	return b, nil
}

func (d *bodyDecoder) entry() (Entry, error) {
	var e Entry
	var err error
	if e.Tag, err = d.byte1(); err != nil {
		return e, err
	}
	name, err := d.bytes()
	if err != nil {
		return e, err
	}
	e.Name = string(name)
	switch e.Tag {
	case TagNamespace, TagSeq:
		e.Num, err = d.uvarint()
	case TagKV:
		if e.Num, err = d.uvarint(); err == nil {
			e.Value, err = d.bytes()
		}
	case TagCounter, TagIdem:
		e.Signed, err = d.varint()
	case TagLock:
		if e.Num, err = d.uvarint(); err == nil {
			e.Signed, err = d.varint()
		}
	default:
		return e, fmt.Errorf("unknown entry tag %d", e.Tag)
	}
	return e, err
}
