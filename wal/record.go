package wal

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
)

// Record framing constants; see doc.go for the byte diagram.
const (
	crcSize      = 4
	seqSize      = 8
	kindSize     = 1
	headerSize   = crcSize + seqSize + kindSize
	RecordKindV1 = byte(1)
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errBadRecord is internal: a frame that fails its checks.
var errBadRecord = errors.New("wal: bad record")

// appendFrame appends the framed record for payload with sequence seq to dst.
func appendFrame(dst []byte, seq uint64, payload []byte) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.LittleEndian.AppendUint64(dst, seq)
	dst = append(dst, RecordKindV1)
	dst = append(dst, payload...)
	crc := crc32.Checksum(dst[start+crcSize:], castagnoli)
	binary.LittleEndian.PutUint32(dst[start:], crc)
	return dst
}

// DecodeFrame checks a framed record and returns its sequence number and
// payload (a sub-slice of frame). It never panics on any input.
func DecodeFrame(frame []byte) (seq uint64, payload []byte, err error) {
	if len(frame) < headerSize {
		return 0, nil, errBadRecord
	}
	want := binary.LittleEndian.Uint32(frame)
	if crc32.Checksum(frame[crcSize:], castagnoli) != want {
		return 0, nil, errBadRecord
	}
	if frame[crcSize+seqSize] != RecordKindV1 {
		return 0, nil, errBadRecord
	}
	return binary.LittleEndian.Uint64(frame[crcSize:]), frame[headerSize:], nil
}

// nextEntry reads one tidwall/wal binary entry (uvarint length + data) at
// the start of b. n is the entry's total length; ok is false when b does
// not hold a whole entry.
func nextEntry(b []byte) (data []byte, n int, ok bool) {
	size, vn := binary.Uvarint(b)
	if vn <= 0 || uint64(len(b)-vn) < size {
		return nil, 0, false
	}
	return b[vn : vn+int(size)], vn + int(size), true
}
