package engine

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// doOK runs a request that must succeed.
func doOK(t *testing.T, e *Engine, ns string, req *Request) *Response {
	t.Helper()
	resp, err := e.Do(context.Background(), ns, req)
	if err != nil {
		t.Fatalf("Do %s %+v: %v", ns, req, err)
	}
	return resp
}

// parkWaiter starts a lock request that waits up to a minute; the channel
// gets its outcome.
type waitOutcome struct {
	resp *Response
	err  error
}

func parkWaiter(e *Engine, ctx context.Context, ns, key string) <-chan waitOutcome {
	out := make(chan waitOutcome, 1)
	go func() {
		resp, err := e.Do(ctx, ns, &Request{LockID: key, LockDurMs: 60_000, LockWaitMs: 60_000})
		out <- waitOutcome{resp, err}
	}()
	return out
}

// waitFor polls cond; a hang is a failure, not a slow pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestAdminViews(t *testing.T) {
	e := openTest(t, t.TempDir(), 3)
	ctx := context.Background()
	for i := 0; i < 25; i++ {
		doOK(t, e, "dev", &Request{KVSet: []KVSet{{Key: fmt.Sprintf("user/%02d", i), Value: []byte(fmt.Sprintf(`{"n":%d}`, i))}}})
	}
	doOK(t, e, "dev", &Request{KVSet: []KVSet{{Key: "zz", Value: []byte(`"last"`)}}, Atomic: []AtomicOp{{Key: "c", Add: ptr[int64](1)}}})
	held := doOK(t, e, "dev", &Request{LockID: "L", LockDurMs: 60_000})
	other := doOK(t, e, "ops", &Request{LockID: "M", LockDurMs: 60_000})
	doOK(t, e, "readonly", &Request{KVGet: []string{"x"}}) // no state: not listed

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w1 := parkWaiter(e, wctx, "dev", "L")
	waitFor(t, "one waiter on dev/L", func() bool { return e.LockWaiters("dev", "L") == 1 })
	w2 := parkWaiter(e, wctx, "dev", "L")
	waitFor(t, "two waiters on dev/L", func() bool { return e.LockWaiters("dev", "L") == 2 })
	watchDone := make(chan error, 2)
	for i := 0; i < 2; i++ {
		go func() { _, err := e.Watch(wctx, "ops", "cfg", 0, time.Minute); watchDone <- err }()
	}
	waitFor(t, "two watchers on ops/cfg", func() bool {
		w, err := e.Watches(ctx, "")
		return err == nil && len(w) == 1 && w[0].Watchers == 2
	})

	nss, err := e.Namespaces(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []NamespaceInfo{
		{Name: "dev", Keys: 26, Counters: 1, Locks: 1, Revision: 26},
		{Name: "ops", Locks: 1},
	}
	if !reflect.DeepEqual(nss, want) {
		t.Fatalf("Namespaces:\n got %+v\nwant %+v", nss, want)
	}

	locks, err := e.Locks(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	wantLocks := []LockInfo{
		{Namespace: "dev", Key: "L", Handle: held.Lock, TillMs: held.TillMs, Waiters: 2},
		{Namespace: "ops", Key: "M", Handle: other.Lock, TillMs: other.TillMs},
	}
	if !reflect.DeepEqual(locks, wantLocks) {
		t.Fatalf("Locks:\n got %+v\nwant %+v", locks, wantLocks)
	}
	if l, _ := e.Locks(ctx, "ops"); len(l) != 1 || l[0].Key != "M" {
		t.Fatalf("Locks(ops) = %+v", l)
	}
	if l, _ := e.Locks(ctx, "nobody"); len(l) != 0 {
		t.Fatalf("Locks(nobody) = %+v", l)
	}
	if w, _ := e.Watches(ctx, "dev"); len(w) != 0 {
		t.Fatalf("Watches(dev) = %+v", w)
	}

	// Paging through user/ ten at a time sees every key once, in order.
	var seen []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		p, err := e.Keys(ctx, "dev", "user/", after, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range p.Keys {
			seen = append(seen, k.Key)
			if k.Version == 0 || len(k.Value) == 0 {
				t.Fatalf("key without value or version: %+v", k)
			}
		}
		if p.Next == "" {
			break
		}
		after = p.Next
	}
	if len(seen) != 25 || seen[0] != "user/00" || seen[24] != "user/24" {
		t.Fatalf("paged keys: %v", seen)
	}
	p, err := e.Keys(ctx, "dev", "", "user/24", 0)
	if err != nil || len(p.Keys) != 1 || p.Keys[0].Key != "zz" || string(p.Keys[0].Value) != `"last"` || p.Keys[0].Version != 26 || p.Next != "" {
		t.Fatalf("Keys after user/24: %+v, %v", p, err)
	}
	if _, err := e.Keys(ctx, "dev", "", "", MaxKeysLimit+1); !errors.Is(err, ErrInvalid) {
		t.Fatalf("limit over the maximum: %v", err)
	}

	st, err := e.Overview(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Namespaces != 2 || st.LocksHeld != 2 || st.Waiters != 2 || st.Watchers != 2 || st.LastHandle != e.LastHandle() || st.WALBytes <= 0 || st.LastSnapshot != nil {
		t.Fatalf("Overview: %+v", st)
	}
	if _, err := e.Snapshot(); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.Overview(ctx); st.LastSnapshot == nil || st.LastSnapshot.Cut == 0 || st.LastSnapshot.Bytes <= 0 {
		t.Fatalf("Overview after a snapshot: %+v", st.LastSnapshot)
	}

	cancel()
	for _, w := range []<-chan waitOutcome{w1, w2} {
		if o := <-w; !errors.Is(o.err, ErrCanceled) {
			t.Fatalf("canceled waiter: %+v", o)
		}
	}
	for i := 0; i < 2; i++ {
		<-watchDone
	}
}

func TestForceRelease(t *testing.T) {
	e := openTest(t, t.TempDir(), 2)
	ctx := context.Background()
	h1 := doOK(t, e, "dev", &Request{LockID: "L", LockDurMs: 60_000}).Lock
	w := parkWaiter(e, ctx, "dev", "L")
	waitFor(t, "a waiter on dev/L", func() bool { return e.LockWaiters("dev", "L") == 1 })

	if _, err := e.ForceRelease(ctx, "dev", "L", h1+100); !errors.Is(err, ErrLockLost) {
		t.Fatalf("force release with a handle that does not hold it: %v", err)
	}
	res, err := e.ForceRelease(ctx, "dev", "L", 0)
	if err != nil {
		t.Fatal(err)
	}
	o := <-w
	if o.err != nil {
		t.Fatalf("the waiter: %v", o.err)
	}
	if res.Handle != h1 || res.NewHandle != o.resp.Lock || o.resp.Lock <= h1 || res.NewTillMs != o.resp.TillMs {
		t.Fatalf("force release %+v; waiter got %+v; old handle %d", res, o.resp, h1)
	}
	if _, err := e.Do(ctx, "dev", &Request{UnlockID: "L", Unlock: h1}); !errors.Is(err, ErrLockLost) {
		t.Fatalf("the old holder's unlock: %v, want lock lost", err)
	}
	if _, err := e.Do(ctx, "dev", &Request{LockID: "L", UnlockID: "L", Unlock: h1, LockDurMs: 1000}); !errors.Is(err, ErrLockLost) {
		t.Fatalf("the old holder's extend: %v, want lock lost", err)
	}
	// Releasing the new holder by its handle, with nobody waiting, frees it.
	res, err = e.ForceRelease(ctx, "dev", "L", o.resp.Lock)
	if err != nil || res.Handle != o.resp.Lock || res.NewHandle != 0 {
		t.Fatalf("second force release: %+v, %v", res, err)
	}
	if _, err := e.ForceRelease(ctx, "dev", "L", 0); !errors.Is(err, ErrLockNotHeld) {
		t.Fatalf("force release of a free lock: %v", err)
	}
	if _, err := e.ForceRelease(ctx, "nowhere", "L", 0); !errors.Is(err, ErrLockNotHeld) {
		t.Fatalf("force release in an unknown namespace: %v", err)
	}
	if l, _ := e.Locks(ctx, ""); len(l) != 0 {
		t.Fatalf("locks left: %+v", l)
	}
}

// TestForceReleaseRecovers: a force release is in the log (and in the next
// snapshot), so after a restart the lock is free, or held by the waiter
// whose grant followed it, as before the restart. Each case restarts once
// from the log alone and once from a snapshot taken after the release.
func TestForceReleaseRecovers(t *testing.T) {
	for _, fromSnapshot := range []bool{false, true} {
		t.Run(fmt.Sprintf("snapshot=%v", fromSnapshot), func(t *testing.T) {
			dir := t.TempDir()
			e, err := Open(Config{Dir: dir, Shards: 2})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			free := doOK(t, e, "dev", &Request{LockID: "free", LockDurMs: 600_000}).Lock
			doOK(t, e, "dev", &Request{LockID: "passed", LockDurMs: 600_000})
			w := parkWaiter(e, ctx, "dev", "passed")
			waitFor(t, "a waiter", func() bool { return e.LockWaiters("dev", "passed") == 1 })
			if r, err := e.ForceRelease(ctx, "dev", "free", free); err != nil || r.NewHandle != 0 {
				t.Fatalf("%+v %v", r, err)
			}
			r, err := e.ForceRelease(ctx, "dev", "passed", 0)
			if err != nil || r.NewHandle == 0 {
				t.Fatalf("%+v %v", r, err)
			}
			if o := <-w; o.err != nil || o.resp.Lock != r.NewHandle {
				t.Fatalf("waiter %+v, force release %+v", o, r)
			}
			if fromSnapshot {
				if _, err := e.Snapshot(); err != nil {
					t.Fatal(err)
				}
			}
			last := e.LastHandle()
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}

			e2 := openTest(t, dir, 2)
			if got := e2.Recovered(); fromSnapshot && got.Snapshot == "" {
				t.Fatalf("did not restore from the snapshot: %+v", got)
			}
			locks, err := e2.Locks(ctx, "dev")
			if err != nil {
				t.Fatal(err)
			}
			if len(locks) != 1 || locks[0].Key != "passed" || locks[0].Handle != r.NewHandle || locks[0].TillMs != r.NewTillMs {
				t.Fatalf("after restart: locks %+v, want only passed held by %d", locks, r.NewHandle)
			}
			if e2.LastHandle() < last {
				t.Fatalf("handle counter went back: %d < %d", e2.LastHandle(), last)
			}
			if _, err := e2.Do(ctx, "dev", &Request{LockID: "free", LockDurMs: 1000}); err != nil {
				t.Fatalf("the force-released lock is not free after restart: %v", err)
			}
			if _, err := e2.Do(ctx, "dev", &Request{UnlockID: "passed", Unlock: r.Handle}); !errors.Is(err, ErrLockLost) {
				t.Fatalf("the old handle after restart: %v, want lock lost", err)
			}
		})
	}
}
