package engine

import (
	"errors"
	"fmt"
	"time"

	"github.com/latchkv/latch/wal"
)

// LogReserveSegments is the free space, in log segments, that a snapshot
// never takes. The log reserves its current segment on disk (wal), so what
// it can still need is room for the next ones; with this much left a
// snapshot can never make the log fail, only a log that outgrows the disk
// by itself can.
const LogReserveSegments = 2

// noRoomRetry is the longest wait before trying again after a snapshot
// was refused for the log's reserve (SnapshotEvery if shorter): space
// comes back only when someone frees it, and each attempt encodes the
// state again.
const noRoomRetry = time.Minute

// ErrSnapshotNoRoom fails a snapshot that would have left less free space
// than the log's reserve. Nothing changed on disk; the server keeps serving.
var ErrSnapshotNoRoom = errors.New("engine: no room for a snapshot beside the log's reserve")

// snapshotRoom returns the check a snapshot written into dir makes before
// it starts and before each write of n bytes (snapshot.PublishSteps.Room).
func (e *Engine) snapshotRoom(dir string) func(n int) error {
	seg := int64(e.cfg.SegmentSize)
	if seg <= 0 {
		seg = wal.DefaultSegmentSize
	}
	reserve := LogReserveSegments * seg
	return func(n int) error {
		free, err := wal.FreeBytes(dir)
		if errors.Is(err, errors.ErrUnsupported) {
			return nil // cannot tell here; a full disk still fails the write itself
		}
		if err != nil {
			return fmt.Errorf("engine: free space of %s: %w", dir, err)
		}
		if free-int64(n) < reserve {
			return fmt.Errorf("%w: %d bytes free in %s, and %d more would leave less than the log's reserve of %d bytes "+
				"(%d segments of --segment-size); free some space or give the data directory a larger disk",
				ErrSnapshotNoRoom, free, dir, n, reserve, LogReserveSegments)
		}
		return nil
	}
}
