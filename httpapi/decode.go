package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"
	"time"

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

// watchRequest is a decoded /watch body.
type watchRequest struct {
	key     string
	version uint64
	timeout time.Duration
}

// decodeRequest turns a /db body into an engine.Request, enforcing limits.
func (lim *Limits) decodeRequest(body []byte) (*engine.Request, error) {
	var w parsedRequest
	if err := parseRequest(body, &w); err != nil {
		return nil, err
	}
	req := &engine.Request{MaxReplyBytes: lim.MaxReplyBytes}
	if n := len(w.kvSet) + len(w.kvGet) + len(w.atomic) + len(w.seq) + len(w.ids); n > lim.MaxOps {
		return nil, badRequest(CodeTooManyOps, fmt.Sprintf("the request has %d ops; the limit is %d (--max-ops)", n, lim.MaxOps))
	}
	if w.lockID.ok {
		if err := lim.checkKey("LockID", w.lockID.v); err != nil {
			return nil, err
		}
		dur, ok, err := millis("LockDur", w.lockDur.ptr(), w.lockDurMs.ptr(), lim.MaxLockDur)
		if err != nil {
			return nil, err
		}
		if !ok || dur == 0 {
			return nil, badRequest(CodeDurationRequired, "LockID needs LockDur (seconds) or LockDurMs greater than 0: how long the lock is held if never unlocked")
		}
		wait, _, err := millis("LockWait", w.lockWait.ptr(), w.lockWaitMs.ptr(), lim.MaxLockWait)
		if err != nil {
			return nil, err
		}
		req.LockID, req.LockDurMs, req.LockWaitMs = w.lockID.v, dur, wait
	} else if w.lockDur.ok || w.lockDurMs.ok || w.lockWait.ok || w.lockWaitMs.ok {
		return nil, badRequest(CodeInvalidRequest, "LockDur and LockWait only mean something with LockID")
	}
	if w.unlockID.ok {
		if err := lim.checkKey("UnlockID", w.unlockID.v); err != nil {
			return nil, err
		}
		if !w.hasUnlock {
			return nil, badRequest(CodeHandleRequired, "UnlockID needs Unlock: the handle returned when the lock was acquired")
		}
		req.UnlockID, req.Unlock = w.unlockID.v, w.unlock
	} else if w.hasUnlock {
		return nil, badRequest(CodeInvalidRequest, "Unlock (a handle) needs UnlockID (the lock's name)")
	}
	for i := range w.kvSet {
		s := &w.kvSet[i]
		if err := lim.checkItemKey("KVSet[%d].Key", i, s.Key); err != nil {
			return nil, err
		}
		if !s.Delete && len(s.Value) == 0 {
			return nil, badRequest(CodeValueRequired, fmt.Sprintf("KVSet[%d] needs a Value (any JSON) or \"Delete\": true", i))
		}
		if lim.MaxValueBytes > 0 && len(s.Value) > lim.MaxValueBytes {
			return nil, badRequest(CodeValueTooLong, fmt.Sprintf("KVSet[%d].Value is %d bytes of JSON; the limit is %d (--max-value-bytes)", i, len(s.Value), lim.MaxValueBytes))
		}
	}
	for i := range w.kvSet {
		// The value is a slice of the body, whose buffer is reused for the
		// next request; the engine keeps what it is given.
		s := &w.kvSet[i]
		if s.Delete {
			s.Value = nil
		} else {
			s.Value = bytes.Clone(s.Value)
		}
	}
	req.KVSet = w.kvSet
	for i, k := range w.kvGet {
		if err := lim.checkItemKey("KVGet[%d]", i, k); err != nil {
			return nil, err
		}
	}
	req.KVGet = w.kvGet
	if len(w.atomic) > 0 {
		// One array holds every Add, Set and IfEq the ops point to.
		nums := make([]int64, 0, 3*len(w.atomic))
		ptr := func(o optInt) *int64 {
			if !o.ok {
				return nil
			}
			nums = append(nums, o.v)
			return &nums[len(nums)-1]
		}
		req.Atomic = make([]engine.AtomicOp, len(w.atomic))
		for i, a := range w.atomic {
			if err := lim.checkItemKey("Atomic[%d].Key", i, a.key); err != nil {
				return nil, err
			}
			if a.add.ok && a.set.ok {
				return nil, badRequest(CodeInvalidRequest, fmt.Sprintf("Atomic[%d] has both Add and Set; give one", i))
			}
			req.Atomic[i] = engine.AtomicOp{Key: a.key, Add: ptr(a.add), Set: ptr(a.set), IfEq: ptr(a.ifEq)}
		}
	}
	if len(w.seq) > 0 {
		req.Seq = make([]engine.SeqOp, len(w.seq))
		for i, s := range w.seq {
			if err := lim.checkItemKey("Seq[%d].Key", i, s.key); err != nil {
				return nil, err
			}
			count := uint64(1)
			if s.hasCount {
				count = s.count
			}
			if count == 0 || count > lim.MaxSeqCount {
				return nil, badRequest(CodeInvalidRequest, fmt.Sprintf("Seq[%d].Count must be 1 to %d (got %d)", i, lim.MaxSeqCount, count))
			}
			req.Seq[i] = engine.SeqOp{Key: s.key, Count: count}
		}
	}
	for i, id := range w.ids {
		if err := lim.checkItemKey("IdempotencyIDs[%d]", i, id); err != nil {
			return nil, err
		}
	}
	req.IdempotencyIDs = w.ids
	ttl, ok, err := millis("IdempotencyTTL", w.ttl.ptr(), w.ttlMs.ptr(), lim.MaxIdempotencyTTL)
	if err != nil {
		return nil, err
	}
	if ok {
		if ttl <= 0 {
			return nil, badRequest(CodeInvalidDuration, "IdempotencyTTL must be above 0 (leave it out for the server's --idempotency-ttl)")
		}
		if len(w.ids) == 0 {
			return nil, badRequest(CodeInvalidRequest, "IdempotencyTTL without IdempotencyIDs: there is nothing to remember")
		}
		req.IdempotencyTTLMs = ttl
	}
	return req, nil
}

// checkItemKey is checkKey for the i-th item of a list, naming it (by
// format) only when the key is refused.
func (lim *Limits) checkItemKey(format string, i int, key string) *apiError {
	if key != "" && len(key) <= lim.MaxKeyBytes {
		return nil
	}
	return lim.checkKey(fmt.Sprintf(format, i), key)
}

func (lim *Limits) decodeWatch(body []byte) (*watchRequest, error) {
	var w parsedWatch
	if err := parseWatch(body, &w); err != nil {
		return nil, err
	}
	key := w.id
	if !key.ok {
		key = w.key
	} else if w.key.ok {
		return nil, badRequest(CodeInvalidRequest, "give the key as ID or Key, not both")
	}
	if !key.ok {
		return nil, badRequest(CodeKeyRequired, "a watch needs ID: the key to watch")
	}
	if err := lim.checkKey("ID", key.v); err != nil {
		return nil, err
	}
	// Longer timeouts are capped, not refused, as Consul caps ?wait=.
	const anyTimeout = 100 * 365 * 24 * time.Hour
	ms, ok, err := millis("Timeout", w.timeout.ptr(), w.timeoutMs.ptr(), anyTimeout)
	if err != nil {
		return nil, err
	}
	timeout := lim.DefaultWatchTimeout
	if ok {
		timeout = min(time.Duration(ms)*time.Millisecond, lim.MaxWatchTimeout)
	}
	return &watchRequest{key: key.v, version: w.version, timeout: timeout}, nil
}
