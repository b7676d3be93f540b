package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Get reads a key in the client's namespace. A missing key is ErrNotFound.
func (c *Client) Get(ctx context.Context, key string) (KV, error) {
	r, err := c.Do(ctx, c.ns, Request{KVGet: []string{key}})
	if err != nil {
		return KV{}, err
	}
	if len(r.KV) != 1 {
		return KV{}, fmt.Errorf("latch: reply to a read of %q has %d keys", key, len(r.KV))
	}
	if r.KV[0].Version == 0 {
		return r.KV[0], fmt.Errorf("%w: %q", ErrNotFound, key)
	}
	return r.KV[0], nil
}

// Set writes value, marshalled with encoding/json (a json.RawMessage is
// sent as it is), to key.
func (c *Client) Set(ctx context.Context, key string, value any) error {
	raw, err := marshalValue(value)
	if err != nil {
		return err
	}
	_, err = c.Do(ctx, c.ns, Request{KVSet: []KVSet{{Key: key, Value: raw}}})
	return err
}

// Delete removes key; deleting a missing key is not an error.
func (c *Client) Delete(ctx context.Context, key string) error {
	_, err := c.Do(ctx, c.ns, Request{KVSet: []KVSet{{Key: key, Delete: true}}})
	return err
}

func marshalValue(v any) (json.RawMessage, error) {
	if raw, ok := v.(json.RawMessage); ok {
		if !json.Valid(raw) {
			return nil, fmt.Errorf("latch: the value is not valid JSON: %.40q", raw)
		}
		return raw, nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("latch: encoding the value: %w", err)
	}
	return raw, nil
}

// Add adds delta to a counter (a missing counter is 0) and returns the new
// value. If a retry finds the add applied by an attempt whose reply was
// lost, the error is ErrReplyLost: the add applied exactly once, but its
// result is unknown.
func (c *Client) Add(ctx context.Context, key string, delta int64) (int64, error) {
	return c.counter(ctx, AtomicOp{Key: key, Add: &delta})
}

// Incr adds 1 to a counter and returns the new value.
func (c *Client) Incr(ctx context.Context, key string) (int64, error) { return c.Add(ctx, key, 1) }

// Counter reads a counter (0 if it was never written).
func (c *Client) Counter(ctx context.Context, key string) (int64, error) {
	return c.counter(ctx, AtomicOp{Key: key})
}

// CompareAndSet sets a counter to new if it is old now, else fails with
// ErrPreconditionFailed and changes nothing.
func (c *Client) CompareAndSet(ctx context.Context, key string, old, new int64) error {
	_, err := c.counter(ctx, AtomicOp{Key: key, Set: &new, IfEq: &old})
	if errors.Is(err, ErrReplyLost) {
		return nil // the set applied; its reply would only have repeated new
	}
	return err
}

func (c *Client) counter(ctx context.Context, op AtomicOp) (int64, error) {
	r, err := c.Do(ctx, c.ns, Request{Atomic: []AtomicOp{op}})
	if err != nil {
		return 0, err
	}
	if len(r.Atomic) != 1 {
		return 0, fmt.Errorf("latch: reply to a counter op on %q has %d results", op.Key, len(r.Atomic))
	}
	return r.Atomic[0].Value, nil
}

// NextSeq takes count ids (count 0 means 1) from a sequence and returns
// the first and last, inclusive. Ids are never handed out twice. After a
// lost reply the error is ErrReplyLost and those ids are skipped forever.
func (c *Client) NextSeq(ctx context.Context, key string, count uint64) (first, last uint64, err error) {
	r, err := c.Do(ctx, c.ns, Request{Seq: []SeqOp{{Key: key, Count: count}}})
	if err != nil {
		return 0, 0, err
	}
	if len(r.Seq) != 1 {
		return 0, 0, fmt.Errorf("latch: reply to a sequence op on %q has %d results", key, len(r.Seq))
	}
	return r.Seq[0].First, r.Seq[0].Last, nil
}

// Watch long-polls once: it returns key's state as soon as its version
// differs from version, or its unchanged state when timeout passes (0:
// the server's default, 30 s unless configured). Version 0 means "the key
// does not exist".
func (c *Client) Watch(ctx context.Context, key string, version uint64, timeout time.Duration) (KV, error) {
	return c.WatchNS(ctx, c.ns, key, version, timeout)
}

// WatchNS is Watch in namespace ns.
func (c *Client) WatchNS(ctx context.Context, ns, key string, version uint64, timeout time.Duration) (KV, error) {
	body, err := json.Marshal(struct {
		ID        string
		Version   uint64
		TimeoutMs int64 `json:",omitempty"`
	}{key, version, ceilMs(timeout)})
	if err != nil {
		return KV{}, err
	}
	var kv KV
	_, err = c.send(ctx, http.MethodPost, "/watch/"+url.PathEscape(ns), body, c.retry.MaxAttempts, &kv)
	return kv, err
}

// Watcher delivers a key's changes on a channel; see Client.Changes.
type Watcher struct {
	c   chan KV
	err error
}

// C delivers each new state of the key. It is closed when the watch ends;
// Err then says why.
func (w *Watcher) C() <-chan KV { return w.c }

// Err is why the watch ended: the context's error, or an error the server
// sent that retrying cannot fix (e.g. ErrUnauthorized). Valid once C is closed.
func (w *Watcher) Err() error { return w.err }

// Changes watches key from version on: it loops long-polls and sends each
// state whose version differs from the last one seen, until ctx ends.
// Start from the version you hold (0 if none: an existing key is then
// delivered at once). Missing a state is possible when several writes
// land between two polls; the last one always arrives. Transport errors
// and 503s are retried with backoff for as long as ctx lasts.
func (c *Client) Changes(ctx context.Context, key string, version uint64) *Watcher {
	w := &Watcher{c: make(chan KV)}
	go func() {
		defer close(w.c)
		failures := 0
		for {
			kv, err := c.Watch(ctx, key, version, 0)
			switch {
			case ctx.Err() != nil:
				w.err = ctx.Err()
				return
			case err != nil && retryable(err):
				failures++
				if sleepCtx(ctx, c.backoff(min(failures, 8))) != nil {
					w.err = ctx.Err()
					return
				}
				continue
			case err != nil:
				w.err = err
				return
			}
			failures = 0
			if kv.Version == version {
				continue // timed out unchanged
			}
			version = kv.Version
			select {
			case w.c <- kv:
			case <-ctx.Done():
				w.err = ctx.Err()
				return
			}
		}
	}()
	return w
}

// HeldLock is one held lock as GET /admin/locks reports it.
type HeldLock struct {
	Namespace string
	Key       string
	Handle    uint64
	TillMs    int64
	Waiters   int
}

// Till is the lock's deadline.
func (h HeldLock) Till() time.Time { return time.UnixMilli(h.TillMs) }

// AdminLocks lists held locks (all namespaces if ns is empty), sorted by
// namespace then key, following the view's pages to the last one. It
// needs the admin token when auth is on.
func (c *Client) AdminLocks(ctx context.Context, ns string) ([]HeldLock, error) {
	var all []HeldLock
	q := url.Values{"limit": {"1000"}}
	if ns != "" {
		q.Set("ns", ns)
	}
	for {
		var page struct {
			Locks []HeldLock
			Next  string
		}
		if _, err := c.send(ctx, http.MethodGet, "/admin/locks?"+q.Encode(), nil, c.retry.MaxAttempts, &page); err != nil {
			return all, err
		}
		all = append(all, page.Locks...)
		if page.Next == "" {
			return all, nil
		}
		q.Set("after", page.Next)
	}
}
