package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/latchkv/latch/engine"
)

// The decode fuzz targets check, for any body:
//
//   - decoding never panics;
//   - it either fails with an *apiError (400, a known snake_case code, a
//     message), or returns a request/watch within the Limits it was
//     decoded with (key lengths, op counts, durations, Seq counts, the
//     field combinations the engine relies on);
//   - a stored Value is byte-exact: a slice of the body as sent;
//   - round trip: a decoded request, encoded again with encoding/json and
//     decoded again, is the same request. encoding/json compacts a
//     json.RawMessage when it encodes it, so the re-decoded Value is the
//     compacted form of the first: that is what the round trip compares
//     values by (byte-exactness is the property above).
//
// Each body is decoded under the default limits and under tight ones, so
// the limit checks themselves are exercised by short inputs.

// tightLimits are small enough that fuzzed bodies hit every limit.
var tightLimits = Limits{
	MaxBodyBytes:        1 << 20,
	MaxOps:              4,
	MaxKeyBytes:         8,
	MaxNamespaceBytes:   16,
	MaxLockDur:          10 * time.Second,
	MaxLockWait:         2 * time.Second,
	MaxWatchTimeout:     3 * time.Second,
	DefaultWatchTimeout: time.Second,
	MaxSeqCount:         100,
	MaxValueBytes:       16,
}

// decodeCodes are the codes decoding may fail with, all 400.
var decodeCodes = map[string]bool{
	CodeBadJSON: true, CodeUnknownField: true, CodeInvalidRequest: true, CodeHandleRequired: true,
	CodeDurationRequired: true, CodeInvalidDuration: true, CodeKeyRequired: true, CodeKeyTooLong: true,
	CodeValueRequired: true, CodeTooManyOps: true, CodeValueTooLong: true,
}

var snakeCase = regexp.MustCompile(`^[a-z]+(_[a-z]+)*$`)

func checkDecodeError(t *testing.T, body []byte, err error) {
	t.Helper()
	var ae *apiError
	if !errors.As(err, &ae) {
		t.Fatalf("%q: error %T %v is not an API error", body, err, err)
	}
	status, code, msg := classify(err)
	if status != http.StatusBadRequest || !decodeCodes[code] || !snakeCase.MatchString(code) || strings.TrimSpace(msg) == "" {
		t.Fatalf("%q: decode error %d %q %q", body, status, code, msg)
	}
}

// docBodies returns every request body of the curl examples in
// docs/API.md, and every JSON block there, as seeds.
func docBodies(f *testing.F) []string {
	src, err := os.ReadFile("../docs/API.md")
	if err != nil {
		f.Fatalf("read docs: %v", err)
	}
	var out []string
	for _, m := range regexp.MustCompile(`(?s)-d '(.*?)'`).FindAllStringSubmatch(string(src), -1) {
		out = append(out, m[1])
	}
	for _, m := range regexp.MustCompile("(?s)```json\n(.*?)```").FindAllStringSubmatch(string(src), -1) {
		out = append(out, m[1])
	}
	if len(out) < 12 {
		f.Fatalf("found only %d bodies in docs/API.md", len(out))
	}
	return out
}

func FuzzDecodeRequest(f *testing.F) {
	for _, b := range docBodies(f) {
		f.Add([]byte(b))
	}
	for _, b := range []string{
		``, `{}`, `null`, `[]`, `{`, `{}{}`, ` {"KVGet":["a"]} `,
		`{"LockID":"a","LockDur":1.0005,"LockWait":0.0004}`,
		`{"LockID":"a","LockDurMs":1,"LockWaitMs":0}`,
		`{"LockID":"a","LockDur":86400}`, `{"LockID":"a","LockDur":1e308}`, `{"LockID":"a","LockDur":-0}`,
		`{"LockID":"a","LockDur":1,"LockDurMs":1}`,
		`{"lockid":"a","LOCKDUR":1,"unlockid":"a","UNLOCK":"7"}`,
		`{"UnlockID":"a","Unlock":" 18446744073709551615 "}`, `{"UnlockID":"a","Unlock":null}`, `{"UnlockID":"a"}`, `{"Unlock":1}`,
		`{"KVSet":{"Key":"k","Value":{"a": 1.50e2, "b":[ ]}}}`,
		`{"KVSet":[{"Key":"k","Value":null},{"Key":"k","Delete":true,"Value":[1]}]}`,
		`{"KVSet":[{"Key":"k"}]}`, `{"KVSet":[{"Key":"k","Value":"\u00e9\ud800<>&\u2028"}]}`,
		`{"KVSet":[{"Key":"\u00ff\ufffd","Value":1}],"KVGet":"\u00ff\ufffd"}`,
		"{\"KVSet\":[{\"Key\":\"\xff\",\"Value\":\"\xfe\"}]}",
		`{"KVGet":[{"Key":"a"},"b",{"key":"c"}]}`, `{"KVGet":[null]}`, `{"KVGet":[{"Key":"a","X":1}]}`,
		`{"Atomic":{"Key":"c","Add":-9223372036854775808}}`, `{"Atomic":[{"Key":"c","Set":1,"IfEq":0},{"Key":"c"}]}`,
		`{"Atomic":[{"Key":"c","Add":1,"Set":1}]}`,
		`{"Seq":{"Key":"s"}}`, `{"Seq":[{"Key":"s","Count":1000000}]}`, `{"Seq":[{"Key":"s","Count":0}]}`,
		`{"IdempotencyIDs":"x"}`, `{"IdempotencyIDs":["x","y","x"]}`,
		`{"KVGet":["a","b","c","d","e"]}`, `{"KVSet":[{"Key":"123456789","Value":1}]}`,
		`{"Bogus":1}`, `{"KVSet":[{"Key":"a","Value":1,"Bogus":1}]}`,
	} {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, lim := range []Limits{DefaultLimits(), tightLimits} {
			req, err := lim.decodeRequest(body)
			if err != nil {
				checkDecodeError(t, body, err)
				continue
			}
			checkRequest(t, &lim, body, req)
			again, err := lim.decodeRequest(reencodeRequest(t, req))
			if err != nil {
				t.Fatalf("%q decoded to %+v, whose re-encoding fails: %v", body, req, err)
			}
			if a, b := normalize(t, req), normalize(t, again); !reflect.DeepEqual(a, b) {
				t.Fatalf("%q: round trip changed the request:\n%#v\n%#v", body, a, b)
			}
		}
	})
}

// checkRequest asserts that a decoded request is within lim and well formed.
func checkRequest(t *testing.T, lim *Limits, body []byte, r *engine.Request) {
	t.Helper()
	key := func(what, k string) {
		if k == "" || len(k) > lim.MaxKeyBytes {
			t.Fatalf("%q: %s %q (%d bytes) outside 1..%d", body, what, k, len(k), lim.MaxKeyBytes)
		}
	}
	if n := len(r.KVSet) + len(r.KVGet) + len(r.Atomic) + len(r.Seq) + len(r.IdempotencyIDs); n > lim.MaxOps {
		t.Fatalf("%q: %d ops over %d", body, n, lim.MaxOps)
	}
	if r.LockID != "" {
		key("LockID", r.LockID)
		if r.LockDurMs <= 0 || r.LockDurMs > lim.MaxLockDur.Milliseconds() {
			t.Fatalf("%q: LockDurMs %d", body, r.LockDurMs)
		}
		if r.LockWaitMs < 0 || r.LockWaitMs > lim.MaxLockWait.Milliseconds() {
			t.Fatalf("%q: LockWaitMs %d", body, r.LockWaitMs)
		}
	} else if r.LockDurMs != 0 || r.LockWaitMs != 0 {
		t.Fatalf("%q: durations without LockID", body)
	}
	if r.UnlockID != "" {
		key("UnlockID", r.UnlockID)
		if r.Unlock == 0 {
			t.Fatalf("%q: UnlockID without a handle", body)
		}
	} else if r.Unlock != 0 {
		t.Fatalf("%q: a handle without UnlockID", body)
	}
	for _, s := range r.KVSet {
		key("KVSet key", s.Key)
		if s.Delete != (s.Value == nil) {
			t.Fatalf("%q: KVSet %+v: a delete carries no value and a set carries one", body, s)
		}
		if !s.Delete {
			if !json.Valid(s.Value) {
				t.Fatalf("%q: stored value %q is not JSON", body, s.Value)
			}
			if !bytes.Contains(body, s.Value) {
				t.Fatalf("%q: stored value %q is not byte-exact", body, s.Value)
			}
		}
	}
	for _, k := range r.KVGet {
		key("KVGet key", k)
	}
	for _, a := range r.Atomic {
		key("Atomic key", a.Key)
		if a.Add != nil && a.Set != nil {
			t.Fatalf("%q: Add and Set", body)
		}
	}
	for _, s := range r.Seq {
		key("Seq key", s.Key)
		if s.Count < 1 || s.Count > lim.MaxSeqCount {
			t.Fatalf("%q: Seq count %d", body, s.Count)
		}
	}
	for _, id := range r.IdempotencyIDs {
		key("idempotency id", id)
	}
}

// reencodeRequest writes r as a /db body with encoding/json, in the
// canonical shape (arrays, milliseconds, numeric handle).
func reencodeRequest(t *testing.T, r *engine.Request) []byte {
	type kv struct {
		Key    string
		Value  json.RawMessage `json:",omitempty"`
		Delete bool            `json:",omitempty"`
	}
	type atomic struct {
		Key            string
		Add, Set, IfEq *int64 `json:",omitempty"`
	}
	type seq struct {
		Key   string
		Count uint64
	}
	var w struct {
		LockID         string   `json:",omitempty"`
		LockDurMs      *int64   `json:",omitempty"`
		LockWaitMs     *int64   `json:",omitempty"`
		UnlockID       string   `json:",omitempty"`
		Unlock         uint64   `json:",omitempty"`
		KVSet          []kv     `json:",omitempty"`
		KVGet          []string `json:",omitempty"`
		Atomic         []atomic `json:",omitempty"`
		Seq            []seq    `json:",omitempty"`
		IdempotencyIDs []string `json:",omitempty"`
	}
	if r.LockID != "" {
		w.LockID, w.LockDurMs, w.LockWaitMs = r.LockID, &r.LockDurMs, &r.LockWaitMs
	}
	w.UnlockID, w.Unlock = r.UnlockID, r.Unlock
	for _, s := range r.KVSet {
		w.KVSet = append(w.KVSet, kv{Key: s.Key, Value: s.Value, Delete: s.Delete})
	}
	w.KVGet = r.KVGet
	for _, a := range r.Atomic {
		w.Atomic = append(w.Atomic, atomic{Key: a.Key, Add: a.Add, Set: a.Set, IfEq: a.IfEq})
	}
	for _, s := range r.Seq {
		w.Seq = append(w.Seq, seq(s))
	}
	w.IdempotencyIDs = r.IdempotencyIDs
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&w); err != nil {
		t.Fatalf("encode %+v: %v", r, err)
	}
	return buf.Bytes()
}

// normalize makes two requests comparable: empty lists as nil, pointers
// as values, stored values compacted.
func normalize(t *testing.T, r *engine.Request) any {
	type atomic struct {
		Key                   string
		HasAdd, HasSet, HasIf bool
		Add, Set, IfEq        int64
	}
	deref := func(p *int64) (bool, int64) {
		if p == nil {
			return false, 0
		}
		return true, *p
	}
	n := struct {
		LockID                string
		LockDurMs, LockWaitMs int64
		UnlockID              string
		Unlock                uint64
		KVSet                 []engine.KVSet
		KVGet, Idem           []string
		Atomic                []atomic
		Seq                   []engine.SeqOp
	}{LockID: r.LockID, LockDurMs: r.LockDurMs, LockWaitMs: r.LockWaitMs, UnlockID: r.UnlockID, Unlock: r.Unlock, Seq: r.Seq}
	for _, s := range r.KVSet {
		if s.Value != nil {
			var c bytes.Buffer
			if err := json.Compact(&c, s.Value); err != nil {
				t.Fatalf("compact %q: %v", s.Value, err)
			}
			s.Value = c.Bytes()
		}
		n.KVSet = append(n.KVSet, s)
	}
	if len(r.KVGet) > 0 {
		n.KVGet = r.KVGet
	}
	if len(r.IdempotencyIDs) > 0 {
		n.Idem = r.IdempotencyIDs
	}
	for _, a := range r.Atomic {
		x := atomic{Key: a.Key}
		x.HasAdd, x.Add = deref(a.Add)
		x.HasSet, x.Set = deref(a.Set)
		x.HasIf, x.IfEq = deref(a.IfEq)
		n.Atomic = append(n.Atomic, x)
	}
	if len(n.Seq) == 0 {
		n.Seq = nil
	}
	return n
}

func FuzzDecodeWatch(f *testing.F) {
	for _, b := range docBodies(f) {
		f.Add([]byte(b))
	}
	for _, b := range []string{
		``, `{}`, `null`, `{"ID":"k"}`, `{"Key":"k","Version":3}`, `{"ID":"k","Key":"k"}`,
		`{"ID":"k","Version":18446744073709551615,"Timeout":0}`, `{"ID":"k","Version":-1}`,
		`{"ID":"k","Timeout":1e9}`, `{"ID":"k","Timeout":1e300}`, `{"ID":"k","TimeoutMs":3000}`,
		`{"ID":"k","Timeout":-1}`, `{"ID":"k","Timeout":0.0004}`, `{"ID":"k","Timeout":1,"TimeoutMs":1}`,
		`{"id":"k","VERSION":1,"timeoutms":5}`, `{"ID":""}`, `{"ID":"123456789"}`, `{"ID":"k","X":1}`,
		"{\"ID\":\"\xff\"}",
	} {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, lim := range []Limits{DefaultLimits(), tightLimits} {
			w, err := lim.decodeWatch(body)
			if err != nil {
				checkDecodeError(t, body, err)
				continue
			}
			if w.key == "" || len(w.key) > lim.MaxKeyBytes {
				t.Fatalf("%q: key %q outside 1..%d bytes", body, w.key, lim.MaxKeyBytes)
			}
			if w.timeout < 0 || w.timeout > lim.MaxWatchTimeout {
				t.Fatalf("%q: timeout %v outside 0..%v", body, w.timeout, lim.MaxWatchTimeout)
			}
			if w.timeout%time.Millisecond != 0 {
				t.Fatalf("%q: timeout %v is not whole milliseconds", body, w.timeout)
			}
			again, err := json.Marshal(struct {
				ID        string
				Version   uint64
				TimeoutMs int64
			}{w.key, w.version, w.timeout.Milliseconds()})
			if err != nil {
				t.Fatal(err)
			}
			w2, err := lim.decodeWatch(again)
			if err != nil {
				t.Fatalf("%q decoded to %+v, whose re-encoding %s fails: %v", body, w, again, err)
			}
			if *w2 != *w {
				t.Fatalf("%q: round trip changed the watch: %+v -> %+v", body, *w, *w2)
			}
		}
	})
}
