package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/latchkv/latch/engine"
	"github.com/latchkv/latch/httpapi"
)

// TestRouteErrors: unknown routes are 404 not_found and other methods 405
// method_not_allowed, both with the JSON error body.
func TestRouteErrors(t *testing.T) {
	ts := newTestServer(t)
	for _, c := range []struct{ method, path string }{
		{"POST", "/"},
		{"GET", "/"},
		{"POST", "/nope"},
		{"POST", "/db"},
		{"POST", "/db/"},
		{"POST", "/db/a/b"},
		{"POST", "/watch"},
		{"POST", "/DB/x"},
	} {
		r, err := ts.send(context.Background(), c.method, c.path, `{}`)
		if err != nil {
			t.Fatal(err)
		}
		msg := wantErr(t, r, http.StatusNotFound, httpapi.CodeNotFound)
		if !strings.Contains(msg, "/db/{env}") {
			t.Errorf("%s %s: the 404 should name the routes: %s", c.method, c.path, msg)
		}
	}
	for _, c := range []struct{ method, path string }{
		{"GET", "/db/x"},
		{"PUT", "/db/x"},
		{"DELETE", "/req/x"},
		{"GET", "/watch/x"},
		{"PATCH", "/watch/x"},
	} {
		r, err := ts.send(context.Background(), c.method, c.path, "")
		if err != nil {
			t.Fatal(err)
		}
		wantErr(t, r, http.StatusMethodNotAllowed, httpapi.CodeMethodNotAllowed)
		if a := r.Header.Get("Allow"); a != "POST" {
			t.Errorf("%s %s: Allow %q, want POST", c.method, c.path, a)
		}
	}
}

// TestBodyTooLarge: a body over MaxBodyBytes is 413 body_too_large; one at
// the limit is decoded.
func TestBodyTooLarge(t *testing.T) {
	ts := newTestServer(t)
	max := int(httpapi.DefaultLimits().MaxBodyBytes)
	pad := func(n int) string {
		// {"KVSet":[{"Key":"k","Value":"xxxx"}]} padded to exactly n bytes.
		head, tail := `{"KVSet":[{"Key":"k","Value":"`, `"}]}`
		return head + strings.Repeat("x", n-len(head)-len(tail)) + tail
	}
	wantErr(t, ts.post(t, "/db/big", pad(max+1)), http.StatusRequestEntityTooLarge, httpapi.CodeBodyTooLarge)
	wantErr(t, ts.post(t, "/db/big", pad(4*max)), http.StatusRequestEntityTooLarge, httpapi.CodeBodyTooLarge)
	wantErr(t, ts.post(t, "/watch/big", `{"ID":"`+strings.Repeat("k", max)+`"}`), http.StatusRequestEntityTooLarge, httpapi.CodeBodyTooLarge)
	rawIs(t, ts.post(t, "/db/big", pad(max)), `{}`)
	d := ok(t, ts.post(t, "/db/big", `{"KVGet":["k"]}`))
	if len(d.KV[0].Value) != max-len(`{"KVSet":[{"Key":"k","Value":}]}`) {
		t.Fatalf("stored value is %d bytes", len(d.KV[0].Value))
	}
	// Nothing of the refused bodies applied.
	if d.KV[0].Version != 1 {
		t.Fatalf("version %d, want 1", d.KV[0].Version)
	}
}

// TestBadRequests: every 400 has its stable code and a message.
func TestBadRequests(t *testing.T) {
	ts := newTestServer(t)
	lim := httpapi.DefaultLimits()
	long := strings.Repeat("k", lim.MaxKeyBytes+1)
	okKey := strings.Repeat("k", lim.MaxKeyBytes)
	many := func(n int) string {
		keys := make([]string, n)
		for i := range keys {
			keys[i] = fmt.Sprintf(`"k%d"`, i)
		}
		return strings.Join(keys, ",")
	}
	cases := []struct {
		path, body, code string
	}{
		// Malformed.
		{"/db/x", ``, httpapi.CodeBadJSON},
		{"/db/x", `{`, httpapi.CodeBadJSON},
		{"/db/x", `not json`, httpapi.CodeBadJSON},
		{"/db/x", `{"KVGet":["a"]`, httpapi.CodeBadJSON},
		{"/db/x", `{}{}`, httpapi.CodeBadJSON},
		{"/db/x", `{} x`, httpapi.CodeBadJSON},
		{"/db/x", `[]`, httpapi.CodeBadJSON},
		{"/db/x", `"str"`, httpapi.CodeBadJSON},
		{"/db/x", `{"LockID":5,"LockDur":1}`, httpapi.CodeBadJSON},
		{"/db/x", `{"LockID":"a","LockDur":"1"}`, httpapi.CodeBadJSON},
		{"/db/x", `{"LockID":"a","LockDurMs":1.5}`, httpapi.CodeBadJSON},
		{"/db/x", `{"KVGet":[1]}`, httpapi.CodeBadJSON},
		{"/db/x", `{"KVSet":[{"Key":"a","Value":1,"Delete":"yes"}]}`, httpapi.CodeBadJSON},
		{"/db/x", `{"Atomic":[{"Key":"a","Add":1.5}]}`, httpapi.CodeBadJSON},
		{"/db/x", `{"Atomic":[{"Key":"a","Add":9223372036854775808}]}`, httpapi.CodeBadJSON},
		{"/db/x", `{"Seq":[{"Key":"a","Count":-1}]}`, httpapi.CodeBadJSON},
		{"/db/x", `{"IdempotencyIDs":[1]}`, httpapi.CodeBadJSON},
		{"/watch/x", `{"ID":"a","Version":-1}`, httpapi.CodeBadJSON},
		{"/watch/x", `{"ID":1}`, httpapi.CodeBadJSON},
		{"/watch/x", ``, httpapi.CodeBadJSON},
		// Unknown fields, top level and nested.
		{"/db/x", `{"LockDuration":5}`, httpapi.CodeUnknownField},
		{"/db/x", `{"KVSet":[{"Key":"a","Value":1,"Bogus":1}]}`, httpapi.CodeUnknownField},
		{"/db/x", `{"KVSet":{"Key":"a","Value":1,"Bogus":1}}`, httpapi.CodeUnknownField},
		{"/db/x", `{"Atomic":[{"Key":"a","Inc":1}]}`, httpapi.CodeUnknownField},
		{"/db/x", `{"Seq":[{"Key":"a","N":1}]}`, httpapi.CodeUnknownField},
		{"/db/x", `{"KVGet":[{"Key":"a","Version":1}]}`, httpapi.CodeUnknownField},
		{"/watch/x", `{"ID":"a","Wait":1}`, httpapi.CodeUnknownField},
		// Fields that do not go together.
		{"/db/x", `{"Unlock":1}`, httpapi.CodeInvalidRequest},
		{"/db/x", `{"LockDur":1}`, httpapi.CodeInvalidRequest},
		{"/db/x", `{"LockWaitMs":1}`, httpapi.CodeInvalidRequest},
		{"/db/x", `{"Atomic":[{"Key":"a","Add":1,"Set":2}]}`, httpapi.CodeInvalidRequest},
		{"/db/x", `{"Seq":[{"Key":"a","Count":0}]}`, httpapi.CodeInvalidRequest},
		{"/db/x", `{"Seq":[{"Key":"a","Count":1000001}]}`, httpapi.CodeInvalidRequest},
		{"/watch/x", `{"ID":"a","Key":"b"}`, httpapi.CodeInvalidRequest},
		{"/db/x", `{"UnlockID":"a"}`, httpapi.CodeHandleRequired},
		// Durations.
		{"/db/x", `{"LockID":"a"}`, httpapi.CodeDurationRequired},
		{"/db/x", `{"LockID":"a","LockDur":0}`, httpapi.CodeDurationRequired},
		{"/db/x", `{"LockID":"a","LockDurMs":0,"LockWait":1}`, httpapi.CodeDurationRequired},
		{"/db/x", `{"LockID":"a","LockDur":86400.001}`, httpapi.CodeInvalidDuration},
		{"/db/x", `{"LockID":"a","LockDurMs":86400001}`, httpapi.CodeInvalidDuration},
		{"/db/x", `{"LockID":"a","LockDur":-1}`, httpapi.CodeInvalidDuration},
		{"/db/x", `{"LockID":"a","LockDur":1,"LockDurMs":1000}`, httpapi.CodeInvalidDuration},
		{"/db/x", `{"LockID":"a","LockDur":1,"LockWait":-0.5}`, httpapi.CodeInvalidDuration},
		{"/db/x", `{"IdempotencyIDs":["i"],"IdempotencyTTL":86400.001}`, httpapi.CodeInvalidDuration},
		{"/db/x", `{"IdempotencyIDs":["i"],"IdempotencyTTLMs":0}`, httpapi.CodeInvalidDuration},
		{"/db/x", `{"IdempotencyIDs":["i"],"IdempotencyTTL":1,"IdempotencyTTLMs":1000}`, httpapi.CodeInvalidDuration},
		{"/db/x", `{"IdempotencyTTLMs":1000}`, httpapi.CodeInvalidRequest},
		{"/db/x", `{"LockID":"a","LockDur":1,"LockWait":301}`, httpapi.CodeInvalidDuration},
		{"/db/x", `{"LockID":"a","LockDur":1,"LockWaitMs":300001}`, httpapi.CodeInvalidDuration},
		{"/db/x", `{"LockID":"a","LockDur":1,"LockWait":1,"LockWaitMs":1}`, httpapi.CodeInvalidDuration},
		{"/db/x", `{"LockID":"a","LockDur":1e300}`, httpapi.CodeInvalidDuration},
		{"/watch/x", `{"ID":"a","Timeout":-1}`, httpapi.CodeInvalidDuration},
		{"/watch/x", `{"ID":"a","TimeoutMs":-1}`, httpapi.CodeInvalidDuration},
		{"/watch/x", `{"ID":"a","Timeout":1,"TimeoutMs":1000}`, httpapi.CodeInvalidDuration},
		// Keys.
		{"/db/x", `{"LockID":"","LockDur":1}`, httpapi.CodeKeyRequired},
		{"/db/x", `{"UnlockID":"","Unlock":1}`, httpapi.CodeKeyRequired},
		{"/db/x", `{"KVSet":[{"Value":1}]}`, httpapi.CodeKeyRequired},
		{"/db/x", `{"KVGet":[""]}`, httpapi.CodeKeyRequired},
		{"/db/x", `{"KVGet":[{}]}`, httpapi.CodeKeyRequired},
		{"/db/x", `{"Atomic":[{"Add":1}]}`, httpapi.CodeKeyRequired},
		{"/db/x", `{"Seq":[{}]}`, httpapi.CodeKeyRequired},
		{"/db/x", `{"IdempotencyIDs":[""]}`, httpapi.CodeKeyRequired},
		{"/watch/x", `{}`, httpapi.CodeKeyRequired},
		{"/watch/x", `{"ID":""}`, httpapi.CodeKeyRequired},
		{"/db/x", `{"LockID":"` + long + `","LockDur":1}`, httpapi.CodeKeyTooLong},
		{"/db/x", `{"UnlockID":"` + long + `","Unlock":1}`, httpapi.CodeKeyTooLong},
		{"/db/x", `{"KVSet":[{"Key":"` + long + `","Value":1}]}`, httpapi.CodeKeyTooLong},
		{"/db/x", `{"KVGet":["` + long + `"]}`, httpapi.CodeKeyTooLong},
		{"/db/x", `{"Atomic":[{"Key":"` + long + `"}]}`, httpapi.CodeKeyTooLong},
		{"/db/x", `{"Seq":[{"Key":"` + long + `"}]}`, httpapi.CodeKeyTooLong},
		{"/db/x", `{"IdempotencyIDs":["` + long + `"]}`, httpapi.CodeKeyTooLong},
		{"/watch/x", `{"ID":"` + long + `"}`, httpapi.CodeKeyTooLong},
		{"/db/x", `{"KVSet":[{"Key":"a"}]}`, httpapi.CodeValueRequired},
		{"/db/x", `{"KVSet":[{"Key":"a","Delete":false}]}`, httpapi.CodeValueRequired},
		// Op counts: KVSet + KVGet + Atomic + Seq + IdempotencyIDs.
		{"/db/x", `{"KVGet":[` + many(lim.MaxOps+1) + `]}`, httpapi.CodeTooManyOps},
		{"/db/x", `{"IdempotencyIDs":[` + many(lim.MaxOps+1) + `]}`, httpapi.CodeTooManyOps},
		{"/db/x", `{"KVGet":[` + many(lim.MaxOps/2) + `],"IdempotencyIDs":[` + many(lim.MaxOps/2) + `],"Seq":[{"Key":"s"}]}`, httpapi.CodeTooManyOps},
		// Namespaces.
		{"/db/" + strings.Repeat("n", lim.MaxNamespaceBytes+1), `{}`, httpapi.CodeInvalidNamespace},
		{"/db/a%20b", `{}`, httpapi.CodeInvalidNamespace},
		{"/db/a%2Fb", `{}`, httpapi.CodeInvalidNamespace},
		{"/db/%C3%A9", `{}`, httpapi.CodeInvalidNamespace},
		{"/watch/a*b", `{"ID":"a"}`, httpapi.CodeInvalidNamespace},
		{"/req/a+b", `{}`, httpapi.CodeInvalidNamespace},
	}
	for _, c := range cases {
		r := ts.post(t, c.path, c.body)
		if r.Status != http.StatusBadRequest {
			t.Errorf("%s %.80s: want 400 %s, got %.200s", c.path, c.body, c.code, r)
			continue
		}
		wantErr(t, r, http.StatusBadRequest, c.code)
	}
	// Nothing above reached the engine's state.
	rawIs(t, ts.post(t, "/db/x", `{"KVGet":["a"],"Atomic":[{"Key":"a"}],"Seq":[{"Key":"a"}]}`),
		`{"KV":[{"Key":"a","Value":null,"Version":0}],"Atomic":[{"Key":"a","Value":0}],"Seq":[{"Key":"a","First":1,"Last":1}]}`)

	// At the limits, accepted.
	for _, body := range []string{
		`{"KVGet":[` + many(lim.MaxOps) + `]}`,
		`{"KVSet":[{"Key":"` + okKey + `","Value":1}],"KVGet":["` + okKey + `"]}`,
		`{"LockID":"` + okKey + `","LockDur":86400,"LockWait":300}`,
		`{"Seq":[{"Key":"big","Count":1000000}]}`,
		`{}`,
		`null`,
		` {} `,
	} {
		ok(t, ts.post(t, "/db/x", body))
	}
	ok(t, ts.post(t, "/db/"+strings.Repeat("n", lim.MaxNamespaceBytes), `{}`))
	ok(t, ts.post(t, "/db/Az09_-.:", `{}`))
	// A watch Timeout above the maximum is accepted (capped, see
	// TestWatchTimeout); Version 1 of a missing key returns at once.
	rawIs(t, ts.post(t, "/watch/x", `{"ID":"a","Version":1,"Timeout":100000}`), `{"Key":"a","Value":null,"Version":0}`)
}

// TestShuttingDown: Drain fails parked lock waiters and watchers with 503
// shutting_down and refuses new ones; after Close every request is 503.
func TestShuttingDown(t *testing.T) {
	ts := newTestServer(t)
	const p = "/db/down"
	held := ok(t, ts.post(t, p, `{"LockID":"L","LockDur":60}`))
	waiter := ts.start(p, `{"LockID":"L","LockDur":5,"LockWait":60}`)
	ts.waitLockWaiters(t, "down", "L", 1)
	ok(t, ts.post(t, p, `{"KVSet":[{"Key":"k","Value":1}]}`))
	watcher := ts.parkWatch(t, "down", `{"ID":"k","Version":1,"Timeout":60}`)

	ts.eng.Drain()
	wantErr(t, waiter.wait(t), http.StatusServiceUnavailable, httpapi.CodeShuttingDown)
	wantErr(t, watcher.wait(t), http.StatusServiceUnavailable, httpapi.CodeShuttingDown)
	if n := ts.eng.LockWaiters("down", "L"); n != 0 {
		t.Fatalf("%d waiters after Drain", n)
	}

	// New waiters and watchers are refused; requests that need no wait work.
	wantErr(t, ts.post(t, p, `{"LockID":"L","LockDur":5,"LockWait":60}`), http.StatusServiceUnavailable, httpapi.CodeShuttingDown)
	wantErr(t, ts.post(t, "/watch/down", `{"ID":"k","Version":1,"Timeout":60}`), http.StatusServiceUnavailable, httpapi.CodeShuttingDown)
	rawIs(t, ts.post(t, "/watch/down", `{"ID":"k","Version":0}`), `{"Key":"k","Value":1,"Version":1}`)
	rawIs(t, ts.post(t, p, `{"KVGet":["k"]}`), `{"KV":[{"Key":"k","Value":1,"Version":1}]}`)
	rawIs(t, ts.post(t, p, fmt.Sprintf(`{"UnlockID":"L","Unlock":%d}`, held.Lock)), `{}`)

	ts.closeEngine(t)
	for _, c := range []struct{ path, body string }{
		{p, `{"KVGet":["k"]}`},
		{p, `{"KVSet":[{"Key":"k","Value":2}]}`},
		{p, `{"LockID":"L","LockDur":5}`},
		{"/watch/down", `{"ID":"k","Version":0}`},
	} {
		wantErr(t, ts.post(t, c.path, c.body), http.StatusServiceUnavailable, httpapi.CodeShuttingDown)
	}
}

// TestTooManyWaiters: a lock whose queue is full answers 429.
func TestTooManyWaiters(t *testing.T) {
	ts := newTestServerWith(t, engine.Config{MaxWaitersPerLock: 2}, httpapi.DefaultLimits())
	const p = "/db/full"
	ok(t, ts.post(t, p, `{"LockID":"L","LockDur":60}`))
	a := ts.start(p, `{"LockID":"L","LockDur":5,"LockWait":60}`)
	ts.waitLockWaiters(t, "full", "L", 1)
	b := ts.start(p, `{"LockID":"L","LockDur":5,"LockWait":60}`)
	ts.waitLockWaiters(t, "full", "L", 2)
	wantErr(t, ts.post(t, p, `{"LockID":"L","LockDur":5,"LockWait":60}`), http.StatusTooManyRequests, httpapi.CodeTooManyWaiters)
	// Another key is not affected.
	ok(t, ts.post(t, p, `{"LockID":"M","LockDur":5}`))
	a.cancel()
	b.cancel()
	ts.waitLockWaiters(t, "full", "L", 0)
}

// TestTooManyLockWaiters: --max-lock-waiters bounds the waiters of all
// locks together; the next one, on any lock, answers 429 naming the flag.
func TestTooManyLockWaiters(t *testing.T) {
	ts := newTestServerWith(t, engine.Config{MaxLockWaiters: 2}, httpapi.DefaultLimits())
	for _, ns := range []string{"a", "b", "c"} {
		ok(t, ts.post(t, "/db/"+ns, `{"LockID":"L","LockDur":60}`))
	}
	a := ts.start("/db/a", `{"LockID":"L","LockDur":5,"LockWait":60}`)
	ts.waitLockWaiters(t, "a", "L", 1)
	b := ts.start("/db/b", `{"LockID":"L","LockDur":5,"LockWait":60}`)
	ts.waitLockWaiters(t, "b", "L", 1)
	msg := wantErr(t, ts.post(t, "/db/c", `{"LockID":"L","LockDur":5,"LockWait":60}`), http.StatusTooManyRequests, httpapi.CodeTooManyWaiters)
	if !strings.Contains(msg, "--max-lock-waiters") {
		t.Fatalf("the message should name the flag: %s", msg)
	}
	a.cancel()
	ts.waitLockWaiters(t, "a", "L", 0)
	waitUntil(t, "one lock waiter left", func() bool { return ts.eng.LockWaitersParked() == 1 })
	c := ts.start("/db/c", `{"LockID":"L","LockDur":5,"LockWait":60}`)
	ts.waitLockWaiters(t, "c", "L", 1)
	b.cancel()
	c.cancel()
	waitUntil(t, "no lock waiters", func() bool { return ts.eng.LockWaitersParked() == 0 })
}
