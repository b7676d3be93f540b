package snapshot

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Format constants; see doc.go for the byte diagram.
const (
	Magic       = "LATCHSNP"
	EndMagic    = "LATCHEND"
	Version     = uint32(1)
	HeaderSize  = 44
	TrailerSize = 36
	// MaxWindow caps the zstd window a reader accepts, and so its memory.
	MaxWindow = 8 << 20
	// MaxRawLen caps the uncompressed body a reader accepts (64 GiB).
	MaxRawLen = 64 << 30
)

// Entry tags.
const (
	TagNamespace byte = 1
	TagKV        byte = 2
	TagCounter   byte = 3
	TagSeq       byte = 4
	TagLock      byte = 5
	TagIdem      byte = 6
)

// Sentinel errors, matched with errors.Is.
var (
	// ErrCorrupt wraps every problem found in a snapshot file.
	ErrCorrupt = errors.New("snapshot: corrupt")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Header is what a snapshot says about itself.
type Header struct {
	Cut        uint64 // last log sequence covered
	LastHandle uint64 // highest lock handle ever issued
	CreatedMs  int64  // unix ms when the cut was taken
}

// Trailer is the summary written after the body.
type Trailer struct {
	RawLen  uint64 // uncompressed body length
	Entries uint64 // number of entries in the body
	BodyCRC uint32 // CRC32C of the uncompressed body
	ZstdCRC uint32 // CRC32C of the compressed bytes between header and trailer
}

func encodeHeader(h Header) []byte {
	b := make([]byte, 0, HeaderSize)
	b = append(b, Magic...)
	b = binary.LittleEndian.AppendUint32(b, Version)
	b = binary.LittleEndian.AppendUint32(b, 0) // flags
	b = binary.LittleEndian.AppendUint64(b, h.Cut)
	b = binary.LittleEndian.AppendUint64(b, h.LastHandle)
	b = binary.LittleEndian.AppendUint64(b, uint64(h.CreatedMs))
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

func decodeHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, corruptf("file is %d bytes, shorter than the %d-byte header", len(b), HeaderSize)
	}
	if string(b[:8]) != Magic {
		return Header{}, corruptf("not a latch snapshot (magic %q, want %q)", b[:8], Magic)
	}
	if got, want := binary.LittleEndian.Uint32(b[40:]), crc32.Checksum(b[:40], castagnoli); got != want {
		return Header{}, corruptf("header checksum mismatch")
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != Version {
		return Header{}, corruptf("format version %d, this latch reads version %d", v, Version)
	}
	if f := binary.LittleEndian.Uint32(b[12:]); f != 0 {
		return Header{}, corruptf("unknown flags %#x", f)
	}
	return Header{
		Cut:        binary.LittleEndian.Uint64(b[16:]),
		LastHandle: binary.LittleEndian.Uint64(b[24:]),
		CreatedMs:  int64(binary.LittleEndian.Uint64(b[32:])),
	}, nil
}

func encodeTrailer(t Trailer) []byte {
	b := make([]byte, 0, TrailerSize)
	b = binary.LittleEndian.AppendUint64(b, t.RawLen)
	b = binary.LittleEndian.AppendUint64(b, t.Entries)
	b = binary.LittleEndian.AppendUint32(b, t.BodyCRC)
	b = binary.LittleEndian.AppendUint32(b, t.ZstdCRC)
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
	return append(b, EndMagic...)
}

func decodeTrailer(b []byte) (Trailer, error) {
	if len(b) != TrailerSize {
		return Trailer{}, corruptf("trailer is %d bytes, want %d", len(b), TrailerSize)
	}
	if string(b[28:]) != EndMagic {
		return Trailer{}, corruptf("no end marker: the file is truncated or was not finished")
	}
	if got, want := binary.LittleEndian.Uint32(b[24:]), crc32.Checksum(b[:24], castagnoli); got != want {
		return Trailer{}, corruptf("trailer checksum mismatch")
	}
	t := Trailer{
		RawLen:  binary.LittleEndian.Uint64(b[0:]),
		Entries: binary.LittleEndian.Uint64(b[8:]),
		BodyCRC: binary.LittleEndian.Uint32(b[16:]),
		ZstdCRC: binary.LittleEndian.Uint32(b[20:]),
	}
	if t.RawLen > MaxRawLen {
		return Trailer{}, corruptf("body claims %d bytes, over the %d limit", t.RawLen, MaxRawLen)
	}
	return t, nil
}
