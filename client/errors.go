package client

import (
	"errors"
	"fmt"
)

// Errors returned by the client, matched with errors.Is. An error reply of
// the server is an *APIError whose Is method maps its Code to one of
// these, so errors.Is(err, client.ErrLockTimeout) works on the result of
// any call; errors.As gives the Status, Code and Message.
var (
	// ErrLockTimeout: the lock was not acquired within its Wait (409 lock_timeout).
	ErrLockTimeout = errors.New("latch: lock not acquired within its wait (lock_timeout)")
	// ErrLockLost: the handle no longer holds the lock (409 lock_lost), or a
	// keep-alive could not extend the lock before its deadline passed.
	ErrLockLost = errors.New("latch: the lock is no longer held (lock_lost)")
	// ErrPreconditionFailed: an IfEq did not match; nothing applied (409 precondition_failed).
	ErrPreconditionFailed = errors.New("latch: precondition failed (precondition_failed)")
	// ErrDuplicate: an idempotency id the caller chose was already used;
	// nothing applied (409 duplicate_request). A duplicate of an id this
	// client generated itself, met on a retry, is never ErrDuplicate: it
	// means the earlier attempt applied (see ErrReplyLost and doc.go).
	ErrDuplicate = errors.New("latch: idempotency id already used (duplicate_request)")
	// ErrReplyLost: a retried write was found to have applied on an earlier
	// attempt whose reply never arrived, so the results that reply carried
	// (a counter value, sequence ids, a lock handle, read values) are
	// unknown. The write applied exactly once.
	ErrReplyLost = errors.New("latch: the write applied on an earlier attempt but its reply was lost")
	// ErrNotFound: the key does not exist (Get of a key with version 0).
	ErrNotFound = errors.New("latch: key not found")
	// ErrOutOfRange: a counter would overflow int64 or a sequence 2^64 (409 out_of_range).
	ErrOutOfRange = errors.New("latch: counter or sequence out of range (out_of_range)")
	// ErrUnauthorized: no token or an unknown token (401 unauthorized).
	ErrUnauthorized = errors.New("latch: unauthorized: no token or an unknown token")
	// ErrForbidden: the token is valid but not for this namespace or route (403 forbidden).
	ErrForbidden = errors.New("latch: forbidden: the token does not grant this namespace or route")
	// ErrTooManyWaiters: the lock's waiter line is full (429 too_many_waiters).
	ErrTooManyWaiters = errors.New("latch: too many waiters on the lock (too_many_waiters)")
	// ErrShuttingDown: the server is stopping (503 shutting_down).
	ErrShuttingDown = errors.New("latch: the server is shutting down (shutting_down)")
	// ErrStorageFailed: the server's disk failed and it is stopping (503 storage_failed).
	ErrStorageFailed = errors.New("latch: the server's storage failed (storage_failed)")
	// ErrInvalidRequest: any 400 reply: the request is malformed or over a limit.
	ErrInvalidRequest = errors.New("latch: invalid request")
	// ErrNoReply: no complete HTTP reply arrived (connection refused,
	// reset, timed out), after any retries. A write without an
	// idempotency id, and a lock acquisition, may or may not have applied.
	// The transport's error is wrapped too: errors.As finds a
	// *net.OpError or a *tls.CertificateVerificationError (which is not
	// retried) in it.
	ErrNoReply = errors.New("latch: no reply from the server")
)

// APIError is an error reply of the server: {"Code": ..., "Message": ...}
// with its HTTP status.
type APIError struct {
	Status  int    // HTTP status
	Code    string // stable snake_case code, e.g. "lock_timeout"; empty if the body was not a latch error
	Message string // for people; may change between versions
}

func (e *APIError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("latch: HTTP %d: %s", e.Status, e.Message)
	}
	return fmt.Sprintf("latch: HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// codeErrors maps API codes to the sentinels above.
var codeErrors = map[string]error{
	"lock_timeout":        ErrLockTimeout,
	"lock_lost":           ErrLockLost,
	"precondition_failed": ErrPreconditionFailed,
	"duplicate_request":   ErrDuplicate,
	"out_of_range":        ErrOutOfRange,
	"unauthorized":        ErrUnauthorized,
	"forbidden":           ErrForbidden,
	"too_many_waiters":    ErrTooManyWaiters,
	"shutting_down":       ErrShuttingDown,
	"storage_failed":      ErrStorageFailed,
}

// Is makes errors.Is(apiErr, ErrLockTimeout) and the like work.
func (e *APIError) Is(target error) bool {
	if s, ok := codeErrors[e.Code]; ok && s == target {
		return true
	}
	switch target {
	case ErrInvalidRequest:
		return e.Status == 400
	case ErrUnauthorized:
		return e.Status == 401
	case ErrForbidden:
		return e.Status == 403
	}
	return false
}
