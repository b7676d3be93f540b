package client_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkv/latch/client"
)

// These tests run the client against a real engine over real HTTP on
// loopback. Faults are real too: a server stopped and started again, and
// a loopback proxy that forwards a request and then cuts the connection
// instead of returning the reply.

func newClient(t *testing.T, url string, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewRejectsBadAddress(t *testing.T) {
	if _, err := client.New("ftp://x"); err == nil {
		t.Fatal("New accepted an ftp:// address")
	}
	if _, err := client.New("127.0.0.1:1"); err != nil {
		t.Fatalf("a bare host:port should get http://: %v", err)
	}
}

// An https:// server with a certificate no system root signs: refused
// without WithTLSConfig, served with its CA in RootCAs.
func TestTLSConfig(t *testing.T) {
	s := startServer(t)
	ts := httptest.NewUnstartedServer(s.srv.Handler)
	var conns atomic.Int64
	ts.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	ts.StartTLS()
	t.Cleanup(ts.Close)
	ctx := testCtx(t)
	plain := newClient(t, ts.URL, client.WithNamespace("tls")) // default retries
	var unknown *tls.CertificateVerificationError
	if err := plain.Set(ctx, "k", 1); !errors.As(err, &unknown) || !errors.Is(err, client.ErrNoReply) {
		t.Fatalf("Set over TLS without the CA: %v, want ErrNoReply wrapping a certificate verification error", err)
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for one Set that failed certificate checks; it must not be retried", n)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ts.Certificate())
	c := newClient(t, ts.URL, client.WithNamespace("tls"), client.WithTLSConfig(&tls.Config{RootCAs: pool}))
	if err := c.Set(ctx, "k", 1); err != nil {
		t.Fatalf("Set over TLS with the CA: %v", err)
	}
	if kv, err := c.Get(ctx, "k"); err != nil || string(kv.Value) != "1" {
		t.Fatalf("Get over TLS: %+v %v", kv, err)
	}
	if _, err := client.New(ts.URL, client.WithTLSConfig(&tls.Config{}), client.WithHTTPClient(http.DefaultClient)); err == nil {
		t.Fatal("New accepted WithTLSConfig together with WithHTTPClient")
	}
}

func TestKV(t *testing.T) {
	s := startServer(t)
	ctx := testCtx(t)
	c := newClient(t, s.URL, client.WithNamespace("kv"))

	if _, err := c.Get(ctx, "k"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("Get of a missing key: %v, want ErrNotFound", err)
	}
	if err := c.Set(ctx, "k", map[string]any{"a": 1}); err != nil {
		t.Fatal(err)
	}
	kv, err := c.Get(ctx, "k")
	if err != nil || string(kv.Value) != `{"a":1}` || kv.Version == 0 {
		t.Fatalf("Get: %+v %v", kv, err)
	}
	raw := json.RawMessage(`{ "spaced" :  [1, 2] }`)
	if err := c.Set(ctx, "raw", raw); err != nil {
		t.Fatal(err)
	}
	if kv, err := c.Get(ctx, "raw"); err != nil || !bytes.Equal(kv.Value, raw) {
		t.Fatalf("a RawMessage must come back byte-exact: %s %v", kv.Value, err)
	}
	if err := c.Set(ctx, "bad", json.RawMessage(`{`)); err == nil {
		t.Fatal("Set accepted invalid raw JSON")
	}
	// Namespaces are separate.
	if _, err := c.Namespace("other").Get(ctx, "k"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("key leaked across namespaces: %v", err)
	}
	if err := c.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "k"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("Get after Delete: %v", err)
	}
	if err := c.Delete(ctx, "never"); err != nil {
		t.Fatalf("deleting a missing key: %v", err)
	}
}

func TestCountersAndSequences(t *testing.T) {
	s := startServer(t)
	ctx := testCtx(t)
	c := newClient(t, s.URL, client.WithNamespace("cnt"))

	if v, err := c.Counter(ctx, "c"); err != nil || v != 0 {
		t.Fatalf("a new counter: %d %v", v, err)
	}
	if v, err := c.Incr(ctx, "c"); err != nil || v != 1 {
		t.Fatalf("Incr: %d %v", v, err)
	}
	if v, err := c.Add(ctx, "c", 41); err != nil || v != 42 {
		t.Fatalf("Add: %d %v", v, err)
	}
	if err := c.CompareAndSet(ctx, "c", 42, 7); err != nil {
		t.Fatal(err)
	}
	err := c.CompareAndSet(ctx, "c", 42, 8)
	var ae *client.APIError
	if !errors.Is(err, client.ErrPreconditionFailed) || !errors.As(err, &ae) || ae.Status != 409 || ae.Code != "precondition_failed" {
		t.Fatalf("CompareAndSet with a stale old value: %v", err)
	}
	if v, _ := c.Counter(ctx, "c"); v != 7 {
		t.Fatalf("counter is %d after a failed CAS, want 7", v)
	}
	if _, err := c.Add(ctx, "c", 1<<63-1); !errors.Is(err, client.ErrOutOfRange) {
		t.Fatalf("overflowing add: %v", err)
	}

	first, last, err := c.NextSeq(ctx, "ids", 0)
	if err != nil || first != 1 || last != 1 {
		t.Fatalf("NextSeq: %d %d %v", first, last, err)
	}
	first, last, err = c.NextSeq(ctx, "ids", 5)
	if err != nil || first != 2 || last != 6 {
		t.Fatalf("NextSeq(5): %d %d %v", first, last, err)
	}
}

func TestDoAndAPIError(t *testing.T) {
	s := startServer(t)
	ctx := testCtx(t)
	c := newClient(t, s.URL)
	one := int64(1)
	r, err := c.Do(ctx, "multi", client.Request{
		KVSet:  []client.KVSet{{Key: "a", Value: json.RawMessage(`"x"`)}},
		KVGet:  []string{"a", "b"},
		Atomic: []client.AtomicOp{{Key: "n", Add: &one}},
		Seq:    []client.SeqOp{{Key: "s", Count: 3}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.KV) != 2 || string(r.KV[0].Value) != `"x"` || r.KV[1].Version != 0 || string(r.KV[1].Value) != "null" ||
		len(r.Atomic) != 1 || r.Atomic[0].Value != 1 || len(r.Seq) != 1 || r.Seq[0].Last != 3 {
		t.Fatalf("reply: %+v", r)
	}
	// A request the server refuses: an *APIError with status and code.
	_, err = c.Do(ctx, "multi", client.Request{UnlockID: "x"})
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != 400 || ae.Code != "handle_required" || ae.Message == "" || !errors.Is(err, client.ErrInvalidRequest) {
		t.Fatalf("UnlockID without a handle: %v", err)
	}
	// Caller-chosen idempotency ids: the second use is ErrDuplicate.
	req := client.Request{IdempotencyIDs: []string{"once"}, Atomic: []client.AtomicOp{{Key: "n", Add: &one}}}
	if _, err := c.Do(ctx, "multi", req); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Do(ctx, "multi", req); !errors.Is(err, client.ErrDuplicate) {
		t.Fatalf("a reused idempotency id: %v", err)
	}
}

func TestLock(t *testing.T) {
	s := startServer(t)
	ctx := testCtx(t)
	a := newClient(t, s.URL, client.WithNamespace("locks"))
	b := newClient(t, s.URL, client.WithNamespace("locks"))

	l, err := a.Lock(ctx, "L", client.LockOptions{TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if l.Handle() == 0 || !l.Till().After(time.Now()) || l.Name() != "L" {
		t.Fatalf("lock: handle %d till %s", l.Handle(), l.Till())
	}
	_, err = b.Lock(ctx, "L", client.LockOptions{TTL: time.Minute})
	var ae *client.APIError
	if !errors.Is(err, client.ErrLockTimeout) || !errors.As(err, &ae) || ae.Code != "lock_timeout" {
		t.Fatalf("second Lock with Wait 0: %v", err)
	}
	before := l.Till()
	if err := l.Extend(ctx, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	if !l.Till().After(before) {
		t.Fatalf("Extend did not move the deadline: %s -> %s", before, l.Till())
	}

	// A waiter gets the lock when it is released, with a higher handle.
	got := make(chan *client.Lock, 1)
	errc := make(chan error, 1)
	go func() {
		l2, err := b.Lock(ctx, "L", client.LockOptions{TTL: time.Minute, Wait: hangGuard})
		errc <- err
		got <- l2
	}()
	// The waiter is parked once the lock has a waiter; there is no API
	// for that without the admin endpoint, so unlocking early is also
	// fine: the waiter then simply finds it free.
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	l2 := <-got
	if l2.Handle() <= l.Handle() {
		t.Fatalf("handles must increase: %d then %d", l.Handle(), l2.Handle())
	}
	select {
	case <-l.Done():
	default:
		t.Fatal("Done not closed after Unlock")
	}
	if l.Err() != nil {
		t.Fatalf("Err after a clean Unlock: %v", l.Err())
	}
	if err := l2.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Lock(ctx, "L", client.LockOptions{}); !errors.Is(err, client.ErrInvalidRequest) {
		t.Fatalf("Lock without TTL: %v", err)
	}
}

// Without keep-alive, a lock that expires and is taken by another client
// is lost: Extend and Unlock say so and Done closes.
func TestLockLostAfterExpiry(t *testing.T) {
	s := startServer(t)
	ctx := testCtx(t)
	a := newClient(t, s.URL)
	b := newClient(t, s.URL)
	l, err := a.Lock(ctx, "E", client.LockOptions{TTL: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	other, err := b.Lock(ctx, "E", client.LockOptions{TTL: time.Minute, Wait: hangGuard})
	if err != nil {
		t.Fatalf("the expired lock was not handed to the waiter: %v", err)
	}
	if err := l.Extend(ctx, time.Minute); !errors.Is(err, client.ErrLockLost) {
		t.Fatalf("Extend of a lost lock: %v", err)
	}
	select {
	case <-l.Done():
	case <-time.After(hangGuard):
		t.Fatal("Done not closed after a lock_lost reply")
	}
	if !errors.Is(l.Err(), client.ErrLockLost) {
		t.Fatalf("Err: %v", l.Err())
	}
	if err := l.Unlock(ctx); !errors.Is(err, client.ErrLockLost) {
		t.Fatalf("Unlock of a lost lock: %v", err)
	}
	if err := other.Unlock(ctx); err != nil {
		t.Fatalf("the new holder's unlock: %v", err)
	}
}

// With keep-alive, a lock outlives its TTL many times over.
func TestKeepAliveHolds(t *testing.T) {
	s := startServer(t)
	ctx := testCtx(t)
	a := newClient(t, s.URL)
	b := newClient(t, s.URL)
	// The TTL leaves each extension (every TTL/3) far more time than a
	// loaded machine needs; the test checks behaviour, not speed.
	ttl := 1500 * time.Millisecond
	l, err := a.Lock(ctx, "K", client.LockOptions{TTL: ttl, KeepAlive: true})
	if err != nil {
		t.Fatal(err)
	}
	first := l.Till()
	// Wait (by polling the deadline, which only the keep-alive moves)
	// until the lock has been extended well past its first deadline.
	for !l.Till().After(first.Add(ttl)) {
		select {
		case <-l.Done():
			t.Fatalf("keep-alive lost the lock: %v", l.Err())
		case <-ctx.Done():
			t.Fatal("keep-alive never extended the lock")
		case <-time.After(20 * time.Millisecond):
		}
	}
	if _, err := b.Lock(ctx, "K", client.LockOptions{TTL: time.Minute}); !errors.Is(err, client.ErrLockTimeout) {
		t.Fatalf("another client took a kept-alive lock: %v", err)
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	l2, err := b.Lock(ctx, "K", client.LockOptions{TTL: time.Minute})
	if err != nil {
		t.Fatalf("lock not free after Unlock: %v", err)
	}
	l2.Unlock(ctx) //nolint:errcheck
}

// With keep-alive on, a server that is down for longer than the TTL makes
// the lock lost: Done closes, Err is ErrLockLost, and after the restart
// the lock is free for others.
func TestKeepAliveReportsLoss(t *testing.T) {
	s := startServer(t)
	ctx := testCtx(t)
	a := newClient(t, s.URL, client.WithRetry(client.Retry{MaxAttempts: 2, BaseDelay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond}))
	ttl := 500 * time.Millisecond
	l, err := a.Lock(ctx, "R", client.LockOptions{TTL: ttl, KeepAlive: true})
	if err != nil {
		t.Fatal(err)
	}
	s.restart(t, func() {
		// Down until the last deadline the keep-alive got has passed.
		for time.Now().Before(l.Till().Add(100 * time.Millisecond)) {
			time.Sleep(20 * time.Millisecond)
		}
	})
	select {
	case <-l.Done():
	case <-ctx.Done():
		t.Fatal("Done not closed after the lock's deadline passed with the server down")
	}
	if !errors.Is(l.Err(), client.ErrLockLost) {
		t.Fatalf("Err: %v", l.Err())
	}
	if err := l.Extend(ctx, ttl); !errors.Is(err, client.ErrLockLost) {
		t.Fatalf("Extend after the loss: %v", err)
	}
	b := newClient(t, s.URL)
	l2, err := b.Lock(ctx, "R", client.LockOptions{TTL: time.Minute})
	if err != nil {
		t.Fatalf("after the restart the expired lock should be free: %v", err)
	}
	if l2.Handle() <= l.Handle() {
		t.Fatalf("handles across a restart: %d then %d", l.Handle(), l2.Handle())
	}
}

func TestChanges(t *testing.T) {
	s := startServer(t)
	ctx := testCtx(t)
	c := newClient(t, s.URL, client.WithNamespace("w"))
	if err := c.Set(ctx, "k", "v1"); err != nil {
		t.Fatal(err)
	}
	// A single long-poll returns at once when the version differs...
	kv, err := c.Watch(ctx, "k", 0, 0)
	if err != nil || string(kv.Value) != `"v1"` {
		t.Fatalf("Watch: %+v %v", kv, err)
	}
	// ...and times out with the same version when nothing changes.
	same, err := c.Watch(ctx, "k", kv.Version, 50*time.Millisecond)
	if err != nil || same.Version != kv.Version {
		t.Fatalf("Watch timeout: %+v %v", same, err)
	}

	wctx, cancel := context.WithCancel(ctx)
	w := c.Changes(wctx, "k", kv.Version)
	for i, v := range []string{`"v2"`, `"v3"`, `null`} {
		if v == "null" {
			err = c.Delete(ctx, "k")
		} else {
			err = c.Set(ctx, "k", json.RawMessage(v))
		}
		if err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-w.C():
			if string(got.Value) != v {
				t.Fatalf("change %d: %s, want %s", i, got.Value, v)
			}
		case <-ctx.Done():
			t.Fatalf("change %d never arrived", i)
		}
		if i == 0 {
			// The loop keeps going across a server restart.
			s.restart(t, func() {})
		}
	}
	cancel()
	for range w.C() {
	}
	if !errors.Is(w.Err(), context.Canceled) {
		t.Fatalf("Err after cancel: %v", w.Err())
	}
}

// dropProxy forwards requests to a server and, for the first drops of
// them, cuts the client's connection after the server has replied: the
// request applied but its reply is lost.
type dropProxy struct {
	target   string
	drops    atomic.Int32
	requests atomic.Int32
	mu       sync.Mutex
	auth     []string
	bodies   []string
}

func (p *dropProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	p.mu.Lock()
	p.auth = append(p.auth, r.Header.Get("Authorization"))
	p.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	p.mu.Lock()
	p.bodies = append(p.bodies, string(body))
	p.mu.Unlock()
	req, _ := http.NewRequestWithContext(r.Context(), r.Method, p.target+r.URL.RequestURI(), bytes.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if p.drops.Add(-1) >= 0 {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(resp.StatusCode)
	w.Write(data) //nolint:errcheck
}

func startProxy(t *testing.T, target string) (*dropProxy, string) {
	p := &dropProxy{target: target}
	ts := httptest.NewServer(p)
	t.Cleanup(ts.Close)
	return p, ts.URL
}

func TestIdempotentRetry(t *testing.T) {
	s := startServer(t)
	ctx := testCtx(t)
	direct := newClient(t, s.URL, client.WithNamespace("idem"))
	p, purl := startProxy(t, s.URL)
	fast := client.Retry{MaxAttempts: 4, BaseDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond}
	c := newClient(t, purl, client.WithNamespace("idem"), client.WithRetry(fast), client.WithToken("t0k"))

	step := func(name string, drops int32, f func() error) error {
		t.Helper()
		p.drops.Store(drops)
		p.requests.Store(0)
		err := f()
		if n := p.requests.Load(); n != drops+1 && !(name == "lock" && n == 1) {
			t.Errorf("%s: %d attempts reached the server, want %d", name, n, drops+1)
		}
		return err
	}

	// A read is simply repeated.
	if err := direct.Set(ctx, "r", 1); err != nil {
		t.Fatal(err)
	}
	if err := step("get", 2, func() error { _, err := c.Get(ctx, "r"); return err }); err != nil {
		t.Fatalf("Get through two lost replies: %v", err)
	}

	// A write whose reply asks for nothing: the retry's duplicate means
	// it applied, which is success.
	if err := step("set", 1, func() error { return c.Set(ctx, "k", "v") }); err != nil {
		t.Fatalf("Set with a lost reply: %v", err)
	}
	if kv, err := direct.Get(ctx, "k"); err != nil || string(kv.Value) != `"v"` {
		t.Fatalf("after the retried Set: %+v %v", kv, err)
	}

	// A counter add applies exactly once; its value is reported lost.
	err := step("incr", 1, func() error { _, err := c.Incr(ctx, "n"); return err })
	if !errors.Is(err, client.ErrReplyLost) || errors.Is(err, client.ErrDuplicate) {
		t.Fatalf("Incr with a lost reply: %v, want ErrReplyLost", err)
	}
	if v, _ := direct.Counter(ctx, "n"); v != 1 {
		t.Fatalf("counter is %d after one retried Incr, want 1 (applied exactly once)", v)
	}
	// CompareAndSet knows its result, so a lost reply is success.
	if err := step("cas", 1, func() error { return c.CompareAndSet(ctx, "n", 1, 5) }); err != nil {
		t.Fatalf("CompareAndSet with a lost reply: %v", err)
	}
	if v, _ := direct.Counter(ctx, "n"); v != 5 {
		t.Fatalf("counter %d after CAS, want 5", v)
	}

	// Lock acquisition is never retried: one attempt, ErrNoReply, and
	// the grant it got is real.
	err = step("lock", 1, func() error { _, err := c.Lock(ctx, "L", client.LockOptions{TTL: time.Minute}); return err })
	if !errors.Is(err, client.ErrNoReply) {
		t.Fatalf("Lock with a lost reply: %v, want ErrNoReply", err)
	}
	if _, err := direct.Lock(ctx, "L", client.LockOptions{TTL: time.Minute}); !errors.Is(err, client.ErrLockTimeout) {
		t.Fatalf("the lost grant should hold the lock: %v", err)
	}

	// An unlock retried after its reply was lost returns nil.
	l, err := c.Lock(ctx, "U", client.LockOptions{TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if err := step("unlock", 1, func() error { return l.Unlock(ctx) }); err != nil {
		t.Fatalf("Unlock with a lost reply: %v", err)
	}
	if l2, err := direct.Lock(ctx, "U", client.LockOptions{TTL: time.Minute}); err != nil {
		t.Fatalf("the lock should be free: %v", err)
	} else {
		l2.Unlock(ctx) //nolint:errcheck
	}

	// With retries off a lost reply is ErrNoReply, and no id is sent.
	once := newClient(t, purl, client.WithNamespace("idem"), client.WithRetry(client.Retry{MaxAttempts: 1}))
	if err := step("set-once", 0, func() error { p.drops.Store(1); return once.Set(ctx, "k", 2) }); !errors.Is(err, client.ErrNoReply) {
		t.Fatalf("Set without retries and a lost reply: %v", err)
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.auth[0] != "Bearer t0k" {
		t.Fatalf("Authorization header: %q", p.auth[0])
	}
}

// GET /admin/locks is built on another branch; until it is merged the
// server answers 404 not_found.
func TestAdminLocks(t *testing.T) {
	s := startServer(t)
	ctx := testCtx(t)
	c := newClient(t, s.URL, client.WithNamespace("adm"))
	l, err := c.Lock(ctx, "A", client.LockOptions{TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	locks, err := c.AdminLocks(ctx, "adm")
	if err != nil {
		t.Fatal(err)
	}
	if len(locks) != 1 || locks[0].Key != "A" || locks[0].Handle != l.Handle() || locks[0].Namespace != "adm" || locks[0].TillMs != l.Till().UnixMilli() {
		t.Fatalf("AdminLocks: %+v, want A with handle %d", locks, l.Handle())
	}
}

// Canceling the context of a waiting Lock ends the call with the
// context's error. (That the server then drops the waiter is the server's
// guarantee, tested in httpapi; from here there is no way to wait for the
// server to notice the closed connection before releasing the lock.)
func TestLockCancelWhileWaiting(t *testing.T) {
	s := startServer(t)
	ctx := testCtx(t)
	a := newClient(t, s.URL)
	b := newClient(t, s.URL)
	l, err := a.Lock(ctx, "C", client.LockOptions{TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := b.Lock(wctx, "C", client.LockOptions{TTL: time.Second, Wait: time.Minute})
		errc <- err
	}()
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("canceled Lock: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("a canceled Lock kept waiting")
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

// Automatic idempotency ids ask the server to remember them only for
// Retry.IDTTL, and the server then forgets them: a write repeated with the
// same id after that applies again.
func TestAutoIDTTL(t *testing.T) {
	s := startServer(t)
	ctx := testCtx(t)
	p, purl := startProxy(t, s.URL)
	c := newClient(t, purl, client.WithNamespace("idttl"))
	if err := c.Set(ctx, "k", 1); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	body := p.bodies[len(p.bodies)-1]
	p.mu.Unlock()
	var sent struct {
		IdempotencyIDs   []string
		IdempotencyTTLMs int64
	}
	if err := json.Unmarshal([]byte(body), &sent); err != nil || len(sent.IdempotencyIDs) != 1 || sent.IdempotencyTTLMs != client.DefaultRetry.IDTTL.Milliseconds() {
		t.Fatalf("a default Set sent %s (%v); want one id and IdempotencyTTLMs %d", body, err, client.DefaultRetry.IDTTL.Milliseconds())
	}

	// The server keeps an id for the TTL asked for, then forgets it.
	direct := newClient(t, s.URL, client.WithNamespace("idttl"), client.WithRetry(client.Retry{MaxAttempts: 1}))
	req := client.Request{Atomic: []client.AtomicOp{{Key: "n", Add: ptr(int64(1))}}, IdempotencyIDs: []string{"once"}, IdempotencyTTL: 300 * time.Millisecond}
	if _, err := direct.Do(ctx, "idttl", req); err != nil {
		t.Fatal(err)
	}
	if _, err := direct.Do(ctx, "idttl", req); !errors.Is(err, client.ErrDuplicate) {
		t.Fatalf("a repeat within the TTL: %v, want ErrDuplicate", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := direct.Do(ctx, "idttl", req)
		if err == nil {
			break
		}
		if !errors.Is(err, client.ErrDuplicate) || time.Now().After(deadline) {
			t.Fatalf("a repeat after the TTL: %v, want it applied", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if v, _ := direct.Counter(ctx, "n"); v != 2 {
		t.Fatalf("counter %d, want 2 (applied once, then again after the id expired)", v)
	}
}

func ptr[T any](v T) *T { return &v }
