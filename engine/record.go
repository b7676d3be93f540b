package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// An effect is one state change. A log record is one namespace's effects
// from one request (or one lock hand-off), applied together:
//
//	record  = uvarint(len(ns)) ns  effect*
//	effect  = kind(1 byte) fields
//	  effPut      key  uvarint(version)  bytes(value)
//	  effDelete   key  uvarint(revision)
//	  effCounter  key  varint(value)
//	  effSeq      key  uvarint(next id)
//	  effGrant    key  uvarint(handle)  varint(deadline unix ms)
//	  effRelease  key  uvarint(handle)
//	  effIdem     id   varint(expiry unix ms)
//	  effForceRelease key uvarint(handle)   an operator's release (admin API)
//	key, id, bytes = uvarint(len) + raw bytes
//
// Deadlines and expiries are absolute so replay never needs the clock to
// rebuild state (DESIGN I3).
const (
	effPut     byte = 1
	effDelete  byte = 2
	effCounter byte = 3
	effSeq     byte = 4
	effGrant   byte = 5
	effRelease byte = 6
	effIdem    byte = 7
	// effForceRelease is a release an operator forced through the admin
	// API rather than the holder's unlock. It applies exactly like
	// effRelease; its own kind keeps the log honest about who let go.
	effForceRelease byte = 8
)

// maxFieldLen bounds any length field when decoding, so a damaged record
// cannot make the decoder allocate without limit.
const maxFieldLen = 64 << 20

type effect struct {
	kind   byte
	key    string
	value  []byte
	num    uint64 // version, revision, next id, handle
	signed int64  // counter value, deadline, expiry
}

var errBadPayload = errors.New("engine: malformed log record")

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func encodeRecord(dst []byte, ns string, effs []effect) []byte {
	dst = appendString(dst, ns)
	for i := range effs {
		e := &effs[i]
		dst = append(dst, e.kind)
		dst = appendString(dst, e.key)
		switch e.kind {
		case effPut:
			dst = binary.AppendUvarint(dst, e.num)
			dst = binary.AppendUvarint(dst, uint64(len(e.value)))
			dst = append(dst, e.value...)
		case effDelete, effSeq, effRelease, effForceRelease:
			dst = binary.AppendUvarint(dst, e.num)
		case effCounter, effIdem:
			dst = binary.AppendVarint(dst, e.signed)
		case effGrant:
			dst = binary.AppendUvarint(dst, e.num)
			dst = binary.AppendVarint(dst, e.signed)
		}
	}
	return dst
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errBadPayload
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errBadPayload
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > maxFieldLen || n > uint64(len(d.b)) {
		d.err = errBadPayload
		return nil
	}
	v := make([]byte, n) // copied: the payload is only valid during replay
	copy(v, d.b[:n])
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string { return string(d.bytes()) }

// decodeRecord parses a record. It never panics, whatever the input.
func decodeRecord(b []byte) (ns string, effs []effect, err error) {
	d := &decoder{b: b}
	ns = d.string()
	for d.err == nil && len(d.b) > 0 {
		e := effect{kind: d.b[0]}
		d.b = d.b[1:]
		e.key = d.string()
		switch e.kind {
		case effPut:
			e.num = d.uvarint()
			e.value = d.bytes()
		case effDelete, effSeq, effRelease, effForceRelease:
			e.num = d.uvarint()
		case effCounter, effIdem:
			e.signed = d.varint()
		case effGrant:
			e.num = d.uvarint()
			e.signed = d.varint()
		default:
			return "", nil, fmt.Errorf("%w: unknown effect kind %d", errBadPayload, e.kind)
		}
		effs = append(effs, e)
	}
	if d.err != nil {
		return "", nil, d.err
	}
	return ns, effs, nil
}
