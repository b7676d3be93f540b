package wal

import (
	"errors"
	"fmt"
)

// Sentinel errors of the wal package, matched with errors.Is.
var (
	// ErrFailed is returned for every record once a write or fsync has
	// failed. The log accepts nothing more; the process should exit.
	ErrFailed = errors.New("wal: log failed after a write or fsync error")
	// ErrClosed is returned by Append after Close.
	ErrClosed = errors.New("wal: log closed")
	// ErrCorrupt is wrapped by *CorruptError.
	ErrCorrupt = errors.New("wal: log corrupt")
)

// CorruptError reports damage that Open will not repair on its own.
type CorruptError struct {
	File   string // segment path
	Offset int64  // byte offset of the damaged entry in File
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("wal: log corrupt in %s at byte offset %d: %s; refusing to start "+
		"because acknowledged data may be lost (restore a backup with latch snapshot restore, "+
		"or set the damaged part aside with latch recover; see docs/OPERATIONS.md)",
		e.File, e.Offset, e.Reason)
}

// Unwrap lets errors.Is(err, ErrCorrupt) match.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }
