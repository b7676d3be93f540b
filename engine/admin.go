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
// paged: a page starts after a cursor in each shard's sorted view index
// (viewIndex) and visits at most limit+1 entries there, so a loop spends
// the same on a page with a thousand namespaces as with a million; the
// shards' parts are merged and sorted off the loop.

// ErrLockNotHeld: a force release found nobody holding the lock. It lives
// here rather than in errors.go only to keep this feature in one file.
var ErrLockNotHeld = errors.New("engine: the lock is not held")

// Paging limits of every view: entries per page when the caller gives no
// limit, and the most a caller may ask for.
const (
	DefaultPageLimit = 100
	MaxPageLimit     = 1000
)

// Paging limits of Keys, the same as every view's.
const (
	DefaultKeysLimit = DefaultPageLimit
	MaxKeysLimit     = MaxPageLimit
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

// pageLimit applies the default and the maximum of every view's limit.
func pageLimit(limit int) (int, error) {
	if limit <= 0 {
		return DefaultPageLimit, nil
	}
	if limit > MaxPageLimit {
		return 0, errorf(ErrInvalid, "limit %d is over the maximum of %d entries per page", limit, MaxPageLimit)
	}
	return limit, nil
}

// pageOf asks each shard (or only ns's) for its first limit+1 entries
// after the cursor, then keeps the first limit of them all in order; more
// says whether any entry follows the page. Each shard's part is its
// smallest entries, so the merged page is the smallest of all.
func pageOf[T any](ctx context.Context, e *Engine, ns string, limit int, part func(s *shard, n int) []T, less func(a, b T) bool) ([]T, bool, error) {
	limit, err := pageLimit(limit)
	if err != nil {
		return nil, false, err
	}
	all, err := eachShard(ctx, e, ns, func(s *shard) []T { return part(s, limit+1) })
	if err != nil {
		return nil, false, err
	}
	sort.Slice(all, func(i, j int) bool { return less(all[i], all[j]) })
	if len(all) > limit {
		return all[:limit], true, nil
	}
	return all, false, nil
}

// Cursor is where a page of locks or watches starts: after this
// namespace and key. The zero Cursor starts at the beginning.
type Cursor struct {
	Namespace string
	Key       string
}

// NamespacePage is one page of namespaces, by name.
type NamespacePage struct {
	Namespaces []NamespaceInfo
	More       bool // more follow; pass the last Name as after for them
}

// LockPage is one page of held locks, by namespace then key.
type LockPage struct {
	Locks []LockInfo
	More  bool // more follow; pass the last lock's Namespace and Key as after
}

// WatchPage is one page of watched keys, by namespace then key.
type WatchPage struct {
	Watches []WatchInfo
	More    bool // more follow; pass the last entry's Namespace and Key as after
}

// NamespacesPage lists up to limit namespaces with any state whose names
// sort after after. limit <= 0 means DefaultPageLimit; above MaxPageLimit
// is ErrInvalid. Locks counts held locks, a lock whose deadline just
// passed until its timer releases it, as Stats does.
func (e *Engine) NamespacesPage(ctx context.Context, after string, limit int) (NamespacePage, error) {
	out, more, err := pageOf(ctx, e, "", limit, func(s *shard, n int) []NamespaceInfo {
		var part []NamespaceInfo
		ascendAfter(&s.views.names, after, &s.viewVisits, func(name string) bool {
			if ns := s.nss[name]; ns != nil {
				part = append(part, NamespaceInfo{Name: name, Keys: ns.kvLen(), Counters: ns.counters.Len(), Locks: ns.held.Len(), Revision: ns.rev})
			}
			return len(part) < n
		})
		return part
	}, func(a, b NamespaceInfo) bool { return a.Name < b.Name })
	return NamespacePage{Namespaces: out, More: more}, err
}

// pivotOf is where a walk of a (namespace, key) index starts: after the
// cursor, and inside namespace ns when one is given.
func pivotOf(ns string, after Cursor) string {
	pivot := indexKey(after.Namespace, after.Key)
	if after.Namespace == "" && after.Key == "" {
		pivot = ""
	}
	if ns != "" && pivot < indexKey(ns, "") {
		// A cursor before ns: start at ns's first key (keys are never
		// empty, so skipping an entry equal to the pivot loses nothing).
		pivot = indexKey(ns, "")
	}
	return pivot
}

func lessNsKey(an, ak, bn, bk string) bool {
	if an != bn {
		return an < bn
	}
	return ak < bk
}

// LocksPage lists up to limit held locks of namespace ns ("" = every
// namespace) after the cursor, by namespace then key.
func (e *Engine) LocksPage(ctx context.Context, ns string, after Cursor, limit int) (LockPage, error) {
	pivot := pivotOf(ns, after)
	out, more, err := pageOf(ctx, e, ns, limit, func(s *shard, n int) []LockInfo {
		now := nowMs()
		var part []LockInfo
		ascendAfter(&s.views.locks, pivot, &s.viewVisits, func(k string) bool {
			name, key := splitIndexKey(k)
			if ns != "" && name != ns {
				return false
			}
			if l := s.lockOf(name, key); l != nil && l.heldAt(now) {
				part = append(part, LockInfo{Namespace: name, Key: key, Handle: l.handle, TillMs: l.deadlineMs, Waiters: l.waiters.live()})
			}
			return len(part) < n
		})
		return part
	}, func(a, b LockInfo) bool { return lessNsKey(a.Namespace, a.Key, b.Namespace, b.Key) })
	return LockPage{Locks: out, More: more}, err
}

// WatchesPage lists up to limit keys with parked watchers of namespace ns
// ("" = every namespace) after the cursor, by namespace then key.
func (e *Engine) WatchesPage(ctx context.Context, ns string, after Cursor, limit int) (WatchPage, error) {
	pivot := pivotOf(ns, after)
	out, more, err := pageOf(ctx, e, ns, limit, func(s *shard, n int) []WatchInfo {
		var part []WatchInfo
		ascendAfter(&s.views.watches, pivot, &s.viewVisits, func(k string) bool {
			name, key := splitIndexKey(k)
			if ns != "" && name != ns {
				return false
			}
			if q := s.watchQueueOf(name, key); q != nil && q.live() > 0 {
				part = append(part, WatchInfo{Namespace: name, Key: key, Watchers: q.live()})
			}
			return len(part) < n
		})
		return part
	}, func(a, b WatchInfo) bool { return lessNsKey(a.Namespace, a.Key, b.Namespace, b.Key) })
	return WatchPage{Watches: out, More: more}, err
}

// Namespaces lists every namespace that has any state, sorted by name,
// walking NamespacesPage a page at a time: each loop visit stays small,
// though the whole list is built in memory. For tests and tools.
func (e *Engine) Namespaces(ctx context.Context) ([]NamespaceInfo, error) {
	var all []NamespaceInfo
	after := ""
	for {
		p, err := e.NamespacesPage(ctx, after, MaxPageLimit)
		if err != nil {
			return nil, err
		}
		all = append(all, p.Namespaces...)
		if !p.More {
			return all, nil
		}
		after = p.Namespaces[len(p.Namespaces)-1].Name
	}
}

// Locks lists the held locks of namespace ns ("" = every namespace),
// sorted by namespace then key, a page at a time as Namespaces does.
func (e *Engine) Locks(ctx context.Context, ns string) ([]LockInfo, error) {
	var all []LockInfo
	var after Cursor
	for {
		p, err := e.LocksPage(ctx, ns, after, MaxPageLimit)
		if err != nil {
			return nil, err
		}
		all = append(all, p.Locks...)
		if !p.More {
			return all, nil
		}
		last := p.Locks[len(p.Locks)-1]
		after = Cursor{last.Namespace, last.Key}
	}
}

// Watches lists the keys of namespace ns ("" = every namespace) that have
// parked watchers, sorted by namespace then key, a page at a time.
func (e *Engine) Watches(ctx context.Context, ns string) ([]WatchInfo, error) {
	var all []WatchInfo
	var after Cursor
	for {
		p, err := e.WatchesPage(ctx, ns, after, MaxPageLimit)
		if err != nil {
			return nil, err
		}
		all = append(all, p.Watches...)
		if !p.More {
			return all, nil
		}
		last := p.Watches[len(p.Watches)-1]
		after = Cursor{last.Namespace, last.Key}
	}
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
		space.kv.Ascend(kvProbe(pivot), func(v kvEntry) bool {
			key := v.key()
			if !strings.HasPrefix(key, prefix) {
				return false // keys with the prefix are contiguous
			}
			if key == after {
				return true
			}
			if len(page.Keys) == limit || (len(page.Keys) > 0 && bytes+int(v.valLen) > maxKeysPageBytes) {
				page.Next = page.Keys[len(page.Keys)-1].Key
				return false
			}
			bytes += int(v.valLen)
			page.Keys = append(page.Keys, KVItem{Key: key, Value: v.value(), Version: v.version})
			return true
		})
		return page
	})
}

// Overview returns engine-wide totals, read on every loop, plus the log's
// size and the newest snapshot from the data directory.
func (e *Engine) Overview(ctx context.Context) (Overview, error) {
	type part struct{ nss, held, waiters, watchers int }
	// The shard's gauges and index sizes: O(1) per shard, however many
	// namespaces it has.
	parts, err := eachShard(ctx, e, "", func(s *shard) []part {
		return []part{{s.views.names.Len(), int(s.stats.held.Load()), int(s.stats.waiters.Load()), int(s.stats.watchers.Load())}}
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
