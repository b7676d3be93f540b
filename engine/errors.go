package engine

import (
	"errors"
	"fmt"
)

// Sentinel errors of the engine, matched with errors.Is. Each maps to one
// HTTP status and API code in httpapi.
var (
	ErrInvalid            = errors.New("engine: invalid request")
	ErrLockTimeout        = errors.New("engine: lock not acquired within the wait time")
	ErrLockLost           = errors.New("engine: the handle does not hold the lock")
	ErrPreconditionFailed = errors.New("engine: precondition failed")
	ErrDuplicate          = errors.New("engine: duplicate request")
	ErrOverflow           = errors.New("engine: value out of range")
	ErrTooManyWaiters     = errors.New("engine: too many waiters on this lock")
	ErrTooManyWatchers    = errors.New("engine: too many watches on this key or in the server")
	ErrShuttingDown       = errors.New("engine: shutting down")
	ErrStorageFailed      = errors.New("engine: storage failed")
	ErrCanceled           = errors.New("engine: request canceled by the caller")
	ErrReplyTooLarge      = errors.New("engine: the reply would be over the request's MaxReplyBytes")
)

// Error carries a sentinel Kind and a message that says what to fix.
type Error struct {
	Kind error
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

// Unwrap lets errors.Is match the Kind.
func (e *Error) Unwrap() error { return e.Kind }

func errorf(kind error, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}
