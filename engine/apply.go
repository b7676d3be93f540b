package engine

import (
	"container/heap"
	"math"
)

// outcome of evaluating a request against the current state.
type outcome int

const (
	outApply outcome = iota // effects are ready to apply
	outPark                 // the lock is held by another: wait
	outFail                 // err says why; nothing applies
)

// evaluation is a request evaluated against a namespace, not yet applied.
type evaluation struct {
	resp     Response
	effs     []effect
	unlock   string // lock key released by this request, if any
	grantKey string // lock key granted or extended by this request
}

// evaluate checks a whole request and computes its effects without changing
// any state, so a failure anywhere leaves everything as it was.
func (s *shard) evaluate(ns *namespace, req *Request, nowMs int64) (*evaluation, outcome, error) {
	ev := &evaluation{}

	// 1. Idempotency ids.
	for _, id := range req.IdempotencyIDs {
		if exp, ok := ns.idem.Get(id); ok && exp > nowMs {
			return nil, outFail, errorf(ErrDuplicate, "idempotency id %q was already used in this namespace; the request was not applied again", id)
		}
	}

	// 2. The unlock's handle must hold its lock now.
	extend := req.LockID != "" && req.LockID == req.UnlockID
	if req.UnlockID != "" {
		l := ns.locks[req.UnlockID]
		if l == nil || !l.heldAt(nowMs) || l.handle != req.Unlock {
			return nil, outFail, errorf(ErrLockLost, "handle %d does not hold lock %q (it was released, expired or never granted); nothing in the request was applied", req.Unlock, req.UnlockID)
		}
	}

	// 3. KV writes share one new revision.
	if len(req.KVSet) > 0 {
		rev := ns.rev + 1
		for _, set := range req.KVSet {
			if set.Delete {
				ev.effs = append(ev.effs, effect{kind: effDelete, key: set.Key, num: rev})
			} else {
				ev.effs = append(ev.effs, effect{kind: effPut, key: set.Key, value: set.Value, num: rev})
			}
		}
	}

	// 4. Counters.
	for _, op := range req.Atomic {
		cur := s.counterValue(ns, ev.effs, op.Key)
		if op.IfEq != nil && cur != *op.IfEq {
			return nil, outFail, errorf(ErrPreconditionFailed, "counter %q is %d, not %d as IfEq requires; nothing in the request was applied", op.Key, cur, *op.IfEq)
		}
		next := cur
		switch {
		case op.Add != nil:
			a := *op.Add
			if (a > 0 && cur > math.MaxInt64-a) || (a < 0 && cur < math.MinInt64-a) {
				return nil, outFail, errorf(ErrOverflow, "adding %d to counter %q (%d) would overflow a signed 64-bit integer", a, op.Key, cur)
			}
			next = cur + a
		case op.Set != nil:
			next = *op.Set
		}
		if op.Add != nil || op.Set != nil {
			ev.effs = append(ev.effs, effect{kind: effCounter, key: op.Key, signed: next})
		}
		ev.resp.Atomic = append(ev.resp.Atomic, AtomicResult{Key: op.Key, Value: next})
	}

	// 5. Sequences.
	for _, op := range req.Seq {
		first := s.seqNext(ns, ev.effs, op.Key)
		if op.Count == 0 || first > math.MaxUint64-op.Count {
			return nil, outFail, errorf(ErrOverflow, "sequence %q cannot hand out %d more ids", op.Key, op.Count)
		}
		last := first + op.Count - 1
		ev.effs = append(ev.effs, effect{kind: effSeq, key: op.Key, num: last + 1})
		ev.resp.Seq = append(ev.resp.Seq, SeqResult{Key: op.Key, First: first, Last: last})
	}

	// 6. The lock.
	if req.LockID != "" {
		l := ns.locks[req.LockID]
		handle := uint64(0)
		switch {
		case extend:
			handle = req.Unlock
		case l != nil && l.heldAt(nowMs):
			// settleLock ran first, so a free lock has no live waiters
			// ahead of this request.
			if req.LockWaitMs <= 0 {
				return nil, outFail, errorf(ErrLockTimeout, "lock %q is held by another client (LockWait was 0)", req.LockID)
			}
			return nil, outPark, nil
		default:
			handle = s.e.nextHandle.Add(1)
		}
		till := nowMs + req.LockDurMs
		ev.effs = append(ev.effs, effect{kind: effGrant, key: req.LockID, num: handle, signed: till})
		ev.resp.Lock, ev.resp.TillMs = handle, till
		ev.grantKey = req.LockID
	}
	if req.UnlockID != "" && !extend {
		ev.effs = append(ev.effs, effect{kind: effRelease, key: req.UnlockID, num: req.Unlock})
		ev.unlock = req.UnlockID
	}

	// 7. Reads see this request's own writes. The reply's size is checked
	// here, before anything applies, so a refused read changes nothing.
	replyBytes := 0
	for i, key := range req.KVGet {
		item := s.kvValue(ns, ev.effs, key)
		replyBytes += ReplyItemBytes(key, item.Value)
		if req.MaxReplyBytes > 0 && replyBytes > req.MaxReplyBytes {
			return nil, outFail, errorf(ErrReplyTooLarge, "KVGet[%d] takes the reply past %d bytes (--max-reply-bytes); read fewer or smaller keys per request; nothing in the request was applied", i, req.MaxReplyBytes)
		}
		ev.resp.KV = append(ev.resp.KV, item)
	}

	// Idempotency ids are remembered only if everything else applies.
	if len(req.IdempotencyIDs) > 0 {
		ttl := s.e.cfg.IdempotencyTTL.Milliseconds()
		if req.IdempotencyTTLMs > 0 {
			ttl = min(ttl, req.IdempotencyTTLMs)
		}
		exp := nowMs + ttl
		for _, id := range req.IdempotencyIDs {
			ev.effs = append(ev.effs, effect{kind: effIdem, key: id, signed: exp})
		}
	}
	return ev, outApply, nil
}

// counterValue is a counter's value as seen after the pending effects.
func (s *shard) counterValue(ns *namespace, effs []effect, key string) int64 {
	for i := len(effs) - 1; i >= 0; i-- {
		if effs[i].kind == effCounter && effs[i].key == key {
			return effs[i].signed
		}
	}
	v, _ := ns.counters.Get(key)
	return v
}

// seqNext is the next id of a sequence as seen after the pending effects.
func (s *shard) seqNext(ns *namespace, effs []effect, key string) uint64 {
	for i := len(effs) - 1; i >= 0; i-- {
		if effs[i].kind == effSeq && effs[i].key == key {
			return effs[i].num
		}
	}
	if v, ok := ns.seqs.Get(key); ok {
		return v
	}
	return 1
}

// kvValue is a key as seen after the pending effects.
func (s *shard) kvValue(ns *namespace, effs []effect, key string) KVItem {
	for i := len(effs) - 1; i >= 0; i-- {
		e := &effs[i]
		if e.key != key {
			continue
		}
		switch e.kind {
		case effPut:
			return KVItem{Key: key, Value: e.value, Version: e.num}
		case effDelete:
			return KVItem{Key: key}
		}
	}
	if v, ok := ns.kvGet(key); ok {
		return KVItem{Key: key, Value: v.value(), Version: v.version}
	}
	return KVItem{Key: key}
}

// applyEffects changes state. Live requests and replay both come through
// here, which is what makes replay reproduce the state (DESIGN I3).
func (s *shard) applyEffects(ns *namespace, effs []effect) {
	for i := range effs {
		e := &effs[i]
		switch e.kind {
		case effPut:
			ns.kvPut(e.key, e.value, e.num)
			ns.rev = max(ns.rev, e.num)
		case effDelete:
			ns.kvDelete(e.key)
			ns.rev = max(ns.rev, e.num)
		case effCounter:
			if e.signed == 0 {
				ns.counters.Delete(e.key) // reads as 0 all the same; kept, it would pin the namespace
			} else {
				ns.counters.Set(e.key, e.signed)
			}
		case effSeq:
			ns.seqs.Set(e.key, e.num)
		case effGrant:
			l := ns.lock(e.key)
			l.handle, l.deadlineMs = e.num, e.signed
			ns.held.Set(e.key, heldLock{e.num, e.signed})
			s.e.observeHandle(e.num)
			if !s.replaying {
				s.deadlines.track(l)
			}
		case effRelease, effForceRelease:
			if l := ns.locks[e.key]; l != nil && l.handle == e.num {
				l.handle, l.deadlineMs = 0, 0
				ns.held.Delete(e.key)
				s.deadlines.untrack(l)
				ns.dropLockIfIdle(e.key, l)
			}
		case effIdem:
			ns.idem.Set(e.key, e.signed)
			if !s.replaying {
				heap.Push(&s.idemQueue, idemEntry{ns: ns, id: e.key, expMs: e.signed})
			}
		}
	}
}
