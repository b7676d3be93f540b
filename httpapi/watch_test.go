package httpapi_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/latchkv/latch/engine"
	"github.com/latchkv/latch/httpapi"
)

// parkWatch starts a watch and gives it a moment to park. Whether it
// parked first or not, the reply the tests expect is the same; the pause
// only makes the blocking path the one usually taken.
func (ts *testServer) parkWatch(t testing.TB, env, body string) *async {
	t.Helper()
	before := ts.inflight.Load()
	a := ts.start("/watch/"+env, body)
	waitUntil(t, "the watch reaches the server", func() bool { return ts.inflight.Load() > before })
	time.Sleep(20 * time.Millisecond)
	if a.returned() {
		t.Fatalf("watch %s returned before any change: %s", body, a.r)
	}
	return a
}

// TestWatchCreation: Version 0 on a missing key waits for it to be
// created and returns the new version and value.
func TestWatchCreation(t *testing.T) {
	ts := newTestServer(t)
	w := ts.parkWatch(t, "w", `{"ID":"new","Version":0,"Timeout":60}`)
	ok(t, ts.post(t, "/db/w", `{"KVSet":[{"Key":"other","Value":1}]}`)) // another key: no wake-up
	if w.returned() {
		t.Fatalf("woken by another key: %s", w.r)
	}
	rawIs(t, ts.post(t, "/db/w", `{"KVSet":[{"Key":"new","Value":{"v": [1, 2]}}]}`), `{}`)
	rawIs(t, w.wait(t), `{"Key":"new","Value":{"v": [1, 2]},"Version":2}`)
}

// TestWatchOldVersion: a watch with a version other than the current one
// returns at once (with a 5-minute Timeout it would otherwise hit the
// hang guard).
func TestWatchOldVersion(t *testing.T) {
	ts := newTestServer(t)
	ok(t, ts.post(t, "/db/w", `{"KVSet":[{"Key":"k","Value":"one"}]}`))
	ok(t, ts.post(t, "/db/w", `{"KVSet":[{"Key":"k","Value":"two"}]}`))
	for _, v := range []int{0, 1, 3, 1000} {
		rawIs(t, ts.post(t, "/watch/w", fmt.Sprintf(`{"ID":"k","Version":%d,"Timeout":300}`, v)), `{"Key":"k","Value":"two","Version":2}`)
	}
	// "Key" is an alias of "ID".
	rawIs(t, ts.post(t, "/watch/w", `{"Key":"k","Version":1}`), `{"Key":"k","Value":"two","Version":2}`)
	// A missing key is version 0: any other version returns at once.
	rawIs(t, ts.post(t, "/watch/w", `{"ID":"missing","Version":7,"Timeout":300}`), `{"Key":"missing","Value":null,"Version":0}`)
}

// TestWatchCurrentVersion: a watch on the current version blocks until the
// key changes, then returns the new version and value; a delete wakes it
// with version 0; many watchers are all woken by one write.
func TestWatchCurrentVersion(t *testing.T) {
	ts := newTestServer(t)
	ok(t, ts.post(t, "/db/w", `{"KVSet":[{"Key":"k","Value":"one"}]}`))
	var ws []*async
	for i := 0; i < 20; i++ {
		ws = append(ws, ts.parkWatch(t, "w", `{"ID":"k","Version":1,"Timeout":120}`))
	}
	// A write to another namespace's k, and a request that only reads k,
	// wake nobody.
	ok(t, ts.post(t, "/db/w2", `{"KVSet":[{"Key":"k","Value":"elsewhere"}]}`))
	ok(t, ts.post(t, "/db/w", `{"KVGet":["k"],"Atomic":[{"Key":"k","Add":1}]}`))
	rawIs(t, ts.post(t, "/db/w", `{"KVSet":[{"Key":"k","Value":"two"}]}`), `{}`)
	for _, w := range ws {
		rawIs(t, w.wait(t), `{"Key":"k","Value":"two","Version":2}`)
	}

	w := ts.parkWatch(t, "w", `{"ID":"k","Version":2,"Timeout":120}`)
	ok(t, ts.post(t, "/db/w", `{"KVSet":[{"Key":"k","Delete":true}]}`))
	rawIs(t, w.wait(t), `{"Key":"k","Value":null,"Version":0}`)

	// A write that fails (rolled back) wakes nobody.
	ok(t, ts.post(t, "/db/w", `{"KVSet":[{"Key":"k","Value":"three"}]}`)) // version 4
	w = ts.parkWatch(t, "w", `{"ID":"k","Version":4,"Timeout":120}`)
	wantErr(t, ts.post(t, "/db/w", `{"KVSet":[{"Key":"k","Value":"no"}],"Atomic":[{"Key":"c","Set":1,"IfEq":99}]}`), http.StatusConflict, httpapi.CodePreconditionFailed)
	time.Sleep(20 * time.Millisecond)
	if w.returned() {
		t.Fatalf("woken by a rolled-back write: %s", w.r)
	}
	ok(t, ts.post(t, "/db/w", `{"KVSet":[{"Key":"k","Value":"four"}]}`))
	rawIs(t, w.wait(t), `{"Key":"k","Value":"four","Version":5}`)
}

// TestWatchTimeout: on timeout a watch replies 200 with the unchanged
// version and current value; a Timeout over the maximum is capped.
func TestWatchTimeout(t *testing.T) {
	ts := newTestServer(t)
	ok(t, ts.post(t, "/db/w", `{"KVSet":[{"Key":"k","Value":[1]}]}`))
	rawIs(t, ts.post(t, "/watch/w", `{"ID":"k","Version":1,"TimeoutMs":100}`), `{"Key":"k","Value":[1],"Version":1}`)
	rawIs(t, ts.post(t, "/watch/w", `{"ID":"k","Version":1,"Timeout":0.1}`), `{"Key":"k","Value":[1],"Version":1}`)
	rawIs(t, ts.post(t, "/watch/w", `{"ID":"k","Version":1,"Timeout":0}`), `{"Key":"k","Value":[1],"Version":1}`)
	rawIs(t, ts.post(t, "/watch/w", `{"ID":"missing","Version":0,"TimeoutMs":50}`), `{"Key":"missing","Value":null,"Version":0}`)

	// With a 200 ms maximum, a Timeout of a day returns after the cap.
	lim := httpapi.DefaultLimits()
	lim.MaxWatchTimeout = 200 * time.Millisecond
	lim.DefaultWatchTimeout = 100 * time.Millisecond
	capped := newTestServerWith(t, engine.Config{}, lim)
	ok(t, capped.post(t, "/db/w", `{"KVSet":[{"Key":"k","Value":1}]}`))
	rawIs(t, capped.post(t, "/watch/w", `{"ID":"k","Version":1,"Timeout":86400}`), `{"Key":"k","Value":1,"Version":1}`)
	rawIs(t, capped.post(t, "/watch/w", `{"ID":"k","Version":1}`), `{"Key":"k","Value":1,"Version":1}`)
}

// TestWatcherDisconnect: a watcher whose client goes away is released
// (its handler returns) and later writes and watches are unaffected.
func TestWatcherDisconnect(t *testing.T) {
	ts := newTestServer(t)
	ok(t, ts.post(t, "/db/w", `{"KVSet":[{"Key":"k","Value":1}]}`))
	var ws []*async
	for i := 0; i < 30; i++ {
		ws = append(ws, ts.parkWatch(t, "w", `{"ID":"k","Version":1,"Timeout":300}`))
	}
	stay := ts.parkWatch(t, "w", `{"ID":"k","Version":1,"Timeout":300}`)
	for _, w := range ws {
		w.cancel()
	}
	for _, w := range ws {
		<-w.done
		if w.err == nil {
			t.Fatalf("a canceled watch got a reply: %s", w.r)
		}
	}
	// Each handler returns once the engine let go of its watch; only the
	// one that stays is left.
	waitUntil(t, "the canceled watch handlers return", func() bool { return ts.inflight.Load() == 1 })
	ok(t, ts.post(t, "/db/w", `{"KVSet":[{"Key":"k","Value":2}]}`))
	rawIs(t, stay.wait(t), `{"Key":"k","Value":2,"Version":2}`)
	w := ts.parkWatch(t, "w", `{"ID":"k","Version":2,"Timeout":300}`)
	ok(t, ts.post(t, "/db/w", `{"KVSet":[{"Key":"k","Value":3}]}`))
	rawIs(t, w.wait(t), `{"Key":"k","Value":3,"Version":3}`)
}
