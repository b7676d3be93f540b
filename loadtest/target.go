package loadtest

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Target is a server the scenarios can measure. Scenarios only ever
// talk to a Target, so another server (Redis, etcd) is measured by
// implementing Target for it; *Client implements it for latch over HTTP.
type Target interface {
	// Name labels results: "latch", "redis", "etcd".
	Name() string
	// Supports returns nil if the target can run scenarios needing f,
	// else the reason it cannot (the scenario is then skipped with it).
	Supports(f Feature) error
	// Conn returns a connection for one simulated client. Scenarios call
	// it once per client and use it from that client's goroutine only, so
	// it may keep buffers; it must share the target's network pool.
	Conn() Conn
}

// Feature is something a scenario needs from a target.
type Feature string

// The features scenarios need.
const (
	FeatureKV      Feature = "kv"      // SetKV, GetKV
	FeatureCounter Feature = "counter" // Add, Counters
	FeatureLock    Feature = "lock"    // Lock with a FIFO wait, Unlock
	FeatureWatch   Feature = "watch"   // Watch on a key's version
	// FeatureFencing: lock handles strictly increase over every grant of
	// the server, so scenarios can check that they do.
	FeatureFencing Feature = "fencing"
)

// Conn is one client's view of a target. Every method is one round
// trip where the target allows it. Errors are classified for the
// per-class error counts by ErrorClass: targets return *APIError for
// refusals the server explains, and ErrBadReply wrapped for replies they
// cannot read.
type Conn interface {
	// SetKV writes value (opaque bytes) to key in namespace ns.
	SetKV(ctx context.Context, ns, key string, value []byte) error
	// GetKV reads key: its value (nil if missing) and version (0 if
	// missing).
	GetKV(ctx context.Context, ns, key string) (value []byte, version uint64, err error)
	// Add adds delta to a counter (missing counters are 0) and returns
	// the new value.
	Add(ctx context.Context, ns, key string, delta int64) (int64, error)
	// Counters reads counters (missing ones are 0).
	Counters(ctx context.Context, ns string, keys []string) ([]int64, error)
	// Lock acquires lock name, waiting up to wait in line (first come,
	// first served) while someone else holds it; hold is how long it is
	// held if never released. It returns the lock's handle.
	Lock(ctx context.Context, ns, name string, hold, wait time.Duration) (handle uint64, err error)
	// Unlock releases a lock held with handle.
	Unlock(ctx context.Context, ns, name string, handle uint64) error
	// Watch waits up to timeout until key's version differs from version
	// and returns the key's version then (equal to version on timeout).
	Watch(ctx context.Context, ns, key string, version uint64, timeout time.Duration) (uint64, error)
}

// ErrBadReply wraps a reply the target could not read.
var ErrBadReply = errors.New("loadtest: bad reply")

func badReply(out []byte, why string) error {
	if len(out) > 200 {
		out = append(out[:200:200], "..."...)
	}
	return fmt.Errorf("%w: %s: %q", ErrBadReply, why, out)
}

// ErrorClass names an error for the per-class error counts: the API's
// code for *APIError, "timeout", "canceled", "bad_reply" or "transport".
func ErrorClass(err error) string { return errorClass(err) }

// withLatency simulates a network round trip of rtt: every call sleeps
// half of it before and half after, as the original benchmark did.
type latencyTarget struct {
	Target
	half time.Duration
}

func withLatency(t Target, rtt time.Duration) Target {
	if rtt <= 0 {
		return t
	}
	return latencyTarget{Target: t, half: rtt / 2}
}

func (t latencyTarget) Conn() Conn { return latencyConn{c: t.Target.Conn(), half: t.half} }

type latencyConn struct {
	c    Conn
	half time.Duration
}

func (l latencyConn) SetKV(ctx context.Context, ns, key string, value []byte) error {
	time.Sleep(l.half)
	defer time.Sleep(l.half)
	return l.c.SetKV(ctx, ns, key, value)
}

func (l latencyConn) GetKV(ctx context.Context, ns, key string) ([]byte, uint64, error) {
	time.Sleep(l.half)
	defer time.Sleep(l.half)
	return l.c.GetKV(ctx, ns, key)
}

func (l latencyConn) Add(ctx context.Context, ns, key string, delta int64) (int64, error) {
	time.Sleep(l.half)
	defer time.Sleep(l.half)
	return l.c.Add(ctx, ns, key, delta)
}

func (l latencyConn) Counters(ctx context.Context, ns string, keys []string) ([]int64, error) {
	time.Sleep(l.half)
	defer time.Sleep(l.half)
	return l.c.Counters(ctx, ns, keys)
}

func (l latencyConn) Lock(ctx context.Context, ns, name string, hold, wait time.Duration) (uint64, error) {
	time.Sleep(l.half)
	defer time.Sleep(l.half)
	return l.c.Lock(ctx, ns, name, hold, wait)
}

func (l latencyConn) Unlock(ctx context.Context, ns, name string, handle uint64) error {
	time.Sleep(l.half)
	defer time.Sleep(l.half)
	return l.c.Unlock(ctx, ns, name, handle)
}

func (l latencyConn) Watch(ctx context.Context, ns, key string, version uint64, timeout time.Duration) (uint64, error) {
	time.Sleep(l.half)
	defer time.Sleep(l.half)
	return l.c.Watch(ctx, ns, key, version, timeout)
}
