package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/latchkv/latch/wal"
)

// Admin views and the operator's force release.
//
// Every view is read on the shard loops (an inspect command per shard), the
// only goroutines allowed to touch their state, and is a copy by the time
// it is returned: it may be stale a moment later, never torn. Views are
// small fixed-cost scans meant for a page polled about once a second, not
// for the hot path.

// ErrLockNotHeld: a force release found nobody holding the lock. It lives
// here rather than in errors.go only to keep this feature in one file.
var ErrLockNotHeld = errors.New("engine: the lock is not held")

// Paging limits of Keys.
const (
	DefaultKeysLimit = 100 // keys per page when the caller gives no limit
	MaxKeysLimit     = 1000
	// maxKeysPageBytes ends a page early once its values add up to this,
	// so a page of 1,000 large values cannot hold the loop or the reply
	// hostage; Next then says where to go on.
	maxKeysPageBytes = 8 << 20
)

// NamespaceInfo is one namespace's size and KV revision.
type NamespaceInfo struct {
	Name     string
	Keys     int    // KV keys
	Counters int    // counters
	Locks    int    // held locks
	Revision uint64 // the namespace's KV revision
}

// LockInfo is one held lock.
type LockInfo struct {
	Namespace string
	Key       string
	Handle    uint64
	TillMs    int64 // deadline, unix ms
	Waiters   int   // requests queued behind the holder
}

// WatchInfo is one key with parked watchers.
type WatchInfo struct {
	Namespace string
	Key       string
	Watchers  int
}

// KeysPage is one page of a namespace's keys in key order.
type KeysPage struct {
	Keys []KVItem
	Next string // pass as after for the next page; "" on the last page
}

// Overview is engine-wide totals read on the loops, for GET /admin/stats:
// exact at one moment per shard, unlike the cheaper counters of Stats.
type Overview struct {
	Namespaces   int // as listed by Namespaces
	LocksHeld    int
	Waiters      int
	Watchers     int
	LastHandle   uint64
	WALBytes     int64              // bytes of the log's segment files on disk
	LastSnapshot *SnapshotFileStats // newest snapshot in the data directory, or nil
}

// SnapshotFileStats describes a snapshot file on disk.
type SnapshotFileStats struct {
	Path      string
	Cut       uint64 // last log record it covers
	Bytes     int64
	CreatedMs int64 // the file's modification time, unix ms
}

// ForceReleaseResult says what a force release did.
type ForceReleaseResult struct {
	Handle    uint64 // the handle that held the lock and was released
	NewHandle uint64 // the first waiter's handle, now holding it; 0 if none
	NewTillMs int64  // the new holder's deadline
}

// onLoop runs f on the loop of s and returns its result. f must not block.
// Like every reply, a view is released only once the state it read is
// durable (DESIGN I1): it waits for the shard's last Ticket at the time.
func onLoop[T any](ctx context.Context, s *shard, f func() T) (T, error) {
	type answer struct {
		v      T
		ticket *wal.Ticket
	}
	got := make(chan answer, 1)
	var zero T
	select {
	case s.cmds <- inspect(func() { v := f(); got <- answer{v, s.lastTicket} }):
	case <-ctx.Done():
		return zero, errorf(ErrCanceled, "request canceled before it ran")
	case <-s.done:
		return zero, errorf(ErrShuttingDown, "the server is shutting down")
	}
	select {
	case a := <-got:
		if err := durable(a.ticket); err != nil {
			return zero, err
		}
		return a.v, nil
	case <-ctx.Done():
		return zero, errorf(ErrCanceled, "request canceled by the caller")
	case <-s.done:
		return zero, errorf(ErrShuttingDown, "the server is shutting down")
	}
}

// eachShard runs f on every shard's loop (or only on ns's shard when ns
// is given) and concatenates the results.
func eachShard[T any](ctx context.Context, e *Engine, ns string, f func(s *shard) []T) ([]T, error) {
	shards := e.shards
	if ns != "" {
		shards = []*shard{e.shardFor(ns)}
	}
	var all []T
	for _, s := range shards {
		part, err := onLoop(ctx, s, func() []T { return f(s) })
		if err != nil {
			return nil, err
		}
		all = append(all, part...)
	}
	return all, nil
}

// namespacesOf lists the namespaces of s to look at: all, or only name.
func (s *shard) namespacesOf(name string) []*namespace {
	if name != "" {
		if ns := s.nss[name]; ns != nil {
			return []*namespace{ns}
		}
		return nil
	}
	out := make([]*namespace, 0, len(s.nss))
	for _, ns := range s.nss {
		out = append(out, ns)
	}
	return out
}

// Namespaces lists every namespace that has any state, sorted by name.
func (e *Engine) Namespaces(ctx context.Context) ([]NamespaceInfo, error) {
	out, err := eachShard(ctx, e, "", func(s *shard) []NamespaceInfo {
		now := nowMs()
		var part []NamespaceInfo
		for _, ns := range s.nss {
			held := 0
			for _, l := range ns.locks {
				if l.heldAt(now) {
					held++
				}
			}
			if !ns.hasState() {
				continue
			}
			part = append(part, NamespaceInfo{Name: ns.name, Keys: ns.kv.Len(), Counters: ns.counters.Len(), Locks: held, Revision: ns.rev})
		}
		return part
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// Locks lists the held locks of namespace ns ("" = every namespace),
// sorted by namespace then key.
func (e *Engine) Locks(ctx context.Context, ns string) ([]LockInfo, error) {
	out, err := eachShard(ctx, e, ns, func(s *shard) []LockInfo {
		now := nowMs()
		var part []LockInfo
		for _, space := range s.namespacesOf(ns) {
			for key, l := range space.locks {
				if l.heldAt(now) {
					part = append(part, LockInfo{Namespace: space.name, Key: key, Handle: l.handle, TillMs: l.deadlineMs, Waiters: l.waiters.live()})
				}
			}
		}
		return part
	})
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Key < out[j].Key
	})
	return out, err
}

// Watches lists the keys of namespace ns ("" = every namespace) that have
// parked watchers, sorted by namespace then key.
func (e *Engine) Watches(ctx context.Context, ns string) ([]WatchInfo, error) {
	out, err := eachShard(ctx, e, ns, func(s *shard) []WatchInfo {
		var part []WatchInfo
		for _, space := range s.namespacesOf(ns) {
			for key, q := range space.watchers {
				if n := q.live(); n > 0 {
					part = append(part, WatchInfo{Namespace: space.name, Key: key, Watchers: n})
				}
			}
		}
		return part
	})
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Key < out[j].Key
	})
	return out, err
}

// Keys returns up to limit keys of namespace ns that start with prefix and
// sort after after, with their values and versions. limit <= 0 means
// DefaultKeysLimit; above MaxKeysLimit is ErrInvalid. Values are the stored
// bytes (immutable, so sharing them off the loop is safe).
func (e *Engine) Keys(ctx context.Context, ns, prefix, after string, limit int) (KeysPage, error) {
	if limit <= 0 {
		limit = DefaultKeysLimit
	}
	if limit > MaxKeysLimit {
		return KeysPage{}, errorf(ErrInvalid, "limit %d is over the maximum of %d keys per page", limit, MaxKeysLimit)
	}
	s := e.shardFor(ns)
	return onLoop(ctx, s, func() KeysPage {
		var page KeysPage
		space := s.nss[ns]
		if space == nil {
			return page
		}
		pivot := prefix
		if after > pivot {
			pivot = after
		}
		bytes := 0
		space.kv.Ascend(pivot, func(key string, v kvEntry) bool {
			if !strings.HasPrefix(key, prefix) {
				return false // keys with the prefix are contiguous
			}
			if key == after {
				return true
			}
			if len(page.Keys) == limit || (len(page.Keys) > 0 && bytes+len(v.value) > maxKeysPageBytes) {
				page.Next = page.Keys[len(page.Keys)-1].Key
				return false
			}
			bytes += len(v.value)
			page.Keys = append(page.Keys, KVItem{Key: key, Value: v.value, Version: v.version})
			return true
		})
		return page
	})
}

// Overview returns engine-wide totals, read on every loop, plus the log's
// size and the newest snapshot from the data directory.
func (e *Engine) Overview(ctx context.Context) (Overview, error) {
	type part struct{ nss, held, waiters, watchers int }
	parts, err := eachShard(ctx, e, "", func(s *shard) []part {
		now := nowMs()
		var p part
		for _, ns := range s.nss {
			if ns.hasState() {
				p.nss++
			}
			for _, l := range ns.locks {
				if l.heldAt(now) {
					p.held++
				}
				p.waiters += l.waiters.live()
			}
			for _, q := range ns.watchers {
				p.watchers += q.live()
			}
		}
		return []part{p}
	})
	if err != nil {
		return Overview{}, err
	}
	st := Overview{LastHandle: e.LastHandle()}
	for _, p := range parts {
		st.Namespaces += p.nss
		st.LocksHeld += p.held
		st.Waiters += p.waiters
		st.Watchers += p.watchers
	}
	st.WALBytes = e.log.Size()
	dir := filepath.Join(e.cfg.Dir, "snap")
	if names, err := snapshotFiles(dir); err == nil && len(names) > 0 {
		newest := names[len(names)-1]
		path := filepath.Join(dir, newest)
		if fi, err := os.Stat(path); err == nil {
			st.LastSnapshot = &SnapshotFileStats{Path: path, Cut: cutOf(newest), Bytes: fi.Size(), CreatedMs: fi.ModTime().UnixMilli()}
		}
	}
	return st, nil
}

// forceReleaseReply is the loop's answer to a force release.
type forceReleaseReply struct {
	res ForceReleaseResult
	err error
}

// ForceRelease releases lock key of namespace ns whoever holds it (handle
// 0), or only if handle holds it, as an operator's override. It is logged
// as its own record kind and applied on the loop like an unlock: the old
// handle's next unlock or extend gets ErrLockLost, and the first live
// waiter is granted in FIFO order. It returns once the release, and the
// waiter's grant, are durable. ErrLockNotHeld when nobody holds the lock;
// ErrLockLost when handle is given and does not hold it.
func (e *Engine) ForceRelease(ctx context.Context, ns, key string, handle uint64) (ForceReleaseResult, error) {
	if err := e.admit(); err != nil {
		return ForceReleaseResult{}, err
	}
	s := e.shardFor(ns)
	r, err := onLoop(ctx, s, func() forceReleaseReply { return s.forceRelease(ns, key, handle) })
	if err != nil {
		return ForceReleaseResult{}, err
	}
	return r.res, r.err
}

// forceRelease runs on the loop.
func (s *shard) forceRelease(name, key string, handle uint64) forceReleaseReply {
	now := nowMs()
	ns := s.nss[name]
	var l *lockState
	if ns != nil {
		l = ns.locks[key]
	}
	if l == nil || !l.heldAt(now) {
		return forceReleaseReply{err: errorf(ErrLockNotHeld, "nothing holds lock %q in namespace %q (it was released, expired or never taken)", key, name)}
	}
	if handle != 0 && l.handle != handle {
		return forceReleaseReply{err: errorf(ErrLockLost, "handle %d does not hold lock %q in namespace %q (handle %d does); nothing was released", handle, key, name, l.handle)}
	}
	old := l.handle
	s.commit(ns, []effect{{kind: effForceRelease, key: key, num: old}})
	// The first live waiter is granted (its own record and reply), as
	// after an unlock. onLoop's reply waits for everything logged up to
	// here, the release and that grant.
	s.settleLock(ns, key, now)
	res := ForceReleaseResult{Handle: old}
	if l2 := ns.locks[key]; l2 != nil && l2.heldAt(now) {
		res.NewHandle, res.NewTillMs = l2.handle, l2.deadlineMs
	}
	return forceReleaseReply{res: res}
}
