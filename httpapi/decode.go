package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/latchkv/latch/engine"
)

// Limits bound what one request may ask for. Each has a flag in
// `latch serve` and a stable error code when exceeded.
type Limits struct {
	MaxBodyBytes        int64         // --max-body-bytes, 413 body_too_large
	MaxOps              int           // --max-ops, 400 too_many_ops (KVSet+KVGet+Atomic+Seq+IdempotencyIDs)
	MaxKeyBytes         int           // --max-key-bytes, 400 key_too_long (keys, lock ids, idempotency ids)
	MaxNamespaceBytes   int           // --max-namespace-bytes, 400 invalid_namespace
	MaxLockDur          time.Duration // --max-lock-dur, 400 invalid_duration
	MaxLockWait         time.Duration // --max-lock-wait, 400 invalid_duration
	MaxWatchTimeout     time.Duration // --max-watch-timeout; longer Timeouts are capped to it
	DefaultWatchTimeout time.Duration // a watch without Timeout waits this long
	MaxSeqCount         uint64        // 400 invalid_request
	MaxIdempotencyTTL   time.Duration // --idempotency-ttl; a longer IdempotencyTTL is 400 invalid_duration
	MaxValueBytes       int           // --max-value-bytes, 400 value_too_long (a KVSet Value as JSON text; 0: only the body bounds it)
	MaxReplyBytes       int           // --max-reply-bytes, 400 reply_too_large (keys and values one request's KVGet reads; 0: no bound)
}

// DefaultLimits are the limits `latch serve` starts with.
func DefaultLimits() Limits {
	return Limits{
		MaxBodyBytes:        1 << 20,
		MaxOps:              1000,
		MaxKeyBytes:         1024,
		MaxNamespaceBytes:   128,
		MaxLockDur:          24 * time.Hour,
		MaxLockWait:         5 * time.Minute,
		MaxWatchTimeout:     5 * time.Minute,
		DefaultWatchTimeout: 30 * time.Second,
		MaxSeqCount:         1_000_000,
		MaxIdempotencyTTL:   engine.DefaultIdempotencyTTL,
		// As large as the body allows by default; lower it to bound the
		// memory one key can take.
		MaxValueBytes: 1 << 20,
		// 16 values of the largest size: a KVGet of a handful of big
		// values still works, while one request's reply, which is built
		// whole in memory, stays a small multiple of the body limit.
		MaxReplyBytes: 16 << 20,
	}
}

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

// strictUnmarshal decodes one JSON value, rejecting unknown fields and
// trailing data.
func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("unexpected data after the JSON object")
	}
	return nil
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

// jsonError turns a decoding error into a 400 that says what to fix.
func jsonError(err error) *apiError {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	msg := err.Error()
	switch {
	case errors.As(err, &syn):
		return badRequest(CodeBadJSON, fmt.Sprintf("the body is not valid JSON: %v (at byte %d)", syn, syn.Offset))
	case errors.As(err, &typ):
		// Name the field as the client spells it (the embedded wireScalars
		// is invisible in the JSON) and the type in JSON's words, not Go's.
		field := strings.TrimPrefix(typ.Field, "wireScalars.")
		want := jsonKind(typ.Type)
		if field == "" {
			return badRequest(CodeBadJSON, fmt.Sprintf("the body must be a JSON object, not %s", typ.Value))
		}
		if got, isNum := strings.CutPrefix(typ.Value, "number "); isNum && want != "an object" && want != "an array" && want != "a string" {
			return badRequest(CodeBadJSON, fmt.Sprintf("field %q must be %s that fits in 64 bits; got %s", field, want, got))
		}
		return badRequest(CodeBadJSON, fmt.Sprintf("field %q must be %s, not %s", field, want, typ.Value))
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return badRequest(CodeBadJSON, "the body is empty or ends before the JSON object does")
	case strings.HasPrefix(msg, "json: unknown field "):
		return badRequest(CodeUnknownField, "unknown field "+strings.TrimPrefix(msg, "json: unknown field ")+"; see docs/API.md for the fields of each route")
	}
	return badRequest(CodeBadJSON, "the body could not be decoded: "+strings.TrimPrefix(msg, "json: "))
}

// jsonKind names what a Go type accepts, in JSON's words.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "a different type"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return t.String()
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

// millis turns a duration given in seconds (float) or milliseconds into
// milliseconds, checking 0 <= d <= max. name is the seconds field's name.
func millis(name string, secs *float64, ms *int64, max time.Duration) (int64, bool, *apiError) {
	if secs != nil && ms != nil {
		return 0, false, badRequest(CodeInvalidDuration, fmt.Sprintf("give %s or %sMs, not both", name, name))
	}
	var v int64
	switch {
	case secs != nil:
		f := *secs * 1000
		if math.IsNaN(f) || f < 0 || f > float64(max.Milliseconds()) {
			return 0, false, badRequest(CodeInvalidDuration, fmt.Sprintf("%s must be between 0 and %d seconds (got %v)", name, int64(max.Seconds()), *secs))
		}
		v = int64(math.Round(f))
	case ms != nil:
		if *ms < 0 || *ms > max.Milliseconds() {
			return 0, false, badRequest(CodeInvalidDuration, fmt.Sprintf("%sMs must be between 0 and %d (got %d)", name, max.Milliseconds(), *ms))
		}
		v = *ms
	default:
		return 0, false, nil
	}
	return v, true, nil
}

func (lim *Limits) checkKey(what, key string) *apiError {
	if key == "" {
		return badRequest(CodeKeyRequired, what+" must not be empty")
	}
	if len(key) > lim.MaxKeyBytes {
		return badRequest(CodeKeyTooLong, fmt.Sprintf("%s is %d bytes; the limit is %d (--max-key-bytes)", what, len(key), lim.MaxKeyBytes))
	}
	return nil
}

// checkNamespace validates the {env} of the URL.
func (lim *Limits) checkNamespace(ns string) *apiError {
	if ns == "" || len(ns) > lim.MaxNamespaceBytes {
		return badRequest(CodeInvalidNamespace, fmt.Sprintf("the namespace in the URL must be 1 to %d bytes (--max-namespace-bytes)", lim.MaxNamespaceBytes))
	}
	if ns == "." || ns == ".." {
		// Reachable only percent-encoded (/db/%2e%2e); a proxy that
		// decodes it would route the request somewhere else.
		return badRequest(CodeInvalidNamespace, fmt.Sprintf("namespace %q is not allowed: . and .. are path segments, not names", ns))
	}
	for i := 0; i < len(ns); i++ {
		c := ns[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == ':') {
			return badRequest(CodeInvalidNamespace, fmt.Sprintf("namespace %q may only hold letters, digits and _ - . : (byte %d is not allowed)", ns, i))
		}
	}
	return nil
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

// decodeRequest turns a /db body into an engine.Request, enforcing limits.
func (lim *Limits) decodeRequest(body []byte) (*engine.Request, error) {
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

// watchRequest is a decoded /watch body.
type watchRequest struct {
	key     string
	version uint64
	timeout time.Duration
}

func (lim *Limits) decodeWatch(body []byte) (*watchRequest, error) {
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
