package engine

import (
	"container/heap"
	"sync"
	"sync/atomic"

	"github.com/latchkv/latch/wal"
	"github.com/tidwall/btree"
)

// lockState is one lock key: its holder (handle 0 = none) and its waiters.
type lockState struct {
	ns         *namespace
	key        string
	handle     uint64
	deadlineMs int64
	heapIdx    int // position in the shard's lockHeap, -1 when not held
	waiters    waitQueue[*doOp]
	viewKey    string // indexKey(ns.name, key), its entry in viewIndex.locks
}

func (l *lockState) heldAt(nowMs int64) bool { return l.handle != 0 && l.deadlineMs > nowMs }

// namespace is all state of one {env}. Only its shard's loop touches it.
type namespace struct {
	name     string
	rev      uint64 // bumped by every request that writes KV
	kv       *kvTree
	counters btree.Map[string, int64]
	seqs     btree.Map[string, uint64] // next id to hand out; absent = 1
	locks    map[string]*lockState
	held     btree.Map[string, heldLock] // holders, mirrored from locks for O(1) snapshot copies
	idem     btree.Map[string, int64]    // id -> expiry unix ms
	watchers map[string]*waitQueue[*watchOp]
	stats    *shardStats   // the owning shard's gauges, for new wait queues
	parked   *atomic.Int64 // the engine's count of parked lock waiters, for new lock queues
	views    *viewIndex    // the owning shard's index for admin views
	listed   bool          // in views.names: had state when last swept
}

// heldLock is a lock's holder as a value, for the held B-tree.
type heldLock struct {
	handle     uint64
	deadlineMs int64
}

func newNamespace(name string) *namespace {
	return &namespace{
		name:     name,
		kv:       newKVTree(),
		locks:    make(map[string]*lockState),
		watchers: make(map[string]*waitQueue[*watchOp]),
	}
}

// hasDurableState tells a namespace a snapshot must keep: anything the log
// wrote into it. A KV revision counts even with every key deleted, so a
// re-created namespace never hands out a version a client saw before.
func (ns *namespace) hasDurableState() bool {
	return ns.rev != 0 || ns.kvLen() > 0 || ns.counters.Len() > 0 || ns.seqs.Len() > 0 ||
		ns.held.Len() > 0 || ns.idem.Len() > 0
}

// hasState tells a namespace the shard must keep: durable state, or parked
// callers (lock states and watchers). One without is freed (shard.sweep).
func (ns *namespace) hasState() bool {
	return ns.hasDurableState() || len(ns.locks) > 0 || len(ns.watchers) > 0
}

func (ns *namespace) lock(key string) *lockState {
	l := ns.locks[key]
	if l == nil {
		l = &lockState{ns: ns, key: key, heapIdx: -1, viewKey: indexKey(ns.name, key)}
		if ns.stats != nil {
			l.waiters.count = &ns.stats.waiters
		}
		l.waiters.total = ns.parked
		ns.locks[key] = l
		ns.views.addLock(l)
	}
	return l
}

// dropLockIfIdle forgets a lock with no holder and no waiters. A lock whose
// deadline passed but that settleLock has not released yet (handle still
// set) stays: its deadline timer will settle it.
func (ns *namespace) dropLockIfIdle(key string, l *lockState) {
	if l.handle == 0 && l.waiters.live() == 0 {
		delete(ns.locks, key)
		ns.views.dropLock(l)
	}
}

// Claim states of a parked caller, shared by the loop and the caller.
const (
	stWaiting  int32 = iota
	stTaken          // the loop owns it and will reply
	stCanceled       // the caller gave up; the loop must skip it
)

// claim is a compare-and-swap token: exactly one of take and cancel wins.
// queued and noted belong to the loop alone: whether the caller is in a
// waitQueue now, and whether its cancel notice was counted there.
type claim struct {
	state         atomic.Int32
	queued, noted bool
}

func (c *claim) take() bool   { return c.state.CompareAndSwap(stWaiting, stTaken) }
func (c *claim) cancel() bool { return c.state.CompareAndSwap(stWaiting, stCanceled) }
func (c *claim) waiting() bool {
	return c.state.Load() == stWaiting
}

func (c *claim) loopState() *claim { return c }

// claimer is what a waitQueue holds: a parked caller with its claim.
type claimer interface{ loopState() *claim }

// waitQueue is a FIFO of parked callers. Canceled entries are skipped when
// popped and compacted away once they are the majority, so the heap stays
// bounded by the live waiters.
//
// live() counts every entry but those whose cancel notice (noteCanceled)
// was counted. A notice counts only for an entry still in the queue, so
// one that arrives after its entry was popped, compacted away or moved
// changes nothing: the count is exact once the notices are in.
type waitQueue[T claimer] struct {
	items []T
	head  int
	dead  int           // entries in items whose cancel notice was counted
	count *atomic.Int64 // the shard's gauge of live entries (Stats), or nil
	// total, for lock queues, is the engine's count that MaxLockWaiters
	// bounds. Only push raises live(), and the parking loop reserved that
	// slot before pushing, so account gives back decreases only.
	total *atomic.Int64
}

func (q *waitQueue[T]) push(v T) {
	before := q.live()
	c := v.loopState()
	c.queued, c.noted = true, false
	q.items = append(q.items, v)
	q.account(before)
}

// account adds the change of live() since before to the shard's gauge
// (Stats), so the gauge is always the sum of live() over its queues.
func (q *waitQueue[T]) account(before int) {
	d := q.live() - before
	if d == 0 {
		return
	}
	if q.count != nil {
		q.count.Add(int64(d))
	}
	if q.total != nil && d < 0 {
		q.total.Add(int64(d))
	}
}

func (q *waitQueue[T]) len() int { return len(q.items) - q.head }

func (q *waitQueue[T]) live() int {
	n := q.len() - q.dead
	if n < 0 {
		n = 0
	}
	return n
}

// pop removes and returns the oldest entry, waiting or not.
func (q *waitQueue[T]) pop() (T, bool) {
	var zero T
	if q.head >= len(q.items) {
		return zero, false
	}
	before := q.live()
	v := q.items[q.head]
	q.items[q.head] = zero
	q.head++
	c := v.loopState()
	if c.noted {
		q.dead--
	}
	c.queued, c.noted = false, false
	if q.head == len(q.items) {
		q.items, q.head, q.dead = q.items[:0], 0, 0
	} else if q.head > 1024 && q.head > len(q.items)/2 {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	q.account(before)
	return v, true
}

// noteCanceled counts the cancel of v, if v is still in the queue, and
// compacts when most entries are canceled.
func (q *waitQueue[T]) noteCanceled(v T) {
	c := v.loopState()
	if !c.queued || c.noted {
		return
	}
	before := q.live()
	defer q.account(before)
	c.noted = true
	q.dead++
	if q.dead > 64 && q.dead > q.len()/2 {
		kept := q.items[:0]
		for _, v := range q.items[q.head:] {
			if v.loopState().waiting() {
				kept = append(kept, v)
			} else {
				c := v.loopState()
				c.queued, c.noted = false, false
			}
		}
		clear(q.items[len(kept):])
		q.items, q.head, q.dead = kept, 0, 0
	}
}

// doOp is one Request travelling to its shard; parked in a waitQueue while
// it waits for a lock.
type doOp struct {
	claim
	ns    string
	req   *Request
	reply chan result // buffered 1; the loop sends exactly once after take
	// parked, when the request may wait (LockWait > 0), is told once when
	// the loop parks it, with the shard's last ticket at that moment.
	parked chan *wal.Ticket
}

// doOpPool holds ops with their reply channel, which are most of what a
// request allocates in the engine. Only an op that could never be parked
// (no LockWait) and whose reply its caller received goes back: the loop
// sent its one reply and dropped it, and no wait queue or cancel notice
// can still hold it.
var doOpPool = sync.Pool{New: func() any { return &doOp{reply: make(chan result, 1)} }}

func (op *doOp) recycle() {
	op.ns, op.req = "", nil
	op.state.Store(stWaiting)
	op.queued, op.noted = false, false
	doOpPool.Put(op)
}

type result struct {
	resp   *Response
	err    error
	ticket *wal.Ticket
}

// watchOp is one watch, parked until its key's version differs.
type watchOp struct {
	claim
	ns      string
	key     string
	version uint64
	reply   chan watchReply
}

type watchReply struct {
	res    WatchResult
	err    error
	ticket *wal.Ticket
}

// goneNote tells a loop that a parked caller canceled: a lock waiter (do)
// or a watch (watch), for the counts and compaction.
type goneNote struct {
	ns, key string
	do      *doOp
	watch   *watchOp
}

// lockHeap orders held locks by deadline, so one timer per shard fires
// expiries. A lock is in the heap exactly while it has a holder.
type lockHeap []*lockState

func (h lockHeap) Len() int           { return len(h) }
func (h lockHeap) Less(i, j int) bool { return h[i].deadlineMs < h[j].deadlineMs }
func (h lockHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}
func (h *lockHeap) Push(x any) {
	l := x.(*lockState)
	l.heapIdx = len(*h)
	*h = append(*h, l)
}
func (h *lockHeap) Pop() any {
	old := *h
	l := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	l.heapIdx = -1
	return l
}

// track puts a held lock in the heap, or moves it after its deadline changed.
func (h *lockHeap) track(l *lockState) {
	if l.heapIdx >= 0 {
		heap.Fix(h, l.heapIdx)
	} else {
		heap.Push(h, l)
	}
}

// untrack removes a lock that no longer has a holder.
func (h *lockHeap) untrack(l *lockState) {
	if l.heapIdx >= 0 {
		heap.Remove(h, l.heapIdx)
	}
}

// idemEntry queues an idempotency id for pruning after it expires.
type idemEntry struct {
	ns    *namespace
	id    string
	expMs int64
}

// idemHeap orders remembered idempotency ids by expiry (a request may ask
// for a shorter retention than the default, so arrival order is not
// expiry order).
type idemHeap []idemEntry

func (h idemHeap) Len() int           { return len(h) }
func (h idemHeap) Less(i, j int) bool { return h[i].expMs < h[j].expMs }
func (h idemHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *idemHeap) Push(x any)        { *h = append(*h, x.(idemEntry)) }
func (h *idemHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = idemEntry{}
	*h = old[:len(old)-1]
	return e
}
