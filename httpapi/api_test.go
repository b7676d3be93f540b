package httpapi_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestKVByteExactAndVersions: values come back byte for byte as sent; a
// missing key is version 0 and null; every KV-writing request bumps the
// namespace's revision once and all its keys share it; a delete is version
// 0 again.
func TestKVByteExactAndVersions(t *testing.T) {
	ts := newTestServer(t)
	const p = "/db/kv"

	d := ok(t, ts.post(t, p, `{"KVGet":["a","b"]}`))
	if len(d.KV) != 2 || d.KV[0].Version != 0 || string(d.KV[0].Value) != "null" || d.KV[1].Key != "b" || d.KV[1].Version != 0 {
		t.Fatalf("missing keys: %+v", d.KV)
	}
	rawIs(t, ts.post(t, p, `{"KVGet":["a"]}`), `{"KV":[{"Key":"a","Value":null,"Version":0}]}`)

	// Byte-exact: spacing, exponent, trailing zeros and escapes survive.
	values := []string{
		`{"a": 1.50e2, "b":[ ]}`,
		`"caf\u00e9 \"quoted\" \/"`,
		`1.0`,
		`-0`,
		`[1,  2 ,3]`,
		`true`,
		`"x<y>&z"`,
		`{"deep":{"deeper":[{"x": null}]}}`,
	}
	for i, v := range values {
		key := fmt.Sprintf("v%d", i)
		r := ts.post(t, p, `{"KVSet":[{"Key":"`+key+`","Value":`+v+`}],"KVGet":["`+key+`"]}`)
		rawIs(t, r, fmt.Sprintf(`{"KV":[{"Key":%q,"Value":%s,"Version":%d}]}`, key, v, i+1))
		// And read back on its own, through /req.
		rawIs(t, ts.post(t, "/req/kv", `{"KVGet":["`+key+`"]}`), fmt.Sprintf(`{"KV":[{"Key":%q,"Value":%s,"Version":%d}]}`, key, v, i+1))
	}
	rev := uint64(len(values))

	// One request, two keys, one revision.
	rawIs(t, ts.post(t, p, `{"KVSet":[{"Key":"x","Value":1},{"Key":"y","Value":2}]}`), `{}`)
	rev++
	d = ok(t, ts.post(t, p, `{"KVGet":["x","y","v0"]}`))
	if d.KV[0].Version != rev || d.KV[1].Version != rev || d.KV[2].Version != 1 {
		t.Fatalf("want x and y at %d and v0 still at 1: %+v", rev, d.KV)
	}
	// A request that only reads, counts or locks does not bump it.
	ok(t, ts.post(t, p, `{"Atomic":[{"Key":"c","Add":1}],"Seq":[{"Key":"s"}],"KVGet":["x"]}`))
	ok(t, ts.post(t, p, `{"LockID":"l","LockDur":1}`))

	// Delete: version 0 and null, and the delete itself bumps the revision.
	rawIs(t, ts.post(t, p, `{"KVSet":[{"Key":"x","Delete":true}],"KVGet":["x","y"]}`),
		fmt.Sprintf(`{"KV":[{"Key":"x","Value":null,"Version":0},{"Key":"y","Value":2,"Version":%d}]}`, rev))
	rev++
	rawIs(t, ts.post(t, p, `{"KVSet":{"Key":"x","Value":"back"},"KVGet":"x"}`), fmt.Sprintf(`{"KV":[{"Key":"x","Value":"back","Version":%d}]}`, rev+1))
	rev++

	// Later sets in one request win; KVGet sees the request's own writes;
	// the seed's {"Key": ...} shape of KVGet items works.
	rawIs(t, ts.post(t, p, `{"KVSet":[{"Key":"z","Value":1},{"Key":"z","Value":2}],"KVGet":[{"Key":"z"}]}`),
		fmt.Sprintf(`{"KV":[{"Key":"z","Value":2,"Version":%d}]}`, rev+1))
	rev++

	// A stored JSON null is a value (version > 0), unlike a missing key.
	rawIs(t, ts.post(t, p, `{"KVSet":[{"Key":"n","Value":null}],"KVGet":["n"]}`), fmt.Sprintf(`{"KV":[{"Key":"n","Value":null,"Version":%d}]}`, rev+1))

	// A value near the body limit is stored whole.
	big := `"` + strings.Repeat("é", 200_000) + `"`
	d = ok(t, ts.post(t, p, `{"KVSet":[{"Key":"big","Value":`+big+`}],"KVGet":["big"]}`))
	if string(d.KV[0].Value) != big {
		t.Fatalf("a %d-byte value came back as %d bytes", len(big), len(d.KV[0].Value))
	}
}

// TestAtomic: Add, read, Set with IfEq, failed IfEq (409, nothing
// applied), IfEq seeing earlier ops of the same request, overflow.
func TestAtomic(t *testing.T) {
	ts := newTestServer(t)
	const p = "/db/atomic"
	rawIs(t, ts.post(t, p, `{"Atomic":[{"Key":"c","Add":5}]}`), `{"Atomic":[{"Key":"c","Value":5}]}`)
	rawIs(t, ts.post(t, p, `{"Atomic":[{"Key":"c","Add":-7}]}`), `{"Atomic":[{"Key":"c","Value":-2}]}`)
	rawIs(t, ts.post(t, p, `{"Atomic":[{"Key":"c"}]}`), `{"Atomic":[{"Key":"c","Value":-2}]}`)
	rawIs(t, ts.post(t, p, `{"Atomic":[{"Key":"missing"}]}`), `{"Atomic":[{"Key":"missing","Value":0}]}`)
	rawIs(t, ts.post(t, p, `{"Atomic":[{"Key":"c","Set":10,"IfEq":-2}]}`), `{"Atomic":[{"Key":"c","Value":10}]}`)

	msg := wantErr(t, ts.post(t, p, `{"Atomic":[{"Key":"c","Set":99,"IfEq":-2}]}`), http.StatusConflict, "precondition_failed")
	if !strings.Contains(msg, `"c"`) {
		t.Errorf("message should name the counter: %s", msg)
	}
	wantErr(t, ts.post(t, p, `{"Atomic":[{"Key":"c","Add":1,"IfEq":0}]}`), http.StatusConflict, "precondition_failed")
	rawIs(t, ts.post(t, p, `{"Atomic":{"Key":"c","Add":1,"IfEq":10}}`), `{"Atomic":[{"Key":"c","Value":11}]}`)

	// IfEq sees the value left by the request's earlier ops.
	rawIs(t, ts.post(t, p, `{"Atomic":[{"Key":"c","Add":1},{"Key":"c","Set":0,"IfEq":12},{"Key":"d","Add":3}]}`),
		`{"Atomic":[{"Key":"c","Value":12},{"Key":"c","Value":0},{"Key":"d","Value":3}]}`)
	// The second op fails: the first is rolled back too.
	wantErr(t, ts.post(t, p, `{"Atomic":[{"Key":"c","Add":100},{"Key":"d","Set":0,"IfEq":4}]}`), http.StatusConflict, "precondition_failed")
	rawIs(t, ts.post(t, p, `{"Atomic":[{"Key":"c"},{"Key":"d"}]}`), `{"Atomic":[{"Key":"c","Value":0},{"Key":"d","Value":3}]}`)

	// Overflow is refused, not wrapped.
	rawIs(t, ts.post(t, p, `{"Atomic":[{"Key":"big","Set":9223372036854775807}]}`), `{"Atomic":[{"Key":"big","Value":9223372036854775807}]}`)
	wantErr(t, ts.post(t, p, `{"Atomic":[{"Key":"big","Add":1}]}`), http.StatusConflict, "out_of_range")
	rawIs(t, ts.post(t, p, `{"Atomic":[{"Key":"big","Add":-1}]}`), `{"Atomic":[{"Key":"big","Value":9223372036854775806}]}`)
}

// TestSeqNeverRepeats: ranges are disjoint, increasing and start at 1.
func TestSeqNeverRepeats(t *testing.T) {
	ts := newTestServer(t)
	const p = "/db/seq"
	rawIs(t, ts.post(t, p, `{"Seq":[{"Key":"s"}]}`), `{"Seq":[{"Key":"s","First":1,"Last":1}]}`)
	rawIs(t, ts.post(t, p, `{"Seq":{"Key":"s","Count":5}}`), `{"Seq":[{"Key":"s","First":2,"Last":6}]}`)
	rawIs(t, ts.post(t, p, `{"Seq":[{"Key":"s","Count":2},{"Key":"s","Count":3},{"Key":"t"}]}`),
		`{"Seq":[{"Key":"s","First":7,"Last":8},{"Key":"s","First":9,"Last":11},{"Key":"t","First":1,"Last":1}]}`)
	// A failed request hands out nothing.
	wantErr(t, ts.post(t, p, `{"Seq":[{"Key":"s","Count":10}],"Atomic":[{"Key":"c","Set":1,"IfEq":5}]}`), http.StatusConflict, "precondition_failed")

	seen := map[uint64]bool{}
	next := uint64(12)
	for i := 0; i < 50; i++ {
		count := uint64(i%7 + 1)
		d := ok(t, ts.post(t, p, fmt.Sprintf(`{"Seq":[{"Key":"s","Count":%d}]}`, count)))
		s := d.Seq[0]
		if s.First != next || s.Last != s.First+count-1 {
			t.Fatalf("want %d..%d, got %+v", next, next+count-1, s)
		}
		for id := s.First; id <= s.Last; id++ {
			if seen[id] {
				t.Fatalf("id %d handed out twice", id)
			}
			seen[id] = true
		}
		next = s.Last + 1
	}
	rawIs(t, ts.post(t, p, `{"Seq":[{"Key":"max","Count":1000000}]}`), `{"Seq":[{"Key":"max","First":1,"Last":1000000}]}`)
}

// TestIdempotency: a repeated id is 409 duplicate_request and applies
// nothing; ids are per namespace; a request that failed did not use its id.
func TestIdempotency(t *testing.T) {
	ts := newTestServer(t)
	const p = "/db/idem"
	body := `{"IdempotencyIDs":["op-1"],"KVSet":[{"Key":"k","Value":1}],"Atomic":[{"Key":"c","Add":1}],"Seq":[{"Key":"s"}]}`
	rawIs(t, ts.post(t, p, body), `{"Atomic":[{"Key":"c","Value":1}],"Seq":[{"Key":"s","First":1,"Last":1}]}`)
	for i := 0; i < 3; i++ {
		msg := wantErr(t, ts.post(t, p, body), http.StatusConflict, "duplicate_request")
		if !strings.Contains(msg, "op-1") {
			t.Errorf("message should name the id: %s", msg)
		}
	}
	// Any one repeated id among several rejects the whole request.
	wantErr(t, ts.post(t, p, `{"IdempotencyIDs":["new","op-1"],"Atomic":[{"Key":"c","Add":1}]}`), http.StatusConflict, "duplicate_request")
	// Nothing of the repeats applied, and "new" was not used up.
	rawIs(t, ts.post(t, p, `{"KVGet":["k"],"Atomic":[{"Key":"c"}],"Seq":[{"Key":"s"}]}`),
		`{"KV":[{"Key":"k","Value":1,"Version":1}],"Atomic":[{"Key":"c","Value":1}],"Seq":[{"Key":"s","First":2,"Last":2}]}`)
	rawIs(t, ts.post(t, p, `{"IdempotencyIDs":"new","Atomic":[{"Key":"c","Add":1}]}`), `{"Atomic":[{"Key":"c","Value":2}]}`)

	// A request that failed for another reason did not consume its id.
	wantErr(t, ts.post(t, p, `{"IdempotencyIDs":["op-2"],"Atomic":[{"Key":"c","Set":0,"IfEq":-1}]}`), http.StatusConflict, "precondition_failed")
	rawIs(t, ts.post(t, p, `{"IdempotencyIDs":["op-2"],"Atomic":[{"Key":"c","Set":0,"IfEq":2}]}`), `{"Atomic":[{"Key":"c","Value":0}]}`)

	// The same id in another namespace is another id.
	rawIs(t, ts.post(t, "/db/idem2", body), `{"Atomic":[{"Key":"c","Value":1}],"Seq":[{"Key":"s","First":1,"Last":1}]}`)
}

// TestLockUnlockExtend: acquire, extend (same handle, new deadline),
// unlock with the handle as a number and as a numeric string, TillMs and
// Till from LockDur / LockDurMs.
func TestLockUnlockExtend(t *testing.T) {
	ts := newTestServer(t)
	const p = "/db/locks"

	before := time.Now().UnixMilli()
	d := ok(t, ts.post(t, p, `{"LockID":"A","LockDur":30,"LockWait":30}`))
	after := time.Now().UnixMilli()
	if d.Lock == 0 || d.TillMs < before+30_000 || d.TillMs > after+30_000 || d.Till != d.TillMs/1000 {
		t.Fatalf("acquire: %+v (now in [%d, %d])", d, before, after)
	}
	h := d.Lock

	// Held: another acquire without LockWait fails at once.
	msg := wantErr(t, ts.post(t, p, `{"LockID":"A","LockDur":1}`), http.StatusConflict, "lock_timeout")
	if !strings.Contains(msg, `"A"`) {
		t.Errorf("message should name the lock: %s", msg)
	}

	// Extend with LockDurMs: same handle, deadline from now.
	before = time.Now().UnixMilli()
	d = ok(t, ts.post(t, p, fmt.Sprintf(`{"LockID":"A","UnlockID":"A","Unlock":%d,"LockDurMs":90500}`, h)))
	after = time.Now().UnixMilli()
	if d.Lock != h || d.TillMs < before+90_500 || d.TillMs > after+90_500 || d.Till != d.TillMs/1000 {
		t.Fatalf("extend: %+v, want handle %d and TillMs now+90500 (now in [%d, %d])", d, h, before, after)
	}
	// Extending shorter works too (the deadline is LockDur from now).
	d = ok(t, ts.post(t, p, fmt.Sprintf(`{"LockID":"A","UnlockID":"A","Unlock":"%d","LockDur":0.25,"KVSet":[{"Key":"guarded","Value":1}]}`, h)))
	if d.Lock != h {
		t.Fatalf("extend with a string handle: %+v", d)
	}
	// Fractional seconds count to the millisecond.
	before = time.Now().UnixMilli()
	d = ok(t, ts.post(t, p, fmt.Sprintf(`{"LockID":"A","UnlockID":"A","Unlock":%d,"LockDur":60.25}`, h)))
	after = time.Now().UnixMilli()
	if d.Lock != h || d.TillMs < before+60_250 || d.TillMs > after+60_250 {
		t.Fatalf("extend by 60.25 s: %+v (now in [%d, %d])", d, before, after)
	}

	// Unlock with a numeric string; then the handle is gone.
	rawIs(t, ts.post(t, p, fmt.Sprintf(`{"UnlockID":"A","Unlock":"%d"}`, h)), `{}`)
	wantErr(t, ts.post(t, p, fmt.Sprintf(`{"UnlockID":"A","Unlock":%d}`, h)), http.StatusConflict, "lock_lost")
	// Extending a lock you no longer hold is lock_lost, not a new grant.
	wantErr(t, ts.post(t, p, fmt.Sprintf(`{"LockID":"A","UnlockID":"A","Unlock":%d,"LockDur":5}`, h)), http.StatusConflict, "lock_lost")

	// Free again: a new, larger handle; unlock with a plain number.
	d = ok(t, ts.post(t, p, `{"LockID":"A","LockDurMs":30000}`))
	if d.Lock <= h {
		t.Fatalf("handle %d after %d", d.Lock, h)
	}
	rawIs(t, ts.post(t, p, fmt.Sprintf(`{"UnlockID":"A","Unlock":%d}`, d.Lock)), `{}`)

	// Unlock with reads: the reply has the reads only.
	d = ok(t, ts.post(t, p, `{"LockID":"B","LockDur":10}`))
	rawIs(t, ts.post(t, p, fmt.Sprintf(`{"UnlockID":"B","Unlock":%d,"KVGet":["guarded"]}`, d.Lock)), `{"KV":[{"Key":"guarded","Value":1,"Version":1}]}`)
	// Handing over one lock for another in one request.
	d = ok(t, ts.post(t, p, `{"LockID":"C","LockDur":10}`))
	d2 := ok(t, ts.post(t, p, fmt.Sprintf(`{"UnlockID":"C","Unlock":%d,"LockID":"D","LockDur":10}`, d.Lock)))
	if d2.Lock <= d.Lock {
		t.Fatalf("handle %d after %d", d2.Lock, d.Lock)
	}
	ok(t, ts.post(t, p, `{"LockID":"C","LockDur":10}`)) // C was released
}

// TestUnlockErrors: no handle is 400 handle_required; a wrong, stale or
// expired handle is 409 lock_lost and none of the request's other ops
// apply.
func TestUnlockErrors(t *testing.T) {
	ts := newTestServer(t)
	const p = "/db/unl"
	msg := wantErr(t, ts.post(t, p, `{"UnlockID":"A"}`), http.StatusBadRequest, "handle_required")
	if !strings.Contains(msg, "Unlock") {
		t.Errorf("message should say what is missing: %s", msg)
	}
	wantErr(t, ts.post(t, p, `{"UnlockID":"A","Unlock":null}`), http.StatusBadRequest, "handle_required")
	wantErr(t, ts.post(t, p, `{"Unlock":1}`), http.StatusBadRequest, "invalid_request")
	for _, bad := range []string{`0`, `"0"`, `-1`, `1.5`, `"abc"`, `""`, `true`, `[1]`, `18446744073709551616`} {
		wantErr(t, ts.post(t, p, `{"UnlockID":"A","Unlock":`+bad+`}`), http.StatusBadRequest, "bad_json")
	}

	held := ok(t, ts.post(t, p, `{"LockID":"A","LockDur":60}`))
	ok(t, ts.post(t, p, `{"KVSet":[{"Key":"k","Value":"before"}]}`))
	guarded := `"IdempotencyIDs":["i1"],"KVSet":[{"Key":"k","Value":"after"}],"Atomic":[{"Key":"c","Add":1}],"Seq":[{"Key":"s"}]`
	// A lock never granted, a wrong handle, a lock that does not exist.
	for _, u := range []string{
		fmt.Sprintf(`"UnlockID":"A","Unlock":%d`, held.Lock+1000),
		fmt.Sprintf(`"UnlockID":"A","Unlock":"%d"`, held.Lock-1+2000),
		fmt.Sprintf(`"UnlockID":"nope","Unlock":%d`, held.Lock),
	} {
		msg := wantErr(t, ts.post(t, p, `{`+u+`,`+guarded+`}`), http.StatusConflict, "lock_lost")
		if !strings.Contains(msg, "nothing") {
			t.Errorf("message should say nothing applied: %s", msg)
		}
	}
	// Nothing applied: k, c, s and i1 untouched; A still held by its handle.
	rawIs(t, ts.post(t, p, `{"KVGet":["k"],"Atomic":[{"Key":"c"}]}`), `{"KV":[{"Key":"k","Value":"before","Version":1}],"Atomic":[{"Key":"c","Value":0}]}`)
	wantErr(t, ts.post(t, p, `{"LockID":"A","LockDur":1}`), http.StatusConflict, "lock_timeout")

	// Expired: shorten the lock to 50 ms, wait past it, and the handle is lost.
	short := ok(t, ts.post(t, p, fmt.Sprintf(`{"LockID":"A","UnlockID":"A","Unlock":%d,"LockDurMs":50}`, held.Lock)))
	waitUntil(t, "the lock's deadline passes", func() bool { return time.Now().UnixMilli() > short.TillMs })
	wantErr(t, ts.post(t, p, fmt.Sprintf(`{"UnlockID":"A","Unlock":%d,%s}`, held.Lock, guarded)), http.StatusConflict, "lock_lost")
	rawIs(t, ts.post(t, p, `{"KVGet":["k"],"Atomic":[{"Key":"c"}],"Seq":[{"Key":"s"}]}`),
		`{"KV":[{"Key":"k","Value":"before","Version":1}],"Atomic":[{"Key":"c","Value":0}],"Seq":[{"Key":"s","First":1,"Last":1}]}`)
	// The id i1 was never used: it works now, with the ops it guards.
	ok(t, ts.post(t, p, `{"IdempotencyIDs":["i1"],"Atomic":[{"Key":"c","Add":1}]}`))

	// Taken by another after expiry: the old handle must not release it.
	next := ok(t, ts.post(t, p, `{"LockID":"A","LockDur":60}`))
	if next.Lock <= held.Lock {
		t.Fatalf("handle %d after %d", next.Lock, held.Lock)
	}
	wantErr(t, ts.post(t, p, fmt.Sprintf(`{"UnlockID":"A","Unlock":%d}`, held.Lock)), http.StatusConflict, "lock_lost")
	wantErr(t, ts.post(t, p, `{"LockID":"A","LockDur":1}`), http.StatusConflict, "lock_timeout")
	rawIs(t, ts.post(t, p, fmt.Sprintf(`{"UnlockID":"A","Unlock":%d}`, next.Lock)), `{}`)
}

// TestCaseInsensitiveFields: field names match in any case, in requests
// and in nested objects, on /db and /watch.
func TestCaseInsensitiveFields(t *testing.T) {
	ts := newTestServer(t)
	const p = "/db/case"
	d := ok(t, ts.post(t, p, `{"lockid":"L","LOCKDUR":5,"lockWait":1}`))
	rawIs(t, ts.post(t, p, fmt.Sprintf(`{"unlockid":"L","UNLOCK":%d}`, d.Lock)), `{}`)
	d = ok(t, ts.post(t, p, `{"LOCKID":"L","lockdurms":5000,"LockWaitMS":0}`))
	if d.Lock == 0 {
		t.Fatal("no handle")
	}
	rawIs(t, ts.post(t, p, `{"kvset":[{"key":"a","VALUE":{"X":1}}],"KVGET":["a"],"atomic":[{"KEY":"c","add":2}],"seq":[{"key":"s","count":2}],"idempotencyids":["x"]}`),
		`{"KV":[{"Key":"a","Value":{"X":1},"Version":1}],"Atomic":[{"Key":"c","Value":2}],"Seq":[{"Key":"s","First":1,"Last":2}]}`)
	rawIs(t, ts.post(t, p, `{"ATOMIC":[{"key":"c","set":7,"ifeq":2}],"kvset":[{"KEY":"a","delete":true}]}`), `{"Atomic":[{"Key":"c","Value":7}]}`)
	rawIs(t, ts.post(t, p, `{"kvget":[{"KEY":"a"}]}`), `{"KV":[{"Key":"a","Value":null,"Version":0}]}`)
	rawIs(t, ts.post(t, "/watch/case", `{"id":"a","VERSION":5,"timeoutms":1}`), `{"Key":"a","Value":null,"Version":0}`)
	rawIs(t, ts.post(t, "/watch/case", `{"KEY":"a","version":0,"TIMEOUT":0.001}`), `{"Key":"a","Value":null,"Version":0}`)
	// Keys are case-sensitive: only field names are not.
	rawIs(t, ts.post(t, p, `{"KVSet":[{"Key":"K","Value":1}],"KVGet":["k","K"]}`), `{"KV":[{"Key":"k","Value":null,"Version":0},{"Key":"K","Value":1,"Version":3}]}`)
}

// TestReqRouteSameAsDB: /req/{env} is the same handler and the same
// namespace as /db/{env}.
func TestReqRouteSameAsDB(t *testing.T) {
	ts := newTestServer(t)
	ok(t, ts.post(t, "/db/same", `{"KVSet":[{"Key":"k","Value":"v"}],"Atomic":[{"Key":"c","Add":1}]}`))
	rawIs(t, ts.post(t, "/req/same", `{"KVGet":["k"],"Atomic":[{"Key":"c","Add":1}]}`), `{"KV":[{"Key":"k","Value":"v","Version":1}],"Atomic":[{"Key":"c","Value":2}]}`)
	d := ok(t, ts.post(t, "/req/same", `{"LockID":"L","LockDur":10}`))
	wantErr(t, ts.post(t, "/db/same", `{"LockID":"L","LockDur":10}`), http.StatusConflict, "lock_timeout")
	rawIs(t, ts.post(t, "/db/same", fmt.Sprintf(`{"UnlockID":"L","Unlock":%d}`, d.Lock)), `{}`)
	wantErr(t, ts.post(t, "/req/same", `{"Bogus":1}`), http.StatusBadRequest, "unknown_field")
	wantErr(t, ts.post(t, "/req/same", `{"UnlockID":"L"}`), http.StatusBadRequest, "handle_required")
}

// TestRollback: a failing op anywhere in a request applies none of it —
// not its writes, counters, sequence ids, idempotency ids, unlock or lock,
// and the namespace revision does not move.
func TestRollback(t *testing.T) {
	ts := newTestServer(t)
	const p = "/db/rb"
	ok(t, ts.post(t, p, `{"KVSet":[{"Key":"a","Value":"a1"}],"Atomic":[{"Key":"c","Set":1}]}`)) // revision 1
	lock := ok(t, ts.post(t, p, `{"LockID":"L","LockDur":60}`))

	state := `{"KVGet":["a","b"],"Atomic":[{"Key":"c"},{"Key":"d"}],"Seq":[{"Key":"s","Count":1}]}`
	rawIs(t, ts.post(t, p, state), `{"KV":[{"Key":"a","Value":"a1","Version":1},{"Key":"b","Value":null,"Version":0}],"Atomic":[{"Key":"c","Value":1},{"Key":"d","Value":0}],"Seq":[{"Key":"s","First":1,"Last":1}]}`)

	failing := []struct {
		name, body, code string
	}{
		{"failed IfEq after KVSet", `{"KVSet":[{"Key":"a","Value":"a2"},{"Key":"b","Value":"b2"}],"Atomic":[{"Key":"d","Add":5},{"Key":"c","Set":9,"IfEq":2}],"Seq":[{"Key":"s","Count":3}],"IdempotencyIDs":["rb1"]}`, "precondition_failed"},
		{"lock_lost unlock with writes", fmt.Sprintf(`{"UnlockID":"L","Unlock":%d,"KVSet":[{"Key":"b","Value":"b3"}],"Atomic":[{"Key":"d","Add":1}],"Seq":[{"Key":"s"}],"IdempotencyIDs":["rb2"]}`, lock.Lock+1), "lock_lost"},
		{"overflow after KVSet", `{"KVSet":[{"Key":"a","Delete":true}],"Atomic":[{"Key":"d","Add":1},{"Key":"c","Add":9223372036854775807}],"IdempotencyIDs":["rb3"]}`, "out_of_range"},
		{"held lock without wait, after writes", `{"KVSet":[{"Key":"b","Value":1}],"Atomic":[{"Key":"d","Add":1}],"Seq":[{"Key":"s"}],"LockID":"L","LockDur":5,"IdempotencyIDs":["rb4"]}`, "lock_timeout"},
		{"duplicate id after writes", `{"KVSet":[{"Key":"b","Value":1}],"Atomic":[{"Key":"d","Add":1}],"Seq":[{"Key":"s"}],"IdempotencyIDs":["rb5","used"]}`, "duplicate_request"},
	}
	ok(t, ts.post(t, "/db/rb", `{"IdempotencyIDs":["used"]}`))
	for _, f := range failing {
		t.Log(f.name)
		wantErr(t, ts.post(t, p, f.body), http.StatusConflict, f.code)
		// State as before, except the Seq reads of this loop's probes.
		rawIs(t, ts.post(t, p, `{"KVGet":["a","b"],"Atomic":[{"Key":"c"},{"Key":"d"}]}`),
			`{"KV":[{"Key":"a","Value":"a1","Version":1},{"Key":"b","Value":null,"Version":0}],"Atomic":[{"Key":"c","Value":1},{"Key":"d","Value":0}]}`)
	}
	// Sequence s advanced only by the probe at the top.
	rawIs(t, ts.post(t, p, `{"Seq":[{"Key":"s"}]}`), `{"Seq":[{"Key":"s","First":2,"Last":2}]}`)
	// The revision did not move: the next write is version 2.
	rawIs(t, ts.post(t, p, `{"KVSet":[{"Key":"z","Value":0}],"KVGet":["z"]}`), `{"KV":[{"Key":"z","Value":0,"Version":2}]}`)
	// The lock was neither released nor re-granted; the idempotency ids of
	// the failed requests are unused.
	wantErr(t, ts.post(t, p, `{"LockID":"L","LockDur":5}`), http.StatusConflict, "lock_timeout")
	ok(t, ts.post(t, p, `{"IdempotencyIDs":["rb1","rb2","rb3","rb4","rb5"]}`))
	rawIs(t, ts.post(t, p, fmt.Sprintf(`{"UnlockID":"L","Unlock":%d}`, lock.Lock)), `{}`)
}

// TestNamespacesIndependent: the same key, lock, counter, sequence and
// idempotency id in two namespaces are different things, with their own
// revisions.
func TestNamespacesIndependent(t *testing.T) {
	ts := newTestServer(t)
	a, b := "/db/ns-a", "/db/ns.b:1"
	ok(t, ts.post(t, a, `{"KVSet":[{"Key":"k","Value":"A1"}]}`))
	ok(t, ts.post(t, a, `{"KVSet":[{"Key":"k","Value":"A2"}]}`))
	rawIs(t, ts.post(t, b, `{"KVGet":["k"]}`), `{"KV":[{"Key":"k","Value":null,"Version":0}]}`)
	rawIs(t, ts.post(t, b, `{"KVSet":[{"Key":"k","Value":"B1"}],"KVGet":["k"]}`), `{"KV":[{"Key":"k","Value":"B1","Version":1}]}`)
	rawIs(t, ts.post(t, a, `{"KVGet":["k"]}`), `{"KV":[{"Key":"k","Value":"A2","Version":2}]}`)

	la := ok(t, ts.post(t, a, `{"LockID":"L","LockDur":60}`))
	lb := ok(t, ts.post(t, b, `{"LockID":"L","LockDur":60}`))
	if la.Lock == lb.Lock {
		t.Fatalf("two holders share handle %d", la.Lock)
	}
	wantErr(t, ts.post(t, b, fmt.Sprintf(`{"UnlockID":"L","Unlock":%d}`, la.Lock)), http.StatusConflict, "lock_lost")
	rawIs(t, ts.post(t, a, fmt.Sprintf(`{"UnlockID":"L","Unlock":%d}`, la.Lock)), `{}`)
	wantErr(t, ts.post(t, b, `{"LockID":"L","LockDur":60}`), http.StatusConflict, "lock_timeout")

	rawIs(t, ts.post(t, a, `{"Atomic":[{"Key":"c","Add":5}],"Seq":[{"Key":"s","Count":3}],"IdempotencyIDs":["id"]}`), `{"Atomic":[{"Key":"c","Value":5}],"Seq":[{"Key":"s","First":1,"Last":3}]}`)
	rawIs(t, ts.post(t, b, `{"Atomic":[{"Key":"c","Add":1}],"Seq":[{"Key":"s"}],"IdempotencyIDs":["id"]}`), `{"Atomic":[{"Key":"c","Value":1}],"Seq":[{"Key":"s","First":1,"Last":1}]}`)
	wantErr(t, ts.post(t, a, `{"IdempotencyIDs":["id"]}`), http.StatusConflict, "duplicate_request")

	// Many namespaces (spread over the shards) keep their own revisions.
	for i := 0; i < 40; i++ {
		for j := 0; j <= i%3; j++ {
			ok(t, ts.post(t, fmt.Sprintf("/db/many-%d", i), `{"KVSet":[{"Key":"k","Value":1}]}`))
		}
	}
	for i := 0; i < 40; i++ {
		rawIs(t, ts.post(t, fmt.Sprintf("/db/many-%d", i), `{"KVGet":["k"]}`), fmt.Sprintf(`{"KV":[{"Key":"k","Value":1,"Version":%d}]}`, i%3+1))
	}
}

// TestMsFields: LockDurMs / LockWaitMs and the TillMs reply.
func TestMsFields(t *testing.T) {
	ts := newTestServer(t)
	const p = "/db/ms"
	before := time.Now().UnixMilli()
	d := ok(t, ts.post(t, p, `{"LockID":"L","LockDurMs":1234567,"LockWaitMs":10}`))
	after := time.Now().UnixMilli()
	if d.TillMs < before+1234567 || d.TillMs > after+1234567 || d.Till != d.TillMs/1000 {
		t.Fatalf("TillMs %d Till %d, want now+1234567 (now in [%d, %d])", d.TillMs, d.Till, before, after)
	}
	// Waiting in ms: a short LockWaitMs on a held lock times out.
	wantErr(t, ts.post(t, p, `{"LockID":"L","LockDurMs":1000,"LockWaitMs":30}`), http.StatusConflict, "lock_timeout")
	wantErr(t, ts.post(t, p, `{"LockID":"L","LockDur":1,"LockWait":0.03}`), http.StatusConflict, "lock_timeout")
	// The maxima are accepted.
	ok(t, ts.post(t, p, `{"LockID":"max","LockDur":86400,"LockWait":300}`))
	ok(t, ts.post(t, p, `{"LockID":"maxms","LockDurMs":86400000,"LockWaitMs":300000}`))
}
