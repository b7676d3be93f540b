package engine

import (
	"errors"
	"sync/atomic"
	"time"
)

// shardStats are one shard's gauges and counters. Only the shard's loop
// writes them (plain atomic stores and adds, a few per input), so reading
// them from Stats never waits for a loop, not even one paused for a
// snapshot.
type shardStats struct {
	busyNs   atomic.Int64 // time the loop spent handling inputs, cumulative
	held     atomic.Int64 // locks with a holder
	waiters  atomic.Int64 // live lock waiters, summed over the shard's locks
	watchers atomic.Int64 // live watchers, summed over the shard's keys
}

// Stats is a point-in-time view of the engine for metrics and admin
// pages. The shards' numbers are read one by one, so the sums are not a
// single consistent cut. Waiters and Watchers count what LockWaiters
// counts: a caller that gave up leaves them when its loop hears of it,
// which under overload (a full command queue) is when the entry is popped.
type Stats struct {
	LocksHeld  int64  // locks with a holder (an expired one counts until its timer releases it)
	Waiters    int64  // requests queued on a held lock
	Watchers   int64  // parked watches
	LastHandle uint64 // highest lock handle issued
	WALBytes   int64  // bytes in the log's segment files
	// ShardBusy is, per shard, the total time its loop has spent handling
	// inputs since Open; its rate is the loop's saturation (1 = always busy).
	ShardBusy []time.Duration
	// LastSnapshot is when the newest successful snapshot's cut was taken,
	// including one restored at Open; zero if there is none.
	LastSnapshot time.Time
	// LastSnapshotTook is how long the newest snapshot this process took
	// lasted, publish and log truncation included; 0 if it took none.
	LastSnapshotTook time.Duration
	SnapshotsTaken   uint64 // snapshots published into the data directory
	SnapshotsFailed  uint64 // snapshot attempts that returned an error (not counting shutdown)
}

// Stats reads the engine's counters without stopping any loop.
func (e *Engine) Stats() Stats {
	st := Stats{
		LastHandle:       e.nextHandle.Load(),
		WALBytes:         e.log.Size(),
		ShardBusy:        make([]time.Duration, len(e.shards)),
		LastSnapshotTook: time.Duration(e.lastSnapTookNs.Load()),
		SnapshotsTaken:   e.snapshotsTaken.Load(),
		SnapshotsFailed:  e.snapshotsFailed.Load(),
	}
	for i, s := range e.shards {
		st.LocksHeld += s.stats.held.Load()
		st.Waiters += s.stats.waiters.Load()
		st.Watchers += s.stats.watchers.Load()
		st.ShardBusy[i] = time.Duration(s.stats.busyNs.Load())
	}
	if ns := e.lastSnapUnixNs.Load(); ns != 0 {
		st.LastSnapshot = time.Unix(0, ns)
	}
	return st
}

// Snapshot takes a snapshot into the data directory now, then prunes old
// snapshots and the log segments they no longer need. Writes continue
// while it is encoded.
func (e *Engine) Snapshot() (SnapshotInfo, error) {
	start := time.Now()
	info, err := e.takeSnapshot()
	if info.Path != "" {
		// Published: later recovery can use it even if pruning failed.
		e.lastSnapUnixNs.Store(start.UnixNano())
		e.lastSnapTookNs.Store(int64(info.Took))
		e.snapshotsTaken.Add(1)
	}
	if err != nil && !errors.Is(err, ErrShuttingDown) {
		e.snapshotsFailed.Add(1)
	}
	if e.cfg.OnSnapshot != nil {
		e.cfg.OnSnapshot(info, err)
	}
	return info, err
}
