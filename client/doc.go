// Package client is the Go client of latch's HTTP API (docs/API.md),
// using only the standard library.
//
//	c, err := client.New("http://127.0.0.1:7070", client.WithNamespace("prod"))
//	l, err := c.Lock(ctx, "deploy", client.LockOptions{TTL: 30 * time.Second, Wait: time.Minute, KeepAlive: true})
//	defer l.Unlock(ctx)
//	// l.Handle() is the fencing token; <-l.Done() fires if the lock is lost.
//
// Every call takes a context; canceling it abandons the request (a lock
// waiter then leaves the line and is never granted).
//
// # Retries
//
// A call is retried, with jittered exponential backoff (Retry), only when
// repeating it cannot do harm, and only after a failure that may be
// transient: no complete reply (ErrNoReply: refused, reset, timed out) or a
// 502, 503 or 504. By kind of request:
//
//   - Reads (KVGet, counter reads, watches, admin GETs) and lock extensions
//     are repeated as they are: doing them twice is the same as once.
//   - Writes (KVSet, counter Add/Set, Seq, an unlock) carry an idempotency
//     id. Do generates a random one per call and sends the same id on every
//     attempt; the server applies a request at most once per id (for 24 h,
//     --idempotency-ttl). If the caller gave IdempotencyIDs, those are used
//     instead. With Retry.MaxAttempts 1 no id is generated. Each id costs
//     the server about 230 bytes until it expires, so automatic ids ask to
//     be remembered only for Retry.IDTTL (10 minutes), not the server's
//     24 h: enough to outlive every attempt of the call.
//   - Lock acquisition is sent once, never retried: a request whose reply
//     was lost may have been granted, and a repeat would queue behind that
//     invisible grant (or, after expiry, take a second handle). Such a
//     failure matches ErrNoReply and says that the lock may be held until
//     its TTL. Taking a lock with a short TTL and KeepAlive bounds the cost.
//
// # Duplicates on a retry
//
// When a retry of a write gets 409 duplicate_request for the id this
// client generated, the earlier attempt applied (the id is random and was
// sent nowhere else). Do then reports success if the request asked for no
// results (Response.Deduplicated is set; Set, Delete, Unlock and
// CompareAndSet return nil), and ErrReplyLost if it did (a counter value,
// sequence ids, read values): the write applied exactly once but what its
// reply said is gone. It is never reported as ErrDuplicate, which is kept
// for ids the caller chose. With caller-chosen ids a duplicate is
// ErrDuplicate even on a retry, since the client cannot tell its own
// earlier attempt from an earlier use of the id.
//
// # Errors
//
// Error replies are *APIError (Status, Code, Message); errors.Is matches
// them against the sentinels (ErrLockTimeout, ErrLockLost, ...).
package client
