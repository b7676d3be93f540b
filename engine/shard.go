package engine

import (
	"container/heap"
	"time"

	"github.com/latchkv/latch/wal"
)

// shard owns the namespaces that hash to it. Everything below runs on its
// loop goroutine only, except the channels.
type shard struct {
	e    *Engine
	id   int
	cmds chan any // *doOp, *watchOp, goneNote, drainCmd, inspect
	stop chan struct{}
	done chan struct{}

	nss        map[string]*namespace
	blank      namespace    // stands in for a namespace that does not exist; never written
	dirty      []*namespace // namespaces changed by the current input, for sweep
	lastTicket *wal.Ticket  // covers every state change this shard made
	deadlines  lockHeap
	timer      *time.Timer
	timerAtMs  int64    // deadline the timer is armed for; 0 = not armed
	idemQueue  idemHeap // idempotency ids by expiry, for pruning
	buf        []byte
	replaying  bool
	stats      shardStats // written by the loop, read by Engine.Stats
	views      viewIndex  // sorted indexes the admin views page through
	viewVisits int64      // index entries admin views visited on the loop, for tests
}

type drainCmd struct{ done chan struct{} }

// inspect runs a function on the loop, where it may read the shard's state
// safely; for tests and, later, admin views. It must not block.
type inspect func()

func newShard(e *Engine, id int) *shard {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &shard{
		e: e, id: id,
		cmds:       make(chan any, 1024),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
		nss:        make(map[string]*namespace),
		lastTicket: wal.Durable,
		timer:      t,
	}
}

func nowMs() int64 { return time.Now().UnixMilli() }

// namespace returns the namespace name, creating it. Only paths about to
// store something in it call this; reads see s.view.
func (s *shard) namespace(name string) *namespace {
	ns := s.nss[name]
	if ns == nil {
		ns = newNamespace(name)
		ns.stats = &s.stats
		ns.parked = &s.e.lockWaiters
		ns.views = &s.views
		s.nss[name] = ns
	}
	s.mark(ns)
	return ns
}

// view is namespace name for reading: a missing one reads as empty,
// without being created.
func (s *shard) view(name string) *namespace {
	if ns := s.nss[name]; ns != nil {
		return ns
	}
	return &s.blank
}

// mark notes that ns may have become empty; sweep looks at it after the
// current input.
func (s *shard) mark(ns *namespace) {
	if ns != &s.blank {
		s.dirty = append(s.dirty, ns)
	}
}

// sweep frees the marked namespaces that hold nothing, so reads, refused
// requests and finished waits leave no lasting state, and a namespace
// whose state was all undone is freed; it lists the rest in the admin
// views' index. It runs between inputs, never while a handler still holds
// a namespace.
func (s *shard) sweep() {
	for _, ns := range s.dirty {
		has := ns.hasState()
		s.views.list(ns, has)
		if !has && s.nss[ns.name] == ns {
			delete(s.nss, ns.name)
		}
	}
	clear(s.dirty)
	s.dirty = s.dirty[:0]
}

// run is the event loop: one case per kind of input.
func (s *shard) run() {
	defer close(s.done)
	for {
		var start time.Time
		select {
		case c := <-s.cmds:
			start = time.Now()
			switch c := c.(type) {
			case *doOp:
				s.execute(c, false)
			case *watchOp:
				s.watch(c)
			case goneNote:
				s.gone(c)
			case drainCmd:
				s.drain()
				close(c.done)
			case inspect:
				c()
			case snapCmd:
				s.snapshotCopy(c)
			}
		case <-s.timer.C:
			start = time.Now()
			s.timerAtMs = 0
			s.fireDeadlines()
		case <-s.stop:
			return
		}
		s.housekeep()
		s.stats.busyNs.Add(int64(time.Since(start)))
	}
}

// housekeep prunes expired idempotency ids, frees empty namespaces and
// re-arms the deadline timer.
func (s *shard) housekeep() {
	s.stats.held.Store(int64(len(s.deadlines)))
	now := nowMs()
	for len(s.idemQueue) > 0 && s.idemQueue[0].expMs <= now {
		ie := heap.Pop(&s.idemQueue).(idemEntry)
		if exp, ok := ie.ns.idem.Get(ie.id); ok && exp == ie.expMs {
			ie.ns.idem.Delete(ie.id)
			s.mark(ie.ns)
		}
	}
	s.sweep()
	if len(s.deadlines) == 0 {
		return
	}
	if next := s.deadlines[0].deadlineMs; next != s.timerAtMs {
		s.timer.Reset(time.Duration(next-now) * time.Millisecond)
		s.timerAtMs = next
	}
}

// execute evaluates and applies one request. claimed is true when the
// caller (grantNext) already took the op from its wait queue.
func (s *shard) execute(op *doOp, claimed bool) {
	if !claimed && !op.waiting() {
		return // the caller gave up before we got to it
	}
	ns := s.view(op.ns)
	now := nowMs()
	req := op.req
	if !claimed && req.LockID != "" {
		s.settleLock(ns, req.LockID, now)
	}
	ev, out, err := s.evaluate(ns, req, now)
	switch out {
	case outPark:
		if claimed {
			// grantNext only runs on a free lock; reaching here is a bug.
			panic("engine: a waiter at the head of a free lock was told to wait")
		}
		ns = s.namespace(op.ns) // exists already: its lock is held
		l := ns.lock(req.LockID)
		switch {
		case s.e.draining.Load():
			err = errorf(ErrShuttingDown, "the server is shutting down; retry against the restarted server")
		case l.waiters.live() >= s.e.cfg.MaxWaitersPerLock:
			err = errorf(ErrTooManyWaiters, "lock %q already has %d waiters (the limit, --max-waiters-per-lock)", req.LockID, s.e.cfg.MaxWaitersPerLock)
		case !s.e.reserveWaiter():
			err = errorf(ErrTooManyWaiters, "the server already has %d lock waiters parked (the limit, --max-lock-waiters); retry later", s.e.cfg.MaxLockWaiters)
		default:
			l.waiters.push(op)
			if op.parked != nil {
				op.parked <- s.lastTicket // buffered 1, sent once: never blocks
			}
			return
		}
	case outApply:
		if !claimed && !op.take() {
			return
		}
		if len(ev.effs) > 0 {
			ns = s.namespace(op.ns)
		}
		t := s.commit(ns, ev.effs)
		op.reply <- result{resp: &ev.resp, ticket: t}
		if ev.unlock != "" {
			s.settleLock(ns, ev.unlock, now)
		}
		return
	}
	if claimed || op.take() {
		op.reply <- result{err: err, ticket: s.lastTicket}
	}
}

// commit applies effects, logs them and wakes the key's watchers. The
// returned Ticket is what every reply about these effects must wait for.
func (s *shard) commit(ns *namespace, effs []effect) *wal.Ticket {
	if len(effs) == 0 {
		return s.lastTicket
	}
	s.applyEffects(ns, effs)
	s.mark(ns)
	s.buf = encodeRecord(s.buf[:0], ns.name, effs)
	t := s.e.log.Append(s.buf)
	s.lastTicket = t
	for i := range effs {
		if k := effs[i].kind; k == effPut || k == effDelete {
			s.notifyWatchers(ns, effs[i].key, t)
		}
	}
	return t
}

// settleLock releases a lock whose deadline has passed and, if the lock is
// free, hands it to the first waiter still waiting.
func (s *shard) settleLock(ns *namespace, key string, now int64) {
	l := ns.locks[key]
	if l == nil {
		return
	}
	s.mark(ns)
	if l.handle != 0 && l.deadlineMs <= now {
		l.handle, l.deadlineMs = 0, 0 // expiry needs no record: replay sees the deadline
		ns.held.Delete(key)
		s.deadlines.untrack(l)
	}
	for !l.heldAt(now) {
		op, ok := l.waiters.pop()
		if !ok {
			break
		}
		if !op.take() {
			continue // timed out or disconnected: never granted (I6)
		}
		s.execute(op, true)
	}
	ns.dropLockIfIdle(key, l)
}

// fireDeadlines expires every lock whose deadline has come.
func (s *shard) fireDeadlines() {
	now := nowMs()
	for len(s.deadlines) > 0 && s.deadlines[0].deadlineMs <= now {
		l := heap.Pop(&s.deadlines).(*lockState)
		s.settleLock(l.ns, l.key, now)
	}
}

func (s *shard) watch(op *watchOp) {
	if !op.waiting() {
		return
	}
	ns := s.view(op.ns)
	cur := s.kvValue(ns, nil, op.key)
	var err error
	switch {
	case cur.Version != op.version:
		if op.take() {
			op.reply <- watchReply{res: watchResult(cur), ticket: s.lastTicket}
		}
		return
	case s.e.draining.Load():
		err = errorf(ErrShuttingDown, "the server is shutting down; retry against the restarted server")
	case ns.watchers[op.key] != nil && ns.watchers[op.key].live() >= s.e.cfg.MaxWatchersPerKey:
		err = errorf(ErrTooManyWatchers, "key %q already has %d watches (the limit, --max-watchers-per-key)", op.key, s.e.cfg.MaxWatchersPerKey)
	default:
		ns = s.namespace(op.ns) // the watch registry lives in it until the last watcher leaves
		q := ns.watchers[op.key]
		if q == nil {
			q = &waitQueue[*watchOp]{count: &s.stats.watchers}
			ns.watchers[op.key] = q
			s.views.addWatch(ns.name, op.key)
		}
		q.push(op)
		return
	}
	if op.take() {
		op.reply <- watchReply{err: err}
	}
}

// notifyWatchers replies to every watcher of key whose version now differs.
// Replies never block the loop: each watcher's channel has room for one.
func (s *shard) notifyWatchers(ns *namespace, key string, t *wal.Ticket) {
	q := ns.watchers[key]
	if q == nil {
		return
	}
	cur := s.kvValue(ns, nil, key)
	res := watchResult(cur)
	res.Shared = new(SharedReply) // one reply for all: see WatchResult.Encoded
	keep := waitQueue[*watchOp]{count: &s.stats.watchers}
	for {
		op, ok := q.pop()
		if !ok {
			break
		}
		if op.version == cur.Version {
			if op.waiting() {
				keep.push(op)
			}
			continue
		}
		if op.take() {
			op.reply <- watchReply{res: res, ticket: t}
		}
	}
	if keep.len() > 0 {
		ns.watchers[key] = &keep
	} else {
		delete(ns.watchers, key)
		s.views.dropWatch(ns.name, key)
	}
}

// gone accounts for a parked caller that gave up.
func (s *shard) gone(n goneNote) {
	ns := s.nss[n.ns]
	if ns == nil {
		return
	}
	s.mark(ns)
	if n.do != nil {
		if l := ns.locks[n.key]; l != nil {
			l.waiters.noteCanceled(n.do)
			ns.dropLockIfIdle(n.key, l)
		}
		return
	}
	if q := ns.watchers[n.key]; q != nil {
		q.noteCanceled(n.watch)
		if q.live() == 0 {
			delete(ns.watchers, n.key)
			s.views.dropWatch(ns.name, n.key)
		}
	}
}

// drain fails every parked waiter and watcher: the server is stopping.
func (s *shard) drain() {
	err := errorf(ErrShuttingDown, "the server is shutting down; retry against the restarted server")
	for _, ns := range s.nss {
		s.mark(ns)
		for key, l := range ns.locks {
			for op, ok := l.waiters.pop(); ok; op, ok = l.waiters.pop() {
				if op.take() {
					op.reply <- result{err: err, ticket: s.lastTicket}
				}
			}
			ns.dropLockIfIdle(key, l)
		}
		for key, q := range ns.watchers {
			for op, ok := q.pop(); ok; op, ok = q.pop() {
				if op.take() {
					op.reply <- watchReply{err: err}
				}
			}
			delete(ns.watchers, key)
			s.views.dropWatch(ns.name, key)
		}
	}
}

// finishReplay rebuilds what replay skipped: the deadline heap of held
// locks and the pruning queue of idempotency ids. Locks whose deadline
// passed while the server was down are released here (DESIGN I5).
func (s *shard) finishReplay(now int64) {
	s.replaying = false
	clear(s.dirty)
	s.dirty = s.dirty[:0]
	for _, ns := range s.nss {
		for key, l := range ns.locks {
			if l.heldAt(now) {
				s.deadlines.track(l)
			} else {
				delete(ns.locks, key)
				ns.views.dropLock(l)
				ns.held.Delete(key)
			}
		}
		var expired []string
		ns.idem.Scan(func(id string, exp int64) bool {
			if exp <= now {
				expired = append(expired, id)
			} else {
				s.idemQueue = append(s.idemQueue, idemEntry{ns: ns, id: id, expMs: exp})
			}
			return true
		})
		for _, id := range expired {
			ns.idem.Delete(id)
		}
		// Rows of a snapshot taken before empty namespaces were freed go
		// here; the rest are listed in the admin views' index.
		s.mark(ns)
	}
	s.sweep()
	heap.Init(&s.idemQueue)
	s.stats.held.Store(int64(len(s.deadlines)))
}
