package httpapi

import (
	"errors"
	"net/http"

	"github.com/latchkv/latch/engine"
)

// Stable API error codes. Clients match on these; never rename one.
const (
	CodeBadJSON            = "bad_json"
	CodeUnknownField       = "unknown_field"
	CodeInvalidRequest     = "invalid_request"
	CodeHandleRequired     = "handle_required"
	CodeDurationRequired   = "duration_required"
	CodeInvalidDuration    = "invalid_duration"
	CodeKeyRequired        = "key_required"
	CodeKeyTooLong         = "key_too_long"
	CodeValueRequired      = "value_required"
	CodeTooManyOps         = "too_many_ops"
	CodeInvalidNamespace   = "invalid_namespace"
	CodeBodyTooLarge       = "body_too_large"
	CodeNotFound           = "not_found"
	CodeMethodNotAllowed   = "method_not_allowed"
	CodeLockTimeout        = "lock_timeout"
	CodeLockLost           = "lock_lost"
	CodePreconditionFailed = "precondition_failed"
	CodeDuplicateRequest   = "duplicate_request"
	CodeOutOfRange         = "out_of_range"
	CodeTooManyWaiters     = "too_many_waiters" // 429: --max-waiters-per-lock or --max-lock-waiters reached
	CodeShuttingDown       = "shutting_down"
	CodeStorageFailed      = "storage_failed"
	CodeCanceled           = "canceled"
	CodeInternal           = "internal"
	// Admin API (adminapi.go).
	CodeLockNotHeld       = "lock_not_held"
	CodeNamespaceRequired = "namespace_required"

	// Security and transport limits (docs/SECURITY.md).
	CodeUnauthorized       = "unauthorized"         // 401: no bearer token, or one the server does not know
	CodeForbidden          = "forbidden"            // 403: the token is valid but not for this namespace or route
	CodeValueTooLong       = "value_too_long"       // 400: a KVSet Value over --max-value-bytes
	CodeTooManyWatchers    = "too_many_watchers"    // 429: --max-watchers-per-key or --max-watchers reached
	CodeTooManyConnections = "too_many_connections" // 503: --max-connections reached; the connection is closed
	CodeRequestTimeout     = "request_timeout"      // 408: the body did not arrive within --body-read-timeout
	CodeReplyTooLarge      = "reply_too_large"      // 400: KVGet would read over --max-reply-bytes

	// Health (health.go).
	CodeRecovering = "recovering"
)

// StatusClientClosedRequest is nginx's status for a client that went away;
// the client never sees it, but logs and metrics do.
const StatusClientClosedRequest = 499

// engineErrors maps each engine sentinel to its status and code: the one
// table that decides what a client sees.
var engineErrors = []struct {
	kind   error
	status int
	code   string
}{
	{engine.ErrInvalid, http.StatusBadRequest, CodeInvalidRequest},
	{engine.ErrLockTimeout, http.StatusConflict, CodeLockTimeout},
	{engine.ErrLockLost, http.StatusConflict, CodeLockLost},
	{engine.ErrPreconditionFailed, http.StatusConflict, CodePreconditionFailed},
	{engine.ErrDuplicate, http.StatusConflict, CodeDuplicateRequest},
	{engine.ErrOverflow, http.StatusConflict, CodeOutOfRange},
	{engine.ErrTooManyWaiters, http.StatusTooManyRequests, CodeTooManyWaiters},
	{engine.ErrTooManyWatchers, http.StatusTooManyRequests, CodeTooManyWatchers},
	{engine.ErrShuttingDown, http.StatusServiceUnavailable, CodeShuttingDown},
	{engine.ErrStorageFailed, http.StatusServiceUnavailable, CodeStorageFailed},
	{engine.ErrCanceled, StatusClientClosedRequest, CodeCanceled},
	{engine.ErrLockNotHeld, http.StatusNotFound, CodeLockNotHeld},
	{engine.ErrReplyTooLarge, http.StatusBadRequest, CodeReplyTooLarge},
}

// apiError is an error with its HTTP status and API code.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(code, msg string) *apiError {
	return &apiError{status: http.StatusBadRequest, code: code, msg: msg}
}

// classify turns any error into status, code and message.
func classify(err error) (int, string, string) {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.status, ae.code, ae.msg
	}
	for _, m := range engineErrors {
		if errors.Is(err, m.kind) {
			return m.status, m.code, err.Error()
		}
	}
	return http.StatusInternalServerError, CodeInternal, "internal error: " + err.Error()
}
