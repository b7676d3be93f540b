package httpapi

// The request decoder latch had before its one-pass decoder (wiredecode.go):
// encoding/json into wire structs, after the body-wide scans checkUTF8 and
// checkSurrogates. It is kept here, unchanged but for the names of its two
// entry points, as the oracle the differential tests hold the new decoder to.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/latchkv/latch/engine"
)

// wireRequest is the JSON body of POST /db/{env}. encoding/json matches
// field names case-insensitively, as the seed API requires.
type wireRequest struct {
	wireScalars
	KVSet          oneOrMany[wireKVSet]
	KVGet          kvGetList
	Atomic         oneOrMany[wireAtomic]
	Seq            oneOrMany[wireSeq]
	IdempotencyIDs oneOrMany[string]
}

// wireRequestArrays is wireRequest with every list as a plain JSON array,
// the shape nearly every client sends. Decoding into it needs one pass of
// encoding/json, and DisallowUnknownFields reaches the nested objects;
// the flexible shapes of wireRequest need a second pass per list, so
// decodeRequest tries this first and falls back to wireRequest on error.
type wireRequestArrays struct {
	wireScalars
	KVSet          []wireKVSet
	KVGet          []string
	Atomic         []wireAtomic
	Seq            []wireSeq
	IdempotencyIDs []string
}

// wireScalars holds the scalar fields (the lock's and the idempotency
// retention), shared by both request shapes; the decoder promotes them, so
// they stay top-level in the JSON.
type wireScalars struct {
	LockID     *string
	LockDur    *float64
	LockDurMs  *int64
	LockWait   *float64
	LockWaitMs *int64
	UnlockID   *string
	Unlock     *handle
	// How long this request's IdempotencyIDs are remembered, at most the
	// server's --idempotency-ttl (the default).
	IdempotencyTTL   *float64
	IdempotencyTTLMs *int64
}

type wireKVSet struct {
	Key    string
	Value  json.RawMessage
	Delete bool
}

type wireAtomic struct {
	Key  string
	Add  *int64
	Set  *int64
	IfEq *int64
}

type wireSeq struct {
	Key   string
	Count *uint64
}

type wireWatch struct {
	ID        *string
	Key       *string // alias of ID
	Version   uint64
	Timeout   *float64
	TimeoutMs *int64
}

// oneOrMany accepts a JSON array of T or a single T.
type oneOrMany[T any] []T

func (m *oneOrMany[T]) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		var list []T
		if err := strictUnmarshal(b, &list); err != nil {
			return err
		}
		*m = list
		return nil
	}
	if string(b) == "null" {
		*m = nil
		return nil
	}
	var one T
	if err := strictUnmarshal(b, &one); err != nil {
		return err
	}
	*m = []T{one}
	return nil
}

// kvGetList accepts ["a", "b"], "a", or [{"Key": "a"}] (the seed's shape).
type kvGetList []string

func (l *kvGetList) UnmarshalJSON(b []byte) error {
	var items oneOrMany[json.RawMessage]
	if err := items.UnmarshalJSON(b); err != nil {
		return err
	}
	out := make([]string, 0, len(items))
	for _, raw := range items {
		raw = bytes.TrimSpace(raw)
		if len(raw) > 0 && raw[0] == '{' {
			var obj struct{ Key string }
			if err := strictUnmarshal(raw, &obj); err != nil {
				return err
			}
			out = append(out, obj.Key)
			continue
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return errors.New("KVGet items must be key strings or {\"Key\": ...} objects")
		}
		out = append(out, s)
	}
	*l = out
	return nil
}

// handle is a lock handle given as a JSON number or a numeric string.
type handle uint64

func (h *handle) UnmarshalJSON(b []byte) error {
	s := string(bytes.TrimSpace(b))
	if strings.HasPrefix(s, `"`) {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		s = strings.TrimSpace(s)
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v == 0 {
		return fmt.Errorf("the handle in Unlock must be a positive integer, as a number or a numeric string (got %s)", string(b))
	}
	*h = handle(v)
	return nil
}

// checkUTF8 refuses a body that is not UTF-8 (RFC 8259 section 8.1).
// encoding/json would quietly turn each bad byte of a string into U+FFFD,
// so the keys "k\xff" and "k\xfe" would be one key, and a stored Value
// would be echoed back as JSON that strict parsers refuse. For the same
// reason it refuses an escaped lone surrogate outside a Value
// (checkSurrogates).
func checkUTF8(body []byte) *apiError {
	if utf8.Valid(body) {
		return checkSurrogates(body)
	}
	off := 0
	for off < len(body) {
		r, size := utf8.DecodeRune(body[off:])
		if r == utf8.RuneError && size == 1 {
			break
		}
		off += size
	}
	return badRequest(CodeBadJSON, fmt.Sprintf("the body is not valid UTF-8 (byte %d); JSON text must be UTF-8: send keys and values as UTF-8 or as \\u escapes", off))
}

// mayRepeatTopLevelName reports whether body, a JSON object, may name
// one of its top-level fields twice, as encoding/json matches names:
// case-insensitively. A name that is escaped or not ASCII counts as a
// possible repeat (no field is spelled so), as do more than 32 names.
// It reads malformed JSON without failing; the decoder reports it.
func mayRepeatTopLevelName(body []byte) bool {
	var names [32][]byte
	n, depth, wantName := 0, 0, false
	for i := 0; i < len(body); i++ {
		switch body[i] {
		case '{':
			depth++
			wantName = depth == 1
		case '[':
			depth++
		case '}', ']':
			depth--
		case ',':
			wantName = depth == 1
		case '"':
			start, plain := i+1, true
			for i++; i < len(body) && body[i] != '"'; i++ {
				if body[i] == '\\' {
					plain = false
					i++
				} else if body[i] >= utf8.RuneSelf {
					plain = false
				}
			}
			if !wantName {
				continue
			}
			wantName = false
			if !plain || n == len(names) || i > len(body) {
				return true
			}
			name := body[start:min(i, len(body))]
			for _, seen := range names[:n] {
				if bytes.EqualFold(seen, name) {
					return true
				}
			}
			names[n] = name
			n++
		}
	}
	return false
}

// refDecodeRequest turns a /db body into an engine.Request, enforcing limits.
func (lim *Limits) refDecodeRequest(body []byte) (*engine.Request, error) {
	if err := checkUTF8(body); err != nil {
		return nil, err
	}
	var fast wireRequestArrays
	var w wireRequest
	// A repeated list field must not take the fast path: encoding/json
	// decodes the second occurrence into the first one's slice elements
	// without zeroing them, so {"Atomic":[{"Key":"c","Add":5}],
	// "Atomic":[{"Key":"c"}]} would add 5. wireRequest's lists are
	// replaced whole, so there the last occurrence wins exactly.
	if err := strictUnmarshal(body, &fast); err == nil && !mayRepeatTopLevelName(body) {
		w = wireRequest{
			wireScalars: fast.wireScalars,
			KVSet:       fast.KVSet, KVGet: fast.KVGet, Atomic: fast.Atomic,
			Seq: fast.Seq, IdempotencyIDs: fast.IdempotencyIDs,
		}
	} else if err := strictUnmarshal(body, &w); err != nil {
		return nil, jsonError(err)
	}
	req := &engine.Request{MaxReplyBytes: lim.MaxReplyBytes}
	if n := len(w.KVSet) + len(w.KVGet) + len(w.Atomic) + len(w.Seq) + len(w.IdempotencyIDs); n > lim.MaxOps {
		return nil, badRequest(CodeTooManyOps, fmt.Sprintf("the request has %d ops; the limit is %d (--max-ops)", n, lim.MaxOps))
	}
	if w.LockID != nil {
		if err := lim.checkKey("LockID", *w.LockID); err != nil {
			return nil, err
		}
		dur, ok, err := millis("LockDur", w.LockDur, w.LockDurMs, lim.MaxLockDur)
		if err != nil {
			return nil, err
		}
		if !ok || dur == 0 {
			return nil, badRequest(CodeDurationRequired, "LockID needs LockDur (seconds) or LockDurMs greater than 0: how long the lock is held if never unlocked")
		}
		wait, _, err := millis("LockWait", w.LockWait, w.LockWaitMs, lim.MaxLockWait)
		if err != nil {
			return nil, err
		}
		req.LockID, req.LockDurMs, req.LockWaitMs = *w.LockID, dur, wait
	} else if w.LockDur != nil || w.LockDurMs != nil || w.LockWait != nil || w.LockWaitMs != nil {
		return nil, badRequest(CodeInvalidRequest, "LockDur and LockWait only mean something with LockID")
	}
	if w.UnlockID != nil {
		if err := lim.checkKey("UnlockID", *w.UnlockID); err != nil {
			return nil, err
		}
		if w.Unlock == nil {
			return nil, badRequest(CodeHandleRequired, "UnlockID needs Unlock: the handle returned when the lock was acquired")
		}
		req.UnlockID, req.Unlock = *w.UnlockID, uint64(*w.Unlock)
	} else if w.Unlock != nil {
		return nil, badRequest(CodeInvalidRequest, "Unlock (a handle) needs UnlockID (the lock's name)")
	}
	for i, s := range w.KVSet {
		if err := lim.checkKey(fmt.Sprintf("KVSet[%d].Key", i), s.Key); err != nil {
			return nil, err
		}
		if !s.Delete && len(s.Value) == 0 {
			return nil, badRequest(CodeValueRequired, fmt.Sprintf("KVSet[%d] needs a Value (any JSON) or \"Delete\": true", i))
		}
		if lim.MaxValueBytes > 0 && len(s.Value) > lim.MaxValueBytes {
			return nil, badRequest(CodeValueTooLong, fmt.Sprintf("KVSet[%d].Value is %d bytes of JSON; the limit is %d (--max-value-bytes)", i, len(s.Value), lim.MaxValueBytes))
		}
		v := []byte(s.Value)
		if s.Delete {
			v = nil
		}
		req.KVSet = append(req.KVSet, engine.KVSet{Key: s.Key, Value: v, Delete: s.Delete})
	}
	for i, k := range w.KVGet {
		if err := lim.checkKey(fmt.Sprintf("KVGet[%d]", i), k); err != nil {
			return nil, err
		}
	}
	req.KVGet = w.KVGet
	for i, a := range w.Atomic {
		if err := lim.checkKey(fmt.Sprintf("Atomic[%d].Key", i), a.Key); err != nil {
			return nil, err
		}
		if a.Add != nil && a.Set != nil {
			return nil, badRequest(CodeInvalidRequest, fmt.Sprintf("Atomic[%d] has both Add and Set; give one", i))
		}
		req.Atomic = append(req.Atomic, engine.AtomicOp{Key: a.Key, Add: a.Add, Set: a.Set, IfEq: a.IfEq})
	}
	for i, s := range w.Seq {
		if err := lim.checkKey(fmt.Sprintf("Seq[%d].Key", i), s.Key); err != nil {
			return nil, err
		}
		count := uint64(1)
		if s.Count != nil {
			count = *s.Count
		}
		if count == 0 || count > lim.MaxSeqCount {
			return nil, badRequest(CodeInvalidRequest, fmt.Sprintf("Seq[%d].Count must be 1 to %d (got %d)", i, lim.MaxSeqCount, count))
		}
		req.Seq = append(req.Seq, engine.SeqOp{Key: s.Key, Count: count})
	}
	for i, id := range w.IdempotencyIDs {
		if err := lim.checkKey(fmt.Sprintf("IdempotencyIDs[%d]", i), id); err != nil {
			return nil, err
		}
	}
	req.IdempotencyIDs = w.IdempotencyIDs
	ttl, ok, err := millis("IdempotencyTTL", w.IdempotencyTTL, w.IdempotencyTTLMs, lim.MaxIdempotencyTTL)
	if err != nil {
		return nil, err
	}
	if ok {
		if ttl <= 0 {
			return nil, badRequest(CodeInvalidDuration, "IdempotencyTTL must be above 0 (leave it out for the server's --idempotency-ttl)")
		}
		if len(w.IdempotencyIDs) == 0 {
			return nil, badRequest(CodeInvalidRequest, "IdempotencyTTL without IdempotencyIDs: there is nothing to remember")
		}
		req.IdempotencyTTLMs = ttl
	}
	return req, nil
}

func (lim *Limits) refDecodeWatch(body []byte) (*watchRequest, error) {
	if err := checkUTF8(body); err != nil {
		return nil, err
	}
	var w wireWatch
	if err := strictUnmarshal(body, &w); err != nil {
		return nil, jsonError(err)
	}
	key := w.ID
	if key == nil {
		key = w.Key
	} else if w.Key != nil {
		return nil, badRequest(CodeInvalidRequest, "give the key as ID or Key, not both")
	}
	if key == nil {
		return nil, badRequest(CodeKeyRequired, "a watch needs ID: the key to watch")
	}
	if err := lim.checkKey("ID", *key); err != nil {
		return nil, err
	}
	// Longer timeouts are capped, not refused, as Consul caps ?wait=.
	const anyTimeout = 100 * 365 * 24 * time.Hour
	ms, ok, err := millis("Timeout", w.Timeout, w.TimeoutMs, anyTimeout)
	if err != nil {
		return nil, err
	}
	timeout := lim.DefaultWatchTimeout
	if ok {
		timeout = min(time.Duration(ms)*time.Millisecond, lim.MaxWatchTimeout)
	}
	return &watchRequest{key: *key, version: w.Version, timeout: timeout}, nil
}
