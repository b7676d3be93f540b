// Package engine is latch's state machine: namespaces of locks, KV entries
// with versions and watches, counters, sequences and idempotency ids. It
// knows nothing of HTTP.
//
// # Shards and the event loop
//
// Namespaces map to shards by FNV-1a hash. Each shard has one goroutine, its
// loop, which alone touches that shard's B-trees (tidwall/btree Map, which
// has no internal lock) and lock tables. A request for one namespace
// therefore runs start to finish on one goroutine, so "every op applies or
// none does" needs no locking: the loop evaluates the whole request against
// the current state into a list of effects, and applies them only if every
// check passed.
//
// # Effects, not requests
//
// What is logged is the list of effects (put key at version v, set counter
// to n, grant lock k to handle h until unix ms d, ...), never the raw
// request. Replay applies the same effects through the same function
// (applyEffects), so replay is deterministic and never reads the clock,
// except to decide which lock deadlines have already passed (DESIGN I3).
//
// # Durability of replies
//
// Every reply carries the wal.Ticket of the record holding its effects or,
// for a reply that changed nothing, the Ticket of the shard's latest record,
// which covers all state the reply could have read. Callers release the
// reply only after the Ticket is done (DESIGN I1). Lock grants to waiters and
// watch notifications carry their record's Ticket in the same way.
//
// # Locks
//
// A lock is held while its handle is non-zero and its deadline (unix ms) is
// in the future. Handles come from one counter per engine and strictly
// increase for the server's life: replay restores the counter past every
// handle in the log (DESIGN I4). Deadlines fire from a per-shard min-heap and
// one timer; an expired lock is handed to the next waiter. Waiters queue per
// key, first come first served (I7); each is a small struct, not a
// goroutine. A waiter's state is claimed with a compare-and-swap by either
// the loop (to grant) or the caller (to give up), never both, so a waiter
// that timed out or disconnected is never granted (I6).
//
// # Namespaces live while they hold something
//
// A namespace is created only to store something in it: a request's
// effects, a parked lock waiter, a parked watch. Reads, watches answered at
// once and refused requests look a missing namespace up as empty and
// create nothing, so they leave no state in memory, in the log or in
// snapshots. After each input the loop frees every namespace that input
// left empty: no keys, no counter other than 0 (a counter at 0 is not
// stored; it reads as 0 either way), no sequences, no lock holders or
// waiters, no watches, no idempotency ids (they leave when they expire,
// pruned by the loop). Replay frees the same namespaces at the same
// records, and Open drops empty rows that older snapshots hold.
//
// A namespace whose KV revision is above 0 is never freed, even with every
// key deleted: a fresh namespace would count versions from 1 again, and a
// client holding a version from before could see it reused for another
// value and miss the change (a watch waits while the version equals the
// one sent). Keeping the revision costs one small namespace per namespace
// that was ever written, which its writes already paid for in the log;
// only reads were free to create state, and they no longer do.
//
// # Limits on parked callers
//
// Lock waiters are bounded per lock (MaxWaitersPerLock) and in the whole
// engine (MaxLockWaiters); watches per key (MaxWatchersPerKey) and in the
// whole engine (MaxWatchers). The engine-wide waiter count is reserved by
// the loop before a waiter parks and given back by the lock's queue when
// the waiter leaves it (granted, timed out, canceled, drained), so it is
// the sum of the queues' live counts, exact once cancel notices are in.
//
// # Order of ops inside one request
//
//  1. IdempotencyIDs: any id seen within the retention window fails the
//     request (ErrDuplicate).
//  2. UnlockID/Unlock: the handle must hold the lock now (else ErrLockLost).
//  3. KVSet, in order; all sets of a request share one new revision.
//  4. Atomic, in order (IfEq is checked against the value so far).
//  5. Seq, in order.
//  6. LockID: extend (LockID == UnlockID) or acquire. If held by another,
//     the request waits whole and is evaluated again, from step 1, when its
//     turn comes.
//  7. KVGet, which sees the request's own writes.
//  8. The unlock is applied and the lock handed to its next waiter.
package engine
