package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// LockOptions say how to take a lock.
type LockOptions struct {
	// TTL is how long the lock is held unless released or extended
	// (required, above 0, at most the server's --max-lock-dur).
	TTL time.Duration
	// Wait is how long to wait in line while someone else holds it; 0
	// fails at once with ErrLockTimeout. Canceling ctx also leaves the line.
	Wait time.Duration
	// KeepAlive extends the lock by TTL every KeepAliveEvery until Unlock.
	// If an extension is refused (the lock was lost) or none succeeds
	// before the deadline, Done is closed and Err says why.
	KeepAlive bool
	// KeepAliveEvery is the extension period; default TTL/3, at most TTL/2.
	KeepAliveEvery time.Duration
}

// Lock is a held lock.
type Lock struct {
	c     *Client
	ns    string
	name  string
	h     uint64
	ttl   time.Duration
	every time.Duration

	mu    sync.Mutex
	till  time.Time
	err   error // why it ended; nil while held or after a clean Unlock
	done  chan struct{}
	ended bool

	stop   chan struct{} // closed to stop the keep-alive
	kaDone chan struct{} // closed when the keep-alive has returned
	once   sync.Once
}

// Lock takes lock name in the client's namespace.
//
// The acquisition is never retried: a request whose reply was lost may
// have been granted, and sending it again would wait behind that grant.
// Such a failure matches ErrNoReply; the lost grant, if any, ends at its
// TTL. Canceling ctx while waiting leaves the line and is never granted,
// except when the grant and the cancel cross on the wire (the same
// outcome as a lost reply).
func (c *Client) Lock(ctx context.Context, name string, opts LockOptions) (*Lock, error) {
	if opts.TTL <= 0 {
		return nil, fmt.Errorf("%w: LockOptions.TTL must be above 0", ErrInvalidRequest)
	}
	r, err := c.Do(ctx, c.ns, Request{LockID: name, LockDur: opts.TTL, LockWait: opts.Wait})
	if err != nil {
		return nil, err
	}
	l := &Lock{c: c, ns: c.ns, name: name, h: r.Lock, ttl: opts.TTL, till: r.Till,
		done: make(chan struct{}), stop: make(chan struct{}), kaDone: make(chan struct{})}
	if opts.KeepAlive {
		l.every = opts.KeepAliveEvery
		if l.every <= 0 {
			l.every = opts.TTL / 3
		}
		// An extension must be able to fail and be retried before the
		// deadline; a period near the TTL would leave no room for that.
		l.every = min(l.every, opts.TTL/2)
		go l.keepAlive()
	} else {
		close(l.kaDone)
	}
	return l, nil
}

// Name is the lock's name.
func (l *Lock) Name() string { return l.name }

// Handle is the lock's handle: a fencing token that strictly increases
// over the server's whole life.
func (l *Lock) Handle() uint64 { return l.h }

// Till is the lock's current deadline.
func (l *Lock) Till() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.till
}

// Done is closed when the lock ends: lost (Err is then non-nil) or released by Unlock.
func (l *Lock) Done() <-chan struct{} { return l.done }

// Err is why the lock ended: nil while held and after a clean Unlock,
// an error matching ErrLockLost after a loss.
func (l *Lock) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// end records how the lock ended, once.
func (l *Lock) end(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ended {
		return
	}
	l.ended, l.err = true, err
	close(l.done)
}

func (l *Lock) stopKeepAlive() {
	l.once.Do(func() { close(l.stop) })
	<-l.kaDone
}

// Extend sets the deadline to d from now, keeping the handle. It fails
// with ErrLockLost if the lock expired or passed to someone else.
func (l *Lock) Extend(ctx context.Context, d time.Duration) error {
	l.mu.Lock()
	ended, err := l.ended, l.err
	l.mu.Unlock()
	if ended {
		if err == nil {
			err = fmt.Errorf("%w: lock %q was unlocked", ErrLockLost, l.name)
		}
		return err
	}
	r, err := l.c.Do(ctx, l.ns, Request{LockID: l.name, UnlockID: l.name, Unlock: l.h, LockDur: d})
	if err != nil {
		if errors.Is(err, ErrLockLost) {
			l.end(err)
		}
		return err
	}
	l.mu.Lock()
	l.till = r.Till
	l.mu.Unlock()
	return nil
}

// Unlock releases the lock and stops its keep-alive. ErrLockLost means it
// was no longer held (it expired or passed to another client), so any
// work done under it may have overlapped another holder's.
//
// A retried unlock that finds its first attempt applied returns nil.
func (l *Lock) Unlock(ctx context.Context) error {
	l.stopKeepAlive()
	l.mu.Lock()
	ended, lost := l.ended, l.err
	l.mu.Unlock()
	if ended {
		if lost != nil {
			return lost
		}
		return nil // already unlocked
	}
	_, err := l.c.Do(ctx, l.ns, Request{UnlockID: l.name, Unlock: l.h})
	if err != nil {
		if errors.Is(err, ErrLockLost) {
			l.end(err)
		}
		return err
	}
	l.end(nil)
	return nil
}

// keepAlive extends the lock every l.every. Transient failures are
// retried with backoff until the deadline; reaching it unextended, or a
// lock_lost reply, ends the lock.
func (l *Lock) keepAlive() {
	defer close(l.kaDone)
	wait := l.every
	failures := 0
	for {
		l.mu.Lock()
		till := l.till
		l.mu.Unlock()
		// Never sleep past the deadline: when it passes unextended the
		// lock may already be someone else's.
		if untilDeadline := time.Until(till); wait > untilDeadline {
			wait = max(untilDeadline, 0)
		}
		t := time.NewTimer(wait)
		select {
		case <-l.stop:
			t.Stop()
			return
		case <-t.C:
		}
		if !time.Now().Before(till) {
			l.end(fmt.Errorf("%w: lock %q (handle %d) passed its deadline %s before the keep-alive could extend it",
				ErrLockLost, l.name, l.h, till.Format(time.RFC3339Nano)))
			return
		}
		ctx, cancel := context.WithDeadline(context.Background(), till)
		go func() { // an Unlock must not wait for a stuck extension
			select {
			case <-l.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		err := l.Extend(ctx, l.ttl)
		cancel()
		switch {
		case err == nil:
			failures, wait = 0, l.every
		case errors.Is(err, ErrLockLost):
			return // Extend ended the lock
		default:
			select {
			case <-l.stop:
				return
			default:
			}
			failures++
			wait = l.c.backoff(min(failures, 8))
		}
	}
}
