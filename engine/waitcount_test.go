package engine

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitForCount polls get until it returns want, failing after a while.
// The counts settle asynchronously (a caller's cancel notice reaches the
// loop after it returns), so a short wait is part of the contract.
func waitForCount(t *testing.T, what string, want int, get func() int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := get()
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %d, want %d", what, got, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// The waiter counts (LockWaiters, Stats, /admin/locks, the limits
// MaxWaitersPerLock and MaxLockWaiters) are exact once the callers that
// gave up have returned, however their cancels interleave with the grants
// that skip them.
func TestLockWaiterCountExact(t *testing.T) {
	e := openTest(t, t.TempDir(), 1)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	const rounds, n = 20, 60
	for round := range rounds {
		// LockWait: a caller granted as it gave up releases in the background.
		holder := doOK(t, e, "wc", &Request{LockID: "L", LockDurMs: 60_000, LockWaitMs: 5_000})
		var pending atomic.Int64 // waiters whose Do has not returned
		var wg sync.WaitGroup
		cancels := make([]context.CancelFunc, n)
		granted := make(chan uint64, n)
		for i := range n {
			cctx, cancel := context.WithCancel(ctx)
			cancels[i] = cancel
			pending.Add(1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := e.Do(cctx, "wc", &Request{LockID: "L", LockDurMs: 60_000, LockWaitMs: 60_000})
				pending.Add(-1)
				if err != nil {
					return
				}
				if i < n/2 {
					// The first half pass the lock on at once.
					if _, err := e.Do(ctx, "wc", &Request{UnlockID: "L", Unlock: resp.Lock}); err != nil {
						t.Error(err)
					}
					return
				}
				granted <- resp.Lock // the second half keep it
			}()
			// Park them one by one, so the queue order is i.
			waitForCount(t, "LockWaiters while parking", i+1, func() int { return e.LockWaiters("wc", "L") })
		}
		// Cancel a third of them, in random order, while the holder lets
		// go and the grants run through the line.
		order := rng.Perm(n)[:n/3]
		var cw sync.WaitGroup
		cw.Add(1)
		go func() {
			defer cw.Done()
			for _, i := range order {
				cancels[i]()
			}
		}()
		doOK(t, e, "wc", &Request{UnlockID: "L", Unlock: holder.Lock})
		cw.Wait()
		keeper := <-granted
		// Every canceled or granted caller has returned, or will: wait
		// until only parked ones are left, then the count must match.
		waitForCount(t, "callers still in Do", int(pending.Load()), func() int { return int(pending.Load()) })
		want := int(pending.Load())
		waitForCount(t, "LockWaiters after the cancels", want, func() int { return e.LockWaiters("wc", "L") })
		waitForCount(t, "Stats().Waiters after the cancels", want, func() int { return int(e.Stats().Waiters) })
		waitForCount(t, "LockWaitersParked after the cancels", want, e.LockWaitersParked)
		if locks, err := e.Locks(ctx, "wc"); err != nil || len(locks) != 1 || locks[0].Waiters != want {
			t.Fatalf("round %d: Locks = %+v, %v; want one lock with %d waiters", round, locks, err, want)
		}
		// Let the rest through: cancel them all, release the keeper.
		for _, c := range cancels {
			c()
		}
		doOK(t, e, "wc", &Request{UnlockID: "L", Unlock: keeper})
		wg.Wait()
		for len(granted) > 0 {
			doOK(t, e, "wc", &Request{UnlockID: "L", Unlock: <-granted})
		}
		waitForCount(t, "LockWaiters at the end of a round", 0, func() int { return e.LockWaiters("wc", "L") })
		waitForCount(t, "Stats().Waiters at the end of a round", 0, func() int { return int(e.Stats().Waiters) })
		waitForCount(t, "LockWaitersParked at the end of a round", 0, e.LockWaitersParked)
	}
}

// The same for watchers: a watch that gave up must not be counted against
// a queue it is no longer in, such as the one a later watch made after a
// write emptied the old one.
func TestKeyWatcherCountExact(t *testing.T) {
	e := openTest(t, t.TempDir(), 1)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	const rounds, n = 20, 60
	for range rounds {
		cur := doOK(t, e, "wc", &Request{KVGet: []string{"k"}}).KV[0].Version
		var wg sync.WaitGroup
		cancels := make([]context.CancelFunc, n)
		for i := range n {
			cctx, cancel := context.WithCancel(ctx)
			cancels[i] = cancel
			wg.Add(1)
			go func() {
				defer wg.Done()
				e.Watch(cctx, "wc", "k", cur, time.Minute) //nolint:errcheck // canceled or woken
			}()
		}
		waitForCount(t, "KeyWatchers while parking", n, func() int { return e.KeyWatchers("wc", "k") })
		// Cancel some while a write wakes the rest, then park a new set
		// at the new version while the cancel notices may still travel.
		var cw sync.WaitGroup
		cw.Add(1)
		go func() {
			defer cw.Done()
			for _, i := range rng.Perm(n)[:n/2] {
				cancels[i]()
			}
		}()
		doOK(t, e, "wc", &Request{KVSet: []KVSet{{Key: "k", Value: []byte(`1`)}}})
		cw.Wait()
		wg.Wait()
		next := doOK(t, e, "wc", &Request{KVGet: []string{"k"}}).KV[0].Version
		const m = 10
		for i := range m {
			cctx, cancel := context.WithCancel(ctx)
			cancels[i] = cancel
			wg.Add(1)
			go func() {
				defer wg.Done()
				e.Watch(cctx, "wc", "k", next, time.Minute) //nolint:errcheck // canceled below
			}()
		}
		waitForCount(t, "KeyWatchers of the new set", m, func() int { return e.KeyWatchers("wc", "k") })
		waitForCount(t, "Stats().Watchers of the new set", m, func() int { return int(e.Stats().Watchers) })
		for _, c := range cancels[:m] {
			c()
		}
		wg.Wait()
		waitForCount(t, "KeyWatchers at the end of a round", 0, func() int { return e.KeyWatchers("wc", "k") })
	}
}
