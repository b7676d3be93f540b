package engine

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// MaxLockWaiters bounds the waiters parked on all locks together: one more,
// on yet another lock, is refused with ErrTooManyWaiters at once; once the
// waiters leave (granted, canceled, timed out, drained) the count is back to 0 and
// new ones park again.
func TestMaxLockWaitersServerWide(t *testing.T) {
	e, err := Open(Config{Dir: t.TempDir(), Shards: 2, MaxLockWaiters: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	lockNS := func(i int) string { return fmt.Sprintf("ns%d", i) } // spread over both shards
	handles := make([]uint64, 6)
	for i := range handles {
		handles[i] = doOK(t, e, lockNS(i), &Request{LockID: "L", LockDurMs: 60_000}).Lock
	}
	parked := func() int { return e.LockWaitersParked() }
	refused := func(i int) {
		t.Helper()
		_, err := e.Do(ctx, lockNS(i), &Request{LockID: "L", LockDurMs: 60_000, LockWaitMs: 1_000})
		if !errors.Is(err, ErrTooManyWaiters) {
			t.Fatalf("a fourth waiter, on lock %s/L: %v, want ErrTooManyWaiters", lockNS(i), err)
		}
	}

	// Three waiters on three locks; a fourth on a fourth lock is refused.
	granted := parkWaiter(e, ctx, lockNS(0), "L")
	cctx, cancel := context.WithCancel(ctx)
	canceled1 := parkWaiter(e, cctx, lockNS(1), "L")
	canceled2 := parkWaiter(e, cctx, lockNS(2), "L")
	waitForCount(t, "waiters parked", 3, parked)
	if st := e.Stats(); st.Waiters != 3 {
		t.Fatalf("Stats.Waiters = %d, want 3", st.Waiters)
	}
	refused(3)

	// They leave: one granted, two canceled.
	doOK(t, e, lockNS(0), &Request{UnlockID: "L", Unlock: handles[0]})
	if w := <-granted; w.err != nil {
		t.Fatalf("granted waiter: %v", w.err)
	}
	cancel()
	for _, c := range []<-chan waitOutcome{canceled1, canceled2} {
		if w := <-c; !errors.Is(w.err, ErrCanceled) {
			t.Fatalf("canceled waiter: %v", w.err)
		}
	}
	waitForCount(t, "waiters after grant and cancels", 0, parked)

	// One that times out leaves too.
	if _, err := e.Do(ctx, lockNS(1), &Request{LockID: "L", LockDurMs: 60_000, LockWaitMs: 1}); !errors.Is(err, ErrLockTimeout) {
		t.Fatalf("short LockWait: %v, want ErrLockTimeout", err)
	}
	waitForCount(t, "waiters after a timeout", 0, parked)

	// The slots are free again: three park, on other locks, and a fourth
	// is refused again.
	var back []<-chan waitOutcome
	for i := 3; i < 6; i++ {
		back = append(back, parkWaiter(e, ctx, lockNS(i), "L"))
	}
	waitForCount(t, "waiters parked again", 3, parked)
	refused(1)
	for i := 3; i < 6; i++ {
		doOK(t, e, lockNS(i), &Request{UnlockID: "L", Unlock: handles[i]})
	}
	for _, c := range back {
		if w := <-c; w.err != nil {
			t.Fatalf("waiter parked after the others left: %v", w.err)
		}
	}
	waitForCount(t, "waiters after the grants", 0, parked)

	// Drain fails parked waiters: they leave the count as well.
	drained := parkWaiter(e, ctx, lockNS(0), "L")
	waitForCount(t, "a waiter before Drain", 1, parked)
	e.Drain()
	if w := <-drained; !errors.Is(w.err, ErrShuttingDown) {
		t.Fatalf("waiter at Drain: %v, want ErrShuttingDown", w.err)
	}
	waitForCount(t, "waiters after Drain", 0, parked)
}
