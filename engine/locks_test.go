package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestWaitersNeverGhostGranted has many waiters on one lock give up at
// random (timeouts and cancellations) while holders hand the lock on. No
// two holders may overlap, every grant goes to a caller that receives it,
// and at the end the lock must be free: a waiter that gave up was never
// granted (DESIGN I6).
func TestWaitersNeverGhostGranted(t *testing.T) {
	e := openTest(t, t.TempDir(), 2)
	var holders atomic.Int32
	var granted, gaveUp atomic.Int64
	var lastHandle atomic.Uint64
	var wg sync.WaitGroup
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			for j := 0; j < 5; j++ {
				ctx, cancel := context.WithCancel(context.Background())
				if rng.IntN(3) == 0 {
					time.AfterFunc(time.Duration(rng.IntN(2000))*time.Microsecond, cancel)
				}
				resp, err := e.Do(ctx, "ns", &Request{LockID: "L", LockDurMs: 60_000, LockWaitMs: int64(1 + rng.IntN(30))})
				cancel()
				if err != nil {
					if !errors.Is(err, ErrLockTimeout) && !errors.Is(err, ErrCanceled) {
						t.Errorf("unexpected error: %v", err)
					}
					gaveUp.Add(1)
					continue
				}
				if n := holders.Add(1); n != 1 {
					t.Errorf("%d holders at once", n)
				}
				for {
					prev := lastHandle.Load()
					if resp.Lock <= prev {
						t.Errorf("handle %d not above %d", resp.Lock, prev)
						break
					}
					if lastHandle.CompareAndSwap(prev, resp.Lock) {
						break
					}
				}
				granted.Add(1)
				holders.Add(-1)
				if _, err := e.Do(context.Background(), "ns", &Request{UnlockID: "L", Unlock: resp.Lock}); err != nil {
					t.Errorf("unlock %d: %v", resp.Lock, err)
				}
			}
		}(i)
	}
	wg.Wait()
	if granted.Load() == 0 || gaveUp.Load() == 0 {
		t.Fatalf("the test did not exercise both paths: granted %d, gave up %d", granted.Load(), gaveUp.Load())
	}
	// The lock must be free now: no canceled waiter holds it.
	if _, err := e.Do(context.Background(), "ns", &Request{LockID: "L", LockDurMs: 1000}); err != nil {
		t.Fatalf("lock not free after every caller finished (ghost holder?): %v", err)
	}
	t.Logf("granted %d, gave up %d", granted.Load(), gaveUp.Load())
}

// TestFIFOAndExpiryHandoff parks waiters in a known order behind a lock
// that expires (no unlock) and checks they are served in arrival order.
func TestFIFOAndExpiryHandoff(t *testing.T) {
	e := openTest(t, t.TempDir(), 1)
	ctx := context.Background()
	// The first lock is held until every waiter has parked, however slow
	// the machine, then released; the grants after it hand off by expiry.
	first, err := e.Do(ctx, "ns", &Request{LockID: "L", LockDurMs: 60_000})
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	type grant struct {
		waiter int
		handle uint64
	}
	grants := make(chan grant, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			resp, err := e.Do(ctx, "ns", &Request{LockID: "L", LockDurMs: 1, LockWaitMs: 60_000})
			if err != nil {
				t.Errorf("waiter %d: %v", i, err)
				return
			}
			// Each grant expires after 1 ms and hands off to the next.
			grants <- grant{i, resp.Lock}
		}(i)
		waitParked(t, e, "ns", "L", i+1)
	}
	if _, err := e.Do(ctx, "ns", &Request{UnlockID: "L", Unlock: first.Lock}); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(grants)
	// Handles increase in grant order, so sorting by handle gives the order
	// in which the loop served the waiters.
	var byHandle []grant
	for g := range grants {
		byHandle = append(byHandle, g)
	}
	sort.Slice(byHandle, func(i, j int) bool { return byHandle[i].handle < byHandle[j].handle })
	for want, g := range byHandle {
		if g.waiter != want {
			t.Fatalf("waiter %d was served %dth (grants by handle: %+v)", g.waiter, want, byHandle)
		}
	}
	if len(byHandle) != n {
		t.Fatalf("%d of %d waiters served", len(byHandle), n)
	}
}

// waitParked polls (through the loop, so without data races) until key has
// n live waiters.
func waitParked(t *testing.T, e *Engine, ns, key string, n int) {
	t.Helper()
	s := e.shardFor(ns)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		got := make(chan int, 1)
		s.cmds <- inspect(func() {
			l := s.nss[ns].locks[key]
			if l == nil {
				got <- 0
				return
			}
			got <- l.waiters.live()
		})
		if <-got >= n {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("waiter %d never parked", n)
}

// TestLockWaitCountsFromParking: LockWait is how long to wait behind a
// holder, so a free lock is granted however short the wait and however
// busy the loop (the timer once started when the request was queued, and
// a few percent of 1 ms waits on fresh keys timed out).
func TestLockWaitCountsFromParking(t *testing.T) {
	e := openTest(t, t.TempDir(), 1)
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				key := fmt.Sprintf("fresh-%d-%d", g, i)
				if _, err := e.Do(ctx, "ns", &Request{LockID: key, LockDurMs: 60_000, LockWaitMs: 1}); err != nil {
					t.Errorf("a free lock with LockWaitMs 1: %v", err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	// And a held lock still times out after the wait.
	if _, err := e.Do(ctx, "ns", &Request{LockID: "fresh-0-0", LockDurMs: 1000, LockWaitMs: 5}); !errors.Is(err, ErrLockTimeout) {
		t.Fatalf("a held lock: %v, want ErrLockTimeout", err)
	}
}

// TestIdempotencyTTLPerRequest: a request may ask for its ids to be
// remembered for less than Config.IdempotencyTTL; such an id expires then,
// and is pruned from memory even when it came after longer-lived ids.
func TestIdempotencyTTLPerRequest(t *testing.T) {
	e := openTest(t, t.TempDir(), 1)
	ctx := context.Background()
	add := func(id string, ttlMs int64) error {
		_, err := e.Do(ctx, "ns", &Request{Atomic: []AtomicOp{{Key: "n", Add: ptr(int64(1))}}, IdempotencyIDs: []string{id}, IdempotencyTTLMs: ttlMs})
		return err
	}
	if err := add("long", 0); err != nil {
		t.Fatal(err)
	}
	if err := add("short", 30); err != nil {
		t.Fatal(err)
	}
	if err := add("short", 30); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("a repeat within 30 ms: %v, want ErrDuplicate", err)
	}
	remembered := func() (ids []string) {
		done := make(chan struct{})
		s := e.shardFor("ns")
		s.cmds <- inspect(func() {
			s.nss["ns"].idem.Scan(func(id string, _ int64) bool { ids = append(ids, id); return true })
			close(done)
		})
		<-done
		return ids
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		// Any input runs the loop's pruning after it.
		ids := remembered()
		if len(ids) == 1 && ids[0] == "long" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("remembered ids %v, want only the long-lived one once the short one expired", ids)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := add("short", 30); err != nil {
		t.Fatalf("the short-lived id after it expired: %v, want applied", err)
	}
	if err := add("long", 0); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("the long-lived id: %v, want ErrDuplicate", err)
	}
}
