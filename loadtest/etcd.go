package loadtest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// EtcdTarget measures an etcd v3 server through its JSON gateway
// (/v3/kv/put, /v3/lock/lock, /v3/watch ...), over plain HTTP/1.1 like
// latch, so the comparison pays the same kind of client. etcd's native
// gRPC client would be faster; the gateway keeps the harness free of
// etcd's dependency tree, and BENCHMARKS.md says so.
//
// Equivalents: SetKV is a put of ns/key; Add is a compare-and-swap loop
// (range, then a txn comparing mod_revision), since etcd has no atomic
// add; Lock is the v3 lock service with a lease of the hold time (it
// queues by revision, first come, first served); Watch ranges the key
// and, if its mod_revision is still the caller's version, waits on a
// watch stream from the next revision. etcd's lock keys are its fencing
// tokens, but they are not one increasing number per grant, so the
// handle checks are skipped.
type EtcdTarget struct {
	Base string // http://127.0.0.1:2379
	hc   *http.Client
}

// NewEtcdTarget returns a target for the etcd gateway at base.
func NewEtcdTarget(base string, conns int) *EtcdTarget {
	c := NewClient(base, conns)
	return &EtcdTarget{Base: c.base, hc: c.hc}
}

// Name is "etcd".
func (e *EtcdTarget) Name() string { return "etcd" }

// Supports: everything but fencing checks.
func (e *EtcdTarget) Supports(f Feature) error {
	if f == FeatureFencing {
		return errors.New("etcd lock keys are not one increasing handle per grant")
	}
	return nil
}

// Conn returns a connection sharing the target's HTTP pool.
func (e *EtcdTarget) Conn() Conn { return &etcdConn{e: e, locks: map[uint64]etcdLock{}} }

type etcdLock struct {
	key   string
	lease string
}

type etcdConn struct {
	e     *EtcdTarget
	locks map[uint64]etcdLock
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func (c *etcdConn) call(ctx context.Context, path string, in any, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.e.Base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := c.e.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var wire struct {
			Error   string
			Message string
		}
		json.Unmarshal(data, &wire) //nolint:errcheck
		return &APIError{Status: resp.StatusCode, Code: "etcd_" + strconv.Itoa(resp.StatusCode), Message: wire.Message + wire.Error}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return badReply(data, "etcd reply")
		}
	}
	return nil
}

type etcdKV struct {
	Key         string
	Value       string
	ModRevision string `json:"mod_revision"`
}

func (c *etcdConn) rangeKey(ctx context.Context, key string) (*etcdKV, error) {
	var out struct{ Kvs []etcdKV }
	if err := c.call(ctx, "/v3/kv/range", map[string]string{"key": b64(key)}, &out); err != nil {
		return nil, err
	}
	if len(out.Kvs) == 0 {
		return nil, nil
	}
	return &out.Kvs[0], nil
}

func (c *etcdConn) SetKV(ctx context.Context, ns, key string, value []byte) error {
	return c.call(ctx, "/v3/kv/put", map[string]string{"key": b64(ns + "/" + key), "value": base64.StdEncoding.EncodeToString(value)}, nil)
}

func (c *etcdConn) GetKV(ctx context.Context, ns, key string) ([]byte, uint64, error) {
	kv, err := c.rangeKey(ctx, ns+"/"+key)
	if err != nil || kv == nil {
		return nil, 0, err
	}
	v, err := base64.StdEncoding.DecodeString(kv.Value)
	if err != nil {
		return nil, 0, badReply([]byte(kv.Value), "value is not base64")
	}
	rev, _ := strconv.ParseUint(kv.ModRevision, 10, 64)
	return v, rev, nil
}

func (c *etcdConn) counter(ctx context.Context, key string) (int64, string, error) {
	kv, err := c.rangeKey(ctx, key)
	if err != nil || kv == nil {
		return 0, "0", err
	}
	v, _ := base64.StdEncoding.DecodeString(kv.Value)
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 0, "", badReply(v, "counter is not an integer")
	}
	return n, kv.ModRevision, nil
}

func (c *etcdConn) Add(ctx context.Context, ns, key string, delta int64) (int64, error) {
	k := ns + "/" + key
	for {
		n, rev, err := c.counter(ctx, k)
		if err != nil {
			return 0, err
		}
		next := n + delta
		txn := map[string]any{
			"compare": []map[string]any{{"key": b64(k), "target": "MOD", "result": "EQUAL", "mod_revision": rev}},
			"success": []map[string]any{{"request_put": map[string]string{"key": b64(k), "value": b64(strconv.FormatInt(next, 10))}}},
		}
		var out struct{ Succeeded bool }
		if err := c.call(ctx, "/v3/kv/txn", txn, &out); err != nil {
			return 0, err
		}
		if out.Succeeded {
			return next, nil
		}
	}
}

func (c *etcdConn) Counters(ctx context.Context, ns string, keys []string) ([]int64, error) {
	out := make([]int64, len(keys))
	for i, k := range keys {
		n, _, err := c.counter(ctx, ns+"/"+k)
		if err != nil {
			return nil, err
		}
		out[i] = n
	}
	return out, nil
}

func (c *etcdConn) Lock(ctx context.Context, ns, name string, hold, wait time.Duration) (uint64, error) {
	ttl := max(int64((hold+time.Second-1)/time.Second), 1)
	var lease struct{ ID string }
	if err := c.call(ctx, "/v3/lease/grant", map[string]any{"TTL": ttl}, &lease); err != nil {
		return 0, err
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var out struct {
		Header struct{ Revision string }
		Key    string
	}
	err := c.call(wctx, "/v3/lock/lock", map[string]string{"name": b64(ns + "/" + name), "lease": lease.ID}, &out)
	if err != nil {
		// Give up the place in line: the lease holds the waiter's key.
		c.call(context.WithoutCancel(ctx), "/v3/lease/revoke", map[string]string{"ID": lease.ID}, nil) //nolint:errcheck
		if wctx.Err() != nil && ctx.Err() == nil {
			return 0, &APIError{Status: http.StatusConflict, Code: "lock_timeout", Message: "etcd lock wait ran out"}
		}
		return 0, err
	}
	h, _ := strconv.ParseUint(out.Header.Revision, 10, 64)
	c.locks[h] = etcdLock{key: out.Key, lease: lease.ID}
	return h, nil
}

func (c *etcdConn) Unlock(ctx context.Context, ns, name string, handle uint64) error {
	l, ok := c.locks[handle]
	if !ok {
		return fmt.Errorf("etcd: no lock with handle %d on this conn", handle)
	}
	delete(c.locks, handle)
	if err := c.call(ctx, "/v3/lock/unlock", map[string]string{"key": l.key}, nil); err != nil {
		return err
	}
	return c.call(ctx, "/v3/lease/revoke", map[string]string{"ID": l.lease}, nil)
}

func (c *etcdConn) Watch(ctx context.Context, ns, key string, version uint64, timeout time.Duration) (uint64, error) {
	k := ns + "/" + key
	kv, err := c.rangeKey(ctx, k)
	if err != nil {
		return 0, err
	}
	cur := uint64(0)
	if kv != nil {
		cur, _ = strconv.ParseUint(kv.ModRevision, 10, 64)
	}
	if cur != version {
		return cur, nil
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := version + 1
	if version == 0 {
		start = 0 // from now on
	}
	body, _ := json.Marshal(map[string]any{"create_request": map[string]any{"key": b64(k), "start_revision": strconv.FormatUint(start, 10)}})
	req, err := http.NewRequestWithContext(wctx, http.MethodPost, c.e.Base+"/v3/watch", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	resp, err := c.e.hc.Do(req)
	if err != nil {
		if wctx.Err() != nil && ctx.Err() == nil {
			return version, nil
		}
		return 0, err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var msg struct {
			Result struct {
				Events []struct{ Kv etcdKV }
			}
		}
		if err := dec.Decode(&msg); err != nil {
			if wctx.Err() != nil && ctx.Err() == nil {
				return version, nil // timed out with no change
			}
			if strings.Contains(err.Error(), "canceled") {
				return 0, ctx.Err()
			}
			return 0, err
		}
		for _, ev := range msg.Result.Events {
			rev, _ := strconv.ParseUint(ev.Kv.ModRevision, 10, 64)
			if rev != version {
				return rev, nil
			}
		}
	}
}
