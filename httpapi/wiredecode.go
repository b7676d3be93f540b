package httpapi

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/latchkv/latch/engine"
)

// The request bodies' schema, read in one pass by jsonScan, with the
// outcome encoding/json had when it decoded them into wire structs (field
// names matched case-insensitively, unknown fields refused, the last of a
// repeated field winning, null leaving a string or bool as it was) and the
// same precedence among faults, so that the error code is the same:
//
//   - a body that is not one JSON text (syntax, UTF-8, depth, an escaped
//     lone surrogate outside a Value) is bad_json whatever else is wrong;
//   - else a field of a list (KVSet, KVGet, Atomic, Seq, IdempotencyIDs)
//     or Unlock that does not decode stops decoding: its first fault is
//     the error;
//   - else the first wrongly typed scalar or unknown field is;
//   - else more data after the object is bad_json.
//
// Strings and values are slices of the body until decodeRequest copies
// what the engine keeps.

// softErr keeps the first decoding fault of one (sub)value.
type softErr struct{ err *apiError }

func (e *softErr) save(err *apiError) {
	if e.err == nil {
		e.err = err
	}
}

func typeErr(field, want, got string) *apiError {
	if field == "" {
		return badRequest(CodeBadJSON, "the body must be a JSON object, not "+got)
	}
	return badRequest(CodeBadJSON, fmt.Sprintf("field %q must be %s, not %s", field, want, got))
}

func rangeErr(field, want string, lit []byte) *apiError {
	return badRequest(CodeBadJSON, fmt.Sprintf("field %q must be %s that fits in 64 bits; got %s", field, want, lit))
}

func unknownField(raw []byte, esc bool) *apiError {
	return badRequest(CodeUnknownField, "unknown field "+strconv.Quote(unquote(raw, esc))+"; see docs/API.md for the fields of each route")
}

var errKVGetItem = badRequest(CodeBadJSON, `the body could not be decoded: KVGet items must be key strings or {"Key": ...} objects`)

// wrongType records that the value at s.i is not a want, and skips it.
func (s *jsonScan) wrongType(e *softErr, field, want string) {
	e.save(typeErr(field, want, kindName(s.kind())))
	s.skip(false)
}

// unknown records an unknown member and skips its value.
func (s *jsonScan) unknown(e *softErr, raw []byte, esc bool) {
	e.save(unknownField(raw, esc))
	s.skip(isValueName(raw))
}

// str reads a string field: ok with its text, or null (a *string becomes
// nil; a string stays as it was).
func (s *jsonScan) strField(e *softErr, field string) (v string, ok, null bool) {
	switch s.kind() {
	case '"':
		raw, esc := s.str(false)
		if s.fail != nil {
			return "", false, false
		}
		return unquote(raw, esc), true, false
	case 'n':
		s.lit("null")
		return "", false, true
	}
	s.wrongType(e, field, "a string")
	return "", false, false
}

func isNumStart(c byte) bool { return c == '-' || isDigit(c) }

func (s *jsonScan) floatField(e *softErr, field string) (v float64, ok, null bool) {
	return numField(s, e, field, "a number", parseFloat64)
}

func (s *jsonScan) intField(e *softErr, field string) (v int64, ok, null bool) {
	return numField(s, e, field, "an integer", parseInt64)
}

func (s *jsonScan) uintField(e *softErr, field string) (v uint64, ok, null bool) {
	return numField(s, e, field, "a non-negative integer", parseUint64)
}

// numField reads a number that parse must fit into T (kind names T in
// errors); null leaves the field as it was.
func numField[T any](s *jsonScan, e *softErr, field, kind string, parse func(lit []byte) (T, bool)) (v T, ok, null bool) {
	switch c := s.kind(); {
	case isNumStart(c):
		lit := s.num()
		if s.fail != nil {
			return v, false, false
		}
		n, fits := parse(lit)
		if !fits {
			e.save(rangeErr(field, kind, lit))
			return v, false, false
		}
		return n, true, false
	case c == 'n':
		s.lit("null")
		return v, false, true
	}
	s.wrongType(e, field, kind)
	return v, false, false
}

func parseFloat64(lit []byte) (float64, bool) {
	f, err := strconv.ParseFloat(string(lit), 64)
	return f, err == nil
}

// boolField reads true or false; null leaves the field as it was.
func (s *jsonScan) boolField(e *softErr, field string) (v, ok bool) {
	switch s.kind() {
	case 't':
		s.lit("true")
		return true, s.fail == nil
	case 'f':
		s.lit("false")
		return false, s.fail == nil
	case 'n':
		s.lit("null")
		return false, false
	}
	s.wrongType(e, field, "true or false")
	return false, false
}

// list reads a field that takes an array of items or a single item,
// calling item at each; null is no items.
func (s *jsonScan) list(item func()) {
	switch s.kind() {
	case 'n':
		s.lit("null")
	case '[':
		for more := s.enter(']'); more; more = s.more(']') {
			item()
		}
	default:
		item()
	}
}

// Optional scalars: ok says the field was given (and not null).
type (
	optString struct {
		v  string
		ok bool
	}
	optFloat struct {
		v  float64
		ok bool
	}
	optInt struct {
		v  int64
		ok bool
	}
)

func (o *optFloat) ptr() *float64 {
	if !o.ok {
		return nil
	}
	return &o.v
}

func (o *optInt) ptr() *int64 {
	if !o.ok {
		return nil
	}
	return &o.v
}

// parsedRequest is a /db body as sent, before the limits are checked.
// KVSet values are slices of the body.
type parsedRequest struct {
	lockID, unlockID             optString
	lockDur, lockWait, ttl       optFloat
	lockDurMs, lockWaitMs, ttlMs optInt
	unlock                       uint64
	hasUnlock                    bool
	kvSet                        []engine.KVSet
	kvGet                        []string
	atomic                       []parsedAtomic
	seq                          []parsedSeq
	ids                          []string
}

type parsedAtomic struct {
	key            string
	add, set, ifEq optInt
}

type parsedSeq struct {
	key      string
	count    uint64
	hasCount bool
}

var requestFields = []string{"LockID", "LockDur", "LockDurMs", "LockWait", "LockWaitMs", "UnlockID", "Unlock",
	"IdempotencyTTL", "IdempotencyTTLMs", "KVSet", "KVGet", "Atomic", "Seq", "IdempotencyIDs"}

const (
	fLockID = iota
	fLockDur
	fLockDurMs
	fLockWait
	fLockWaitMs
	fUnlockID
	fUnlock
	fIdempotencyTTL
	fIdempotencyTTLMs
	fKVSet
	fKVGet
	fAtomic
	fSeq
	fIdempotencyIDs
)

var (
	kvSetFields  = []string{"Key", "Value", "Delete"}
	atomicFields = []string{"Key", "Add", "Set", "IfEq"}
	seqFields    = []string{"Key", "Count"}
	keyFields    = []string{"Key"}
	watchFields  = []string{"ID", "Key", "Version", "Timeout", "TimeoutMs"}
)

// parseRequest reads a /db body.
func parseRequest(body []byte, w *parsedRequest) *apiError {
	s := &jsonScan{b: body}
	return s.finish(s.request(w), func(l *jsonScan) { l.request(new(parsedRequest)) })
}

// request reads a /db body into w and returns its first decoding fault.
func (s *jsonScan) request(w *parsedRequest) *apiError {
	var top softErr
	stopped := false // a list field or Unlock failed: decoding stopped there
	stop := func(e *softErr) {
		if e.err != nil && !stopped {
			top.err, stopped = e.err, true
		}
	}
	setString := func(o *optString, field string) {
		if v, ok, null := s.strField(&top, field); ok || null {
			*o = optString{v, ok}
		}
	}
	setFloat := func(o *optFloat, field string) {
		if v, ok, null := s.floatField(&top, field); ok || null {
			*o = optFloat{v, ok}
		}
	}
	setInt := func(o *optInt, field string) {
		if v, ok, null := s.intField(&top, field); ok || null {
			*o = optInt{v, ok}
		}
	}
	s.ws()
	switch c := s.kind(); c {
	case '{':
		for more := s.enter('}'); more; more = s.more('}') {
			raw, esc := s.name()
			if s.fail != nil {
				break
			}
			var e softErr
			switch f := matchName(raw, esc, requestFields); f {
			case fLockID:
				setString(&w.lockID, "LockID")
			case fUnlockID:
				setString(&w.unlockID, "UnlockID")
			case fLockDur:
				setFloat(&w.lockDur, "LockDur")
			case fLockWait:
				setFloat(&w.lockWait, "LockWait")
			case fIdempotencyTTL:
				setFloat(&w.ttl, "IdempotencyTTL")
			case fLockDurMs:
				setInt(&w.lockDurMs, "LockDurMs")
			case fLockWaitMs:
				setInt(&w.lockWaitMs, "LockWaitMs")
			case fIdempotencyTTLMs:
				setInt(&w.ttlMs, "IdempotencyTTLMs")
			case fUnlock:
				w.unlock, w.hasUnlock = s.handle(&e, w.unlock, w.hasUnlock)
			case fKVSet:
				w.kvSet = nil
				s.list(func() { w.kvSet = append(w.kvSet, s.kvSetItem(&e)) })
			case fKVGet:
				w.kvGet = nil
				s.list(func() { w.kvGet = append(w.kvGet, s.kvGetItem(&e)) })
			case fAtomic:
				w.atomic = nil
				s.list(func() { w.atomic = append(w.atomic, s.atomicItem(&e)) })
			case fSeq:
				w.seq = nil
				s.list(func() { w.seq = append(w.seq, s.seqItem(&e)) })
			case fIdempotencyIDs:
				w.ids = nil
				s.list(func() {
					v, _, _ := s.strField(&e, "IdempotencyIDs")
					w.ids = append(w.ids, v)
				})
			default:
				s.unknown(&top, raw, esc)
			}
			stop(&e)
		}
	case 'n':
		s.lit("null")
	default:
		top.save(typeErr("", "", kindName(c)))
		s.skip(false)
	}
	return top.err
}

// finish decides the outcome once the first value is read (soft: its
// first decoding fault). The faults of the whole body come first, with
// the messages the body-wide scans of the old decoder gave (see
// decode_ref_test.go), which also read past the first value: a lone
// surrogate after it, or past a syntax error, is what the client hears
// of. Only error replies pay for these scans; rescan reads the body
// again, as the decoder that read it.
func (s *jsonScan) finish(soft *apiError, rescan func(*jsonScan)) *apiError {
	trailing := false
	if s.fail == nil {
		s.ws()
		trailing = s.i < len(s.b)
		if !trailing {
			return soft
		}
	}
	if err := notUTF8(s.b); err != nil {
		return err
	}
	if err := checkSurrogates(s.b); err != nil {
		return err
	}
	switch {
	case s.fail != nil && s.failSur:
		// A lone surrogate in malformed JSON, where checkSurrogates lost
		// its way: the syntax error is the one to name.
		l := &jsonScan{b: s.b, lenient: true}
		if rescan(l); l.fail != nil {
			return l.fail
		}
		return s.fail
	case s.fail != nil:
		return s.fail
	case soft != nil:
		return soft
	}
	return badRequest(CodeBadJSON, "the body could not be decoded: unexpected data after the JSON object")
}

// handle reads Unlock: a positive integer, as a number or a numeric
// string. null unsets it.
func (s *jsonScan) handle(e *softErr, was uint64, had bool) (uint64, bool) {
	start := s.i
	var v uint64
	ok := false
	switch c := s.kind(); {
	case c == 'n':
		s.lit("null")
		return 0, false
	case c == '"':
		raw, esc := s.str(false)
		if s.fail != nil {
			return was, had
		}
		n, err := strconv.ParseUint(strings.TrimSpace(unquote(raw, esc)), 10, 64)
		v, ok = n, err == nil
	case isNumStart(c):
		v, ok = parseUint64(s.num())
	default:
		s.skip(false)
	}
	if s.fail != nil {
		return was, had
	}
	if !ok || v == 0 {
		e.save(badRequest(CodeBadJSON, fmt.Sprintf("the body could not be decoded: the handle in Unlock must be a positive integer, as a number or a numeric string (got %s)", s.b[start:s.i])))
		return was, had
	}
	return v, true
}

func (s *jsonScan) kvSetItem(e *softErr) (it engine.KVSet) {
	s.itemObject(e, "KVSet", func(raw []byte, esc bool) {
		switch matchName(raw, esc, kvSetFields) {
		case 0:
			if v, ok, _ := s.strField(e, "KVSet.Key"); ok {
				it.Key = v
			}
		case 1:
			start := s.i
			s.skip(true)
			it.Value = s.b[start:s.i:s.i]
		case 2:
			if v, ok := s.boolField(e, "KVSet.Delete"); ok {
				it.Delete = v
			}
		default:
			s.unknown(e, raw, esc)
		}
	})
	return it
}

// itemObject reads one list item that must be an object, or null (which
// leaves the item as it is): member is called with each member's name,
// the scanner at its value.
func (s *jsonScan) itemObject(e *softErr, what string, member func(raw []byte, esc bool)) {
	switch s.kind() {
	case '{':
		for more := s.enter('}'); more; more = s.more('}') {
			raw, esc := s.name()
			if s.fail != nil {
				break
			}
			member(raw, esc)
		}
	case 'n':
		s.lit("null")
	default:
		s.wrongType(e, what, "an object")
	}
}

func (s *jsonScan) kvGetItem(e *softErr) (key string) {
	switch s.kind() {
	case '{':
		for more := s.enter('}'); more; more = s.more('}') {
			raw, esc := s.name()
			if s.fail != nil {
				break
			}
			if matchName(raw, esc, keyFields) < 0 {
				s.unknown(e, raw, esc)
			} else if v, ok, _ := s.strField(e, "KVGet.Key"); ok {
				key = v
			}
		}
		return key
	case '"':
		v, _, _ := s.strField(e, "KVGet")
		return v
	case 'n':
		s.lit("null")
		return ""
	}
	e.save(errKVGetItem)
	s.skip(false)
	return ""
}

func (s *jsonScan) atomicItem(e *softErr) (it parsedAtomic) {
	s.itemObject(e, "Atomic", func(raw []byte, esc bool) {
		var o *optInt
		var field string
		switch matchName(raw, esc, atomicFields) {
		case 0:
			if v, ok, _ := s.strField(e, "Atomic.Key"); ok {
				it.key = v
			}
			return
		case 1:
			o, field = &it.add, "Atomic.Add"
		case 2:
			o, field = &it.set, "Atomic.Set"
		case 3:
			o, field = &it.ifEq, "Atomic.IfEq"
		default:
			s.unknown(e, raw, esc)
			return
		}
		if v, ok, null := s.intField(e, field); ok || null {
			*o = optInt{v, ok}
		}
	})
	return it
}

func (s *jsonScan) seqItem(e *softErr) (it parsedSeq) {
	s.itemObject(e, "Seq", func(raw []byte, esc bool) {
		switch matchName(raw, esc, seqFields) {
		case 0:
			if v, ok, _ := s.strField(e, "Seq.Key"); ok {
				it.key = v
			}
		case 1:
			if v, ok, null := s.uintField(e, "Seq.Count"); ok || null {
				it.count, it.hasCount = v, ok
			}
		default:
			s.unknown(e, raw, esc)
		}
	})
	return it
}

// parsedWatch is a /watch body as sent.
type parsedWatch struct {
	id, key   optString
	version   uint64
	timeout   optFloat
	timeoutMs optInt
}

func parseWatch(body []byte, w *parsedWatch) *apiError {
	s := &jsonScan{b: body}
	return s.finish(s.watch(w), func(l *jsonScan) { l.watch(new(parsedWatch)) })
}

// watch reads a /watch body into w and returns its first decoding fault.
func (s *jsonScan) watch(w *parsedWatch) *apiError {
	var e softErr
	s.ws()
	switch c := s.kind(); c {
	case '{':
		for more := s.enter('}'); more; more = s.more('}') {
			raw, esc := s.name()
			if s.fail != nil {
				break
			}
			switch f := matchName(raw, esc, watchFields); f {
			case 0, 1:
				o, field := &w.id, "ID"
				if f == 1 {
					o, field = &w.key, "Key"
				}
				if v, ok, null := s.strField(&e, field); ok || null {
					*o = optString{v, ok}
				}
			case 2:
				if v, ok, _ := s.uintField(&e, "Version"); ok {
					w.version = v
				}
			case 3:
				if v, ok, null := s.floatField(&e, "Timeout"); ok || null {
					w.timeout = optFloat{v, ok}
				}
			case 4:
				if v, ok, null := s.intField(&e, "TimeoutMs"); ok || null {
					w.timeoutMs = optInt{v, ok}
				}
			default:
				s.unknown(&e, raw, esc)
			}
		}
	case 'n':
		s.lit("null")
	default:
		e.save(typeErr("", "", kindName(c)))
		s.skip(false)
	}
	return e.err
}
