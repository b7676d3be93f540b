package httpapi

import (
	"strconv"
	"unicode/utf8"

	"github.com/latchkv/latch/engine"
)

// Responses are built by hand rather than with encoding/json: it is faster,
// and json.Marshal would re-format (compact) stored JSON values, which latch
// promises to return byte-exact.

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, escaping as encoding/json does
// (invalid UTF-8 becomes U+FFFD).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendValue appends a stored value (raw JSON) or null.
func appendValue(b []byte, v []byte) []byte {
	if v == nil {
		return append(b, "null"...)
	}
	return append(b, v...)
}

func appendResponse(b []byte, r *engine.Response) []byte {
	b = append(b, '{')
	sep := func() {
		if len(b) > 1 {
			b = append(b, ',')
		}
	}
	if r.Lock != 0 {
		b = append(b, `"Lock":`...)
		b = strconv.AppendUint(b, r.Lock, 10)
		b = append(b, `,"Till":`...)
		b = strconv.AppendInt(b, r.TillMs/1000, 10)
		b = append(b, `,"TillMs":`...)
		b = strconv.AppendInt(b, r.TillMs, 10)
	}
	if len(r.KV) > 0 {
		sep()
		b = append(b, `"KV":[`...)
		for i, kv := range r.KV {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendKV(b, kv.Key, kv.Value, kv.Version)
		}
		b = append(b, ']')
	}
	if len(r.Atomic) > 0 {
		sep()
		b = append(b, `"Atomic":[`...)
		for i, a := range r.Atomic {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"Key":`...)
			b = appendString(b, a.Key)
			b = append(b, `,"Value":`...)
			b = strconv.AppendInt(b, a.Value, 10)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if len(r.Seq) > 0 {
		sep()
		b = append(b, `"Seq":[`...)
		for i, s := range r.Seq {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"Key":`...)
			b = appendString(b, s.Key)
			b = append(b, `,"First":`...)
			b = strconv.AppendUint(b, s.First, 10)
			b = append(b, `,"Last":`...)
			b = strconv.AppendUint(b, s.Last, 10)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// appendKV appends {"Key":..,"Value":..,"Version":..}, the shape of both a
// KVGet item and a watch reply.
func appendKV(b []byte, key string, value []byte, version uint64) []byte {
	b = append(b, `{"Key":`...)
	b = appendString(b, key)
	b = append(b, `,"Value":`...)
	b = appendValue(b, value)
	b = append(b, `,"Version":`...)
	b = strconv.AppendUint(b, version, 10)
	return append(b, '}')
}

func appendError(b []byte, code, msg string) []byte {
	b = append(b, `{"Code":`...)
	b = appendString(b, code)
	b = append(b, `,"Message":`...)
	b = appendString(b, msg)
	return append(b, '}')
}
