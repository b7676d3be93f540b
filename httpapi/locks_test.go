package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/latchkv/latch/httpapi"
)

// TestLockHandOffOnUnlock: a parked waiter gets the lock when the holder
// unlocks, well before the holder's deadline or its own LockWait.
func TestLockHandOffOnUnlock(t *testing.T) {
	ts := newTestServer(t)
	const p = "/db/handoff"
	a := ok(t, ts.post(t, p, `{"LockID":"L","LockDur":3600}`))
	// B waits up to 5 minutes; without a hand-off it would time out (and
	// the hang guard would fire first).
	b := ts.start(p, `{"LockID":"L","LockDur":60,"LockWait":300,"KVGet":["k"]}`)
	ts.waitLockWaiters(t, "handoff", "L", 1)
	if b.returned() {
		t.Fatalf("the waiter returned while the lock was held: %s", b.r)
	}
	// The unlock carries a guarded write, which the waiter then reads.
	rawIs(t, ts.post(t, p, fmt.Sprintf(`{"UnlockID":"L","Unlock":%d,"KVSet":[{"Key":"k","Value":"from A"}]}`, a.Lock)), `{}`)
	bd := ok(t, b.wait(t))
	if bd.Lock != a.Lock+1 {
		t.Fatalf("waiter got handle %d, want %d (the next one issued)", bd.Lock, a.Lock+1)
	}
	if len(bd.KV) != 1 || string(bd.KV[0].Value) != `"from A"` {
		t.Fatalf("the waiter's request ran before the unlock's writes: %+v", bd.KV)
	}
	if bd.TillMs >= a.TillMs {
		t.Fatalf("waiter's deadline %d is not before A's %d: it was not handed off at unlock", bd.TillMs, a.TillMs)
	}
	if n := ts.eng.LockWaiters("handoff", "L"); n != 0 {
		t.Fatalf("%d waiters left", n)
	}
	wantErr(t, ts.post(t, p, fmt.Sprintf(`{"UnlockID":"L","Unlock":%d}`, a.Lock)), http.StatusConflict, httpapi.CodeLockLost)
	wantErr(t, ts.post(t, p, `{"LockID":"L","LockDur":1}`), http.StatusConflict, httpapi.CodeLockTimeout)
	rawIs(t, ts.post(t, p, fmt.Sprintf(`{"UnlockID":"L","Unlock":"%d"}`, bd.Lock)), `{}`)
	ok(t, ts.post(t, p, `{"LockID":"L","LockDur":1}`))
}

// TestLockExpiryHandOff: a waiter gets the lock when the holder's deadline
// passes, not before.
func TestLockExpiryHandOff(t *testing.T) {
	ts := newTestServer(t)
	const p = "/db/expiry"
	a := ok(t, ts.post(t, p, `{"LockID":"L","LockDur":3600}`))
	b := ts.start(p, `{"LockID":"L","LockDurMs":60000,"LockWaitMs":300000}`)
	ts.waitLockWaiters(t, "expiry", "L", 1)
	// Now that B is surely queued, shorten A's lock to 200 ms and never
	// unlock it.
	short := ok(t, ts.post(t, p, fmt.Sprintf(`{"LockID":"L","UnlockID":"L","Unlock":%d,"LockDurMs":200}`, a.Lock)))
	if short.Lock != a.Lock {
		t.Fatalf("extend changed the handle: %d -> %d", a.Lock, short.Lock)
	}
	bd := ok(t, b.wait(t))
	if bd.Lock <= a.Lock {
		t.Fatalf("waiter handle %d not above %d", bd.Lock, a.Lock)
	}
	if granted := bd.TillMs - 60000; granted < short.TillMs {
		t.Fatalf("granted at %d, before the holder's deadline %d", granted, short.TillMs)
	}
	wantErr(t, ts.post(t, p, fmt.Sprintf(`{"UnlockID":"L","Unlock":%d}`, a.Lock)), http.StatusConflict, httpapi.CodeLockLost)

	// The same with a chain: each holder expires, the next waiter gets it.
	cur := bd
	var waiters []*async
	for i := 0; i < 3; i++ {
		waiters = append(waiters, ts.start(p, `{"LockID":"L","LockDurMs":100,"LockWaitMs":300000}`))
		ts.waitLockWaiters(t, "expiry", "L", i+1)
	}
	ok(t, ts.post(t, p, fmt.Sprintf(`{"LockID":"L","UnlockID":"L","Unlock":%d,"LockDurMs":50}`, cur.Lock)))
	prev := cur.Lock
	for i, w := range waiters {
		d := ok(t, w.wait(t))
		if d.Lock <= prev {
			t.Fatalf("waiter %d: handle %d after %d", i, d.Lock, prev)
		}
		prev = d.Lock
	}
}

// TestLockFIFO100: 100 waiters, each queued only after the previous one
// is, are granted in exactly that order, one per unlock.
func TestLockFIFO100(t *testing.T) {
	ts := newTestServer(t)
	const p, n = "/db/fifo", 100
	holder := ok(t, ts.post(t, p, `{"LockID":"L","LockDur":3600}`))

	type grant struct {
		i int
		r reply
	}
	grants := make(chan grant, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		a := ts.start(p, `{"LockID":"L","LockDur":600,"LockWait":300}`)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-a.done
			g := grant{i: i, r: a.r}
			if a.err != nil {
				g.r = reply{Status: -1, Raw: []byte(a.err.Error())}
			}
			grants <- g
		}(i)
		ts.waitLockWaiters(t, "fifo", "L", i+1)
	}
	select {
	case g := <-grants:
		t.Fatalf("waiter %d returned while the lock was held: %s", g.i, g.r)
	default:
	}

	prev := holder.Lock
	rawIs(t, ts.post(t, p, unlockBody("L", holder.Lock)), `{}`)
	for want := 0; want < n; want++ {
		var g grant
		select {
		case g = <-grants:
		case <-time.After(hangGuard):
			t.Fatalf("no grant after unlock; want waiter %d", want)
		}
		if g.i != want {
			t.Fatalf("grant %d went to waiter %d, want %d (%s)", want, g.i, want, g.r)
		}
		d := ok(t, g.r)
		if d.Lock != prev+1 {
			t.Fatalf("waiter %d: handle %d, want %d", want, d.Lock, prev+1)
		}
		prev = d.Lock
		if left := ts.eng.LockWaiters("fifo", "L"); left != n-1-want {
			t.Fatalf("after grant %d: %d waiters, want %d", want, left, n-1-want)
		}
		// Exactly one holder: nobody else was granted meanwhile.
		select {
		case g2 := <-grants:
			t.Fatalf("waiter %d granted while waiter %d held the lock (%s)", g2.i, want, g2.r)
		default:
		}
		rawIs(t, ts.post(t, p, unlockBody("L", d.Lock)), `{}`)
	}
	wg.Wait()
}

// TestDisconnectedWaiterNeverGranted: waiters whose clients went away
// leave the queue and are skipped; the next live waiter gets the lock and
// no handle is ever issued to the dead ones.
func TestDisconnectedWaiterNeverGranted(t *testing.T) {
	ts := newTestServer(t)
	const p = "/db/gone"
	holder := ok(t, ts.post(t, p, `{"LockID":"L","LockDur":3600}`))
	body := `{"LockID":"L","LockDur":600,"LockWait":300,"Atomic":[{"Key":"granted","Add":1}]}`
	var ws []*async
	for i := 0; i < 5; i++ {
		ws = append(ws, ts.start(p, body))
		ts.waitLockWaiters(t, "gone", "L", i+1)
	}
	// Disconnect the head and the middle of the queue.
	for _, i := range []int{0, 2} {
		ws[i].cancel()
		<-ws[i].done
		if ws[i].err == nil {
			t.Fatalf("canceled waiter %d got a reply: %s", i, ws[i].r)
		}
	}
	ts.waitLockWaiters(t, "gone", "L", 3)
	waitUntil(t, "the canceled handlers return", func() bool { return ts.inflight.Load() == 3 })

	prev := holder.Lock
	rawIs(t, ts.post(t, p, unlockBody("L", holder.Lock)), `{}`)
	live := []int{1, 3, 4}
	for k, i := range live {
		d := ok(t, ws[i].wait(t))
		// Handles are issued one by one: a grant to a dead waiter, even
		// one taken back at once, would have used a handle in between.
		if d.Lock != prev+1 {
			t.Fatalf("waiter %d: handle %d, want %d", i, d.Lock, prev+1)
		}
		if d.Atomic[0].Value != int64(k+1) {
			t.Fatalf("waiter %d: its request ran %d times in all, want %d", i, d.Atomic[0].Value, k+1)
		}
		prev = d.Lock
		if k+1 < len(live) && ws[live[k+1]].returned() {
			t.Fatal("two holders at once")
		}
		rawIs(t, ts.post(t, p, unlockBody("L", d.Lock)), `{}`)
	}
	if n := ts.eng.LockWaiters("gone", "L"); n != 0 {
		t.Fatalf("%d waiters left", n)
	}
	// Free: the next acquire needs no wait and gets the next handle.
	d := ok(t, ts.post(t, p, `{"LockID":"L","LockDur":1,"Atomic":[{"Key":"granted"}]}`))
	if d.Lock != prev+1 || d.Atomic[0].Value != 3 {
		t.Fatalf("after the queue: %+v, want handle %d and 3 grants", d, prev+1)
	}

	// Every other waiter of 40 disconnects: the live ones are served in
	// order and afterwards the lock is free (no ghost holder).
	rawIs(t, ts.post(t, p, unlockBody("L", d.Lock)), `{}`)
	h := ok(t, ts.post(t, p, `{"LockID":"M","LockDur":3600}`))
	var many []*async
	for i := 0; i < 40; i++ {
		many = append(many, ts.start(p, `{"LockID":"M","LockDur":600,"LockWait":300}`))
		ts.waitLockWaiters(t, "gone", "M", i+1)
	}
	for i := 0; i < 40; i += 2 {
		many[i].cancel()
	}
	ts.waitLockWaiters(t, "gone", "M", 20)
	rawIs(t, ts.post(t, p, unlockBody("M", h.Lock)), `{}`)
	for i := 1; i < 40; i += 2 {
		d := ok(t, many[i].wait(t))
		rawIs(t, ts.post(t, p, unlockBody("M", d.Lock)), `{}`)
	}
	for i := 0; i < 40; i += 2 {
		<-many[i].done
		if many[i].err == nil {
			t.Fatalf("canceled waiter %d got %s", i, many[i].r)
		}
	}
	ok(t, ts.post(t, p, `{"LockID":"M","LockDur":1}`))
}

// TestLockWaitTimeout: a waiter whose LockWait runs out gets 409
// lock_timeout, leaves the queue, and is never granted later.
func TestLockWaitTimeout(t *testing.T) {
	ts := newTestServer(t)
	const p = "/db/timeout"
	holder := ok(t, ts.post(t, p, `{"LockID":"L","LockDur":3600}`))
	msg := wantErr(t, ts.post(t, p, `{"LockID":"L","LockDur":60,"LockWaitMs":100,"KVSet":[{"Key":"k","Value":1}]}`), http.StatusConflict, httpapi.CodeLockTimeout)
	if msg == "" {
		t.Fatal("empty message")
	}
	wantErr(t, ts.post(t, p, `{"LockID":"L","LockDur":60,"LockWait":0.1}`), http.StatusConflict, httpapi.CodeLockTimeout)
	ts.waitLockWaiters(t, "timeout", "L", 0)
	// A later waiter is served; the timed-out ones never got a handle and
	// their writes never applied.
	b := ts.start(p, `{"LockID":"L","LockDur":60,"LockWait":300,"KVGet":["k"]}`)
	ts.waitLockWaiters(t, "timeout", "L", 1)
	rawIs(t, ts.post(t, p, unlockBody("L", holder.Lock)), `{}`)
	d := ok(t, b.wait(t))
	if d.Lock != holder.Lock+1 {
		t.Fatalf("handle %d, want %d", d.Lock, holder.Lock+1)
	}
	if d.KV[0].Version != 0 {
		t.Fatalf("a timed-out request's write applied: %+v", d.KV)
	}
}

// TestHandlesStrictlyIncrease: across keys, namespaces, hand-offs and
// expiries, every grant gets a larger handle than every earlier one; an
// extend keeps its handle.
func TestHandlesStrictlyIncrease(t *testing.T) {
	ts := newTestServer(t)
	var prev uint64
	next := func(d dbReply) {
		t.Helper()
		if d.Lock <= prev {
			t.Fatalf("handle %d after %d", d.Lock, prev)
		}
		prev = d.Lock
	}
	for i := 0; i < 60; i++ {
		p := fmt.Sprintf("/db/h%d", i%7)
		key := fmt.Sprintf("k%d", i%5)
		dur := []int{60000, 60000, 30}[i%3] // unlocked, shortened by extend, expires
		d := ok(t, ts.post(t, p, fmt.Sprintf(`{"LockID":%q,"LockDurMs":%d}`, key, dur)))
		next(d)
		switch i % 3 {
		case 0:
			ok(t, ts.post(t, p, unlockBody(key, d.Lock)))
		case 1:
			e := ok(t, ts.post(t, p, fmt.Sprintf(`{"LockID":%q,"UnlockID":%q,"Unlock":%d,"LockDurMs":1}`, key, key, d.Lock)))
			if e.Lock != d.Lock {
				t.Fatalf("extend: handle %d, want %d", e.Lock, d.Lock)
			}
			d = e
		}
		// Wait out whatever is still held (at most 30 ms) so the next
		// acquire of this key never meets a holder.
		if i%3 != 0 {
			waitUntil(t, "the deadline passes", func() bool { return time.Now().UnixMilli() > d.TillMs })
		}
	}
	// Concurrent acquirers on many keys: all handles distinct.
	var mu sync.Mutex
	seen := map[uint64]bool{}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				r, err := ts.send(t.Context(), "POST", fmt.Sprintf("/db/c%d", g), fmt.Sprintf(`{"LockID":"k%d","LockDur":60}`, i))
				if err != nil || r.Status != 200 {
					t.Errorf("acquire: %v %s", err, r)
					return
				}
				var d dbReply
				if err := json.Unmarshal(r.Raw, &d); err != nil {
					t.Errorf("decode %s: %v", r, err)
					return
				}
				mu.Lock()
				if d.Lock <= prev || seen[d.Lock] {
					t.Errorf("handle %d repeated or not above %d", d.Lock, prev)
				}
				seen[d.Lock] = true
				mu.Unlock()
			}
		}(g)
	}
	wg.Wait()
}
