package loadtest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// idleWaiters: one client takes a lock, n clients ask for it with a long
// wait and park in line; once all have sent (and a settle for their
// requests to reach the server), the holder releases and the waiters
// drain: each, when granted, releases at once, handing the lock to the
// next. Reported: how many were parked at the release, how many were
// served, and the hand-off rate while they drained (grants per second
// from the release to the last unlock); latency is each waiter's time
// from the release to its grant. Checks: nobody was granted while the
// first holder held the lock, no two waiters held it at once, every
// grant had a distinct handle, handles increased (fencing targets), and
// every parked waiter was served exactly once.
//
// Scale multiplies n; Clients, Duration, Ops and Rate do not apply.
func idleWaiters(n int) Scenario {
	return Scenario{
		Name:           fmt.Sprintf("idle-waiters-%d", n),
		Title:          fmt.Sprintf("%d idle waiters on 1 lock", n),
		DefaultClients: n,
		Needs:          []Feature{FeatureLock},
		unit:           "handoffs",
		run: func(ctx context.Context, r *runner) *Result {
			res := runIdleWaiters(ctx, r, r.scaled(n))
			res.Title = fmt.Sprintf("%d idle waiters on 1 lock", res.Clients)
			return res
		},
	}
}

func runIdleWaiters(ctx context.Context, r *runner, n int) *Result {
	ns, lock := r.namespace(0), "idle"
	fencing := r.t.Supports(FeatureFencing) == nil
	holder := newWorker(r, -1)
	res := newResult(r, n, 0)
	h0, err := holder.conn.Lock(ctx, ns, lock, 5*time.Minute, 0)
	if !holder.count(ctx, err) {
		res.addWorker(holder)
		return res
	}

	var (
		holders           atomic.Int64 // -1: the first holder; i+1: waiter i
		lastHandle        atomic.Uint64
		releaseAt         atomic.Int64 // unix ns when the first holder's unlock was sent
		returnedEarly     atomic.Int64 // waiters whose request ended before the release
		grants, lockFails atomic.Int64
		mu                sync.Mutex
		granted           = map[uint64]int{} // handle -> waiter
	)
	holders.Store(-1)
	lastHandle.Store(h0)
	waiters := make([]*worker, n)
	var sent, wg sync.WaitGroup
	sent.Add(n)
	for i := range waiters {
		w := newWorker(r, i)
		waiters[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.opStart = time.Now()
			sent.Done()
			h, err := w.conn.Lock(ctx, ns, lock, 30*time.Second, 5*time.Minute)
			if releaseAt.Load() == 0 {
				returnedEarly.Add(1)
			}
			if !w.count(ctx, err) {
				lockFails.Add(1)
				return
			}
			grants.Add(1)
			if !holders.CompareAndSwap(0, int64(w.id)+1) {
				if who := holders.Load(); who == -1 {
					w.violate("granted handle %d while the first holder held the lock", h)
				} else {
					w.violate("granted handle %d while client %d holds the lock", h, who-1)
				}
			}
			mu.Lock()
			if other, dup := granted[h]; dup {
				w.violate("handle %d was granted to client %d too", h, other)
			}
			granted[h] = w.id
			mu.Unlock()
			if fencing {
				if prev := lastHandle.Swap(h); h <= prev {
					w.violate("handle %d after handle %d", h, prev)
				}
			}
			w.ops++
			w.hist.Record(time.Duration(time.Now().UnixNano() - releaseAt.Load()))
			r.liveOps.Add(1)
			holders.CompareAndSwap(int64(w.id)+1, 0)
			if err := w.conn.Unlock(context.WithoutCancel(ctx), ns, lock, h); !w.count(ctx, err) && errorClass(err) == "lock_lost" {
				w.violate("unlock right after the grant of handle %d: %v", h, err)
			}
		}()
	}
	sent.Wait()
	// The waiters have all started sending; give the requests time to
	// reach the server and park (black-box: nothing says they have).
	settle := 100*time.Millisecond + time.Duration(n)*30*time.Microsecond + r.o.Latency
	select {
	case <-time.After(settle):
	case <-ctx.Done():
	}
	parked := int64(n) - returnedEarly.Load()
	start := time.Now()
	releaseAt.Store(start.UnixNano())
	holders.Store(0)
	holder.count(ctx, holder.conn.Unlock(context.WithoutCancel(ctx), ns, lock, h0))
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.addWorker(holder)
	for _, w := range waiters {
		res.addWorker(w)
	}
	if ctx.Err() == nil {
		if g, f := grants.Load(), lockFails.Load(); g+f != int64(n) || g != int64(len(granted)) {
			res.Violations = append(res.Violations, fmt.Sprintf("%d waiters: %d granted, %d refused, %d distinct handles",
				n, g, f, len(granted)))
		}
	}
	res.Extra = map[string]float64{"waiters": float64(n), "parked": float64(parked), "granted": float64(res.Ops)}
	res.Note = fmt.Sprintf("%d parked, %d granted in %s", parked, res.Ops, roundDur(res.Elapsed))
	return res
}
