package engine

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/latchkv/latch/wal"
)

// Defaults for Config fields left zero.
const (
	DefaultIdempotencyTTL       = 24 * time.Hour
	DefaultMaxWaitersPerLock    = 100_000
	DefaultMaxLockWaiters       = 100_000
	DefaultSnapshotEveryRecords = 500_000
	DefaultSnapshotEvery        = 15 * time.Minute
	DefaultSnapshotKeep         = 2
	DefaultMaxWatchersPerKey    = 50_000
	DefaultMaxWatchers          = 100_000
)

// Config configures an Engine.
type Config struct {
	// Dir is the data directory. The log lives in Dir/wal.
	Dir string
	// Shards is the number of event loops (default GOMAXPROCS).
	Shards int
	// IdempotencyTTL is how long an idempotency id is remembered (default 24h).
	IdempotencyTTL time.Duration
	// MaxWaitersPerLock bounds the queue of one lock (default 100,000).
	MaxWaitersPerLock int
	// MaxLockWaiters bounds the lock waiters parked in the whole engine
	// (default 100,000): each holds a caller, and over HTTP/2 many share
	// one connection, so the per-lock bound alone lets a few connections
	// park waiters on any number of locks.
	MaxLockWaiters int
	// SegmentSize is the WAL segment target size (default 20 MiB).
	SegmentSize int
	// OnFatal is called once if storage fails; the engine then acknowledges
	// nothing more. The server exits non-zero from it.
	OnFatal func(error)
	// FaultHook is passed to the WAL, for fault-injection tests.
	FaultHook func(step string) error
	// SnapshotEveryRecords takes a snapshot after this many log records
	// (default 500,000; negative: no automatic snapshots).
	SnapshotEveryRecords int
	// SnapshotEvery takes a snapshot this often if anything was written
	// (default 15 minutes).
	SnapshotEvery time.Duration
	// SnapshotKeep is how many snapshots to keep (default 2).
	SnapshotKeep int
	// OnSnapshot, if set, is told about every snapshot, periodic or asked
	// for with Snapshot, after it is published (or failed).
	OnSnapshot func(SnapshotInfo, error)
	// SnapshotHook, if set, is called at each step of taking a snapshot:
	// "written", "renamed", "published" and "truncating" (see snapshot.go).
	// Crash tests kill the process there.
	SnapshotHook func(step string)

	// Added for power-loss and fault-injection tests (issue 5). FaultHook
	// above also hears the snapshot steps "snapshot-write",
	// "snapshot-fsync", "snapshot-rename", "snapshot-dirsync" and
	// "truncate" (before each old snapshot or log segment is removed).

	// SyncHook, if set, is told after each successful fsync of the log
	// (wal.Options.SyncHook: "fsync", "cycle", "dirsync"), of a snapshot
	// ("snapshot-fsync" with the temporary file and its size,
	// "snapshot-dirsync" with the snap directory) and of the data directory
	// itself ("dirsync"). engine/powerloss_test.go builds crash images
	// from it.
	SyncHook func(step, file string, size int64)
	// MaxWatchersPerKey bounds the parked watches of one key (default
	// 50,000), so one hot key cannot take every watch slot.
	MaxWatchersPerKey int
	// MaxWatchers bounds the watches in flight in the whole engine
	// (default 100,000): each one holds a goroutine and, over HTTP/1.1,
	// a connection.
	MaxWatchers int
	// OnCommit, if set, is told about every group commit of the log: its
	// records, bytes and fsync time (wal.Options.OnCommit). For metrics;
	// it runs on the commit path, so it must be cheap.
	OnCommit func(records, bytes int, fsync time.Duration)
	// OnLogNoRoom, if set, is told once if the log could not reserve a
	// segment's room on disk (wal.Options.OnNoRoom).
	OnLogNoRoom func(segment string, err error)
}

// Engine is latch's state machine. Its methods are safe for concurrent use.
type Engine struct {
	cfg        Config
	log        *wal.Log
	shards     []*shard
	nextHandle atomic.Uint64 // the last handle issued or seen in the log
	draining   atomic.Bool
	failed     atomic.Bool
	lockFile   *os.File
	closeOnce  sync.Once
	closeErr   error
	recovered  RecoveryInfo

	snapMu      sync.Mutex // one snapshot at a time; Close waits for it
	closed      bool       // under snapMu
	lastSnapCut atomic.Uint64
	snapStop    chan struct{}
	snapDone    chan struct{}

	watchers    atomic.Int64 // Watch calls in flight, bounded by cfg.MaxWatchers
	lockWaiters atomic.Int64 // lock waiters parked, bounded by cfg.MaxLockWaiters
	// For Stats: the last successful snapshot (unix ns of its cut, 0 =
	// none), how long it took, and counts of snapshots taken and failed.
	lastSnapUnixNs  atomic.Int64
	lastSnapTookNs  atomic.Int64
	snapshotsTaken  atomic.Uint64
	snapshotsFailed atomic.Uint64
}

// RecoveryInfo says what Open found on disk.
type RecoveryInfo struct {
	Snapshot          string        // snapshot restored, or ""
	SnapshotCut       uint64        // the log sequence it covers
	BrokenSnapshots   []string      // damaged snapshots set aside as *.broken
	UnfinishedRemoved []string      // temp files of snapshots a crash interrupted, removed
	Records           uint64        // log records replayed after the snapshot
	Namespaces        int           // namespaces restored
	HeldLocks         int           // locks still held after recovery
	HandleFloor       uint64        // the data directory's handle floor, 0 if none
	Repair            *wal.Repair   // torn tail cut off, or nil
	Took              time.Duration // time spent in Open
}

// Open locks the data directory, replays the log and starts the shard loops.
func Open(cfg Config) (*Engine, error) {
	start := time.Now()
	if cfg.Dir == "" {
		return nil, errors.New("engine: Config.Dir is required")
	}
	if cfg.Shards <= 0 {
		cfg.Shards = runtime.GOMAXPROCS(0)
	}
	if cfg.IdempotencyTTL <= 0 {
		cfg.IdempotencyTTL = DefaultIdempotencyTTL
	}
	if cfg.MaxWaitersPerLock <= 0 {
		cfg.MaxWaitersPerLock = DefaultMaxWaitersPerLock
	}
	if cfg.MaxLockWaiters <= 0 {
		cfg.MaxLockWaiters = DefaultMaxLockWaiters
	}
	if cfg.SnapshotEveryRecords == 0 {
		cfg.SnapshotEveryRecords = DefaultSnapshotEveryRecords
	}
	if cfg.SnapshotEvery <= 0 {
		cfg.SnapshotEvery = DefaultSnapshotEvery
	}
	if cfg.SnapshotKeep <= 0 {
		cfg.SnapshotKeep = DefaultSnapshotKeep
	}
	if cfg.MaxWatchersPerKey <= 0 {
		cfg.MaxWatchersPerKey = DefaultMaxWatchersPerKey
	}
	if cfg.MaxWatchers <= 0 {
		cfg.MaxWatchers = DefaultMaxWatchers
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	lf, err := lockDir(cfg.Dir)
	if err != nil {
		return nil, err
	}
	// Before anything is read or cleaned up (loadSnapshot removes temp
	// files in snap/, which is where a restore builds its snapshot).
	if unfinished, what, err := HasRestoreMarker(cfg.Dir); err != nil || unfinished {
		lf.Close()
		if err == nil {
			err = errUnfinishedRestore(cfg.Dir, what)
		}
		return nil, err
	}
	e := &Engine{cfg: cfg, lockFile: lf, snapStop: make(chan struct{}), snapDone: make(chan struct{})}
	for i := 0; i < cfg.Shards; i++ {
		s := newShard(e, i)
		s.replaying = true
		e.shards = append(e.shards, s)
	}
	var info RecoveryInfo
	cut, err := e.loadSnapshot(&info)
	if err != nil {
		lf.Close()
		return nil, err
	}
	e.log, err = wal.Open(filepath.Join(cfg.Dir, "wal"), wal.Options{
		SegmentSize: cfg.SegmentSize,
		FaultHook:   cfg.FaultHook,
		SyncHook:    cfg.SyncHook,
		OnFail:      e.onStorageFailure,
		StartAfter:  cut,
		OnCommit:    cfg.OnCommit,
		OnNoRoom:    cfg.OnLogNoRoom,
		TailFile:    filepath.Join(cfg.Dir, WalTailFile),
		Replay: func(seq uint64, payload []byte) error {
			if seq <= cut {
				return nil // already in the snapshot
			}
			info.Records++
			return e.replayRecord(payload)
		},
	})
	if ce := (*wal.CorruptError)(nil); errors.As(err, &ce) {
		err = fmt.Errorf("%w; to start from what comes before the damage: latch recover --data-dir %s", err, cfg.Dir)
	}
	if err != nil {
		lf.Close()
		return nil, err
	}
	// wal.Open may just have created Dir/wal: make its name durable too,
	// or a power loss could take the whole log away with it.
	if err := e.syncDir(cfg.Dir); err != nil {
		e.log.Close()
		lf.Close()
		return nil, err
	}
	if first := e.log.FirstSeq(); first > cut+1 {
		e.log.Close()
		lf.Close()
		return nil, fmt.Errorf("engine: the log in %s starts at record %d but the newest usable snapshot covers only up to record %d: "+
			"records in between are missing, acknowledged writes and held locks with them; restore a backup (latch snapshot restore), "+
			"or start from what is left with: latch recover --data-dir %s (see docs/OPERATIONS.md)", filepath.Join(cfg.Dir, "wal"), first, cut, cfg.Dir)
	}
	// A snapshot is published only once its cut is durable in the log, so
	// a log ending before the cut lost its newest segments (and its tail
	// marker with them). Appending would reuse sequence numbers the
	// snapshot already holds, and the next start would skip those records.
	if last := e.log.LastSeq(); last < cut {
		e.log.Close()
		lf.Close()
		return nil, fmt.Errorf("engine: the log in %s ends at record %d but the newest usable snapshot covers up to record %d: "+
			"the log's newest segments are missing, and any acknowledged write and held lock after record %d with them; restore a backup (latch snapshot restore), "+
			"or start from what is left with: latch recover --data-dir %s (see docs/OPERATIONS.md)", filepath.Join(cfg.Dir, "wal"), last, cut, cut, cfg.Dir)
	}
	// The floor goes in after replay, so it only ever raises the counter
	// the snapshot and the log restored (see fence.go).
	floor, err := ReadHandleFloor(cfg.Dir)
	if err != nil {
		e.log.Close()
		lf.Close()
		return nil, err
	}
	e.observeHandle(floor)
	info.HandleFloor = floor
	e.lastSnapCut.Store(cut)
	now := nowMs()
	info.Repair = e.log.Repaired()
	for _, s := range e.shards {
		s.finishReplay(now)
		info.Namespaces += len(s.nss)
		info.HeldLocks += len(s.deadlines)
		go s.run()
	}
	info.Took = time.Since(start)
	e.recovered = info
	if cfg.SnapshotEveryRecords > 0 {
		go e.snapshotLoop()
	} else {
		close(e.snapDone)
	}
	return e, nil
}

// LockDataDir takes the data directory's lock, as a running server holds
// it, for tools that must not run beside a server (snapshot restore).
func LockDataDir(dir string) (io.Closer, error) { return lockDir(dir) }

// lockDir takes an exclusive flock on Dir/LOCK so two servers never share
// one data directory.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("engine: data directory %s is in use by another latch process (flock %s/LOCK: %v)", dir, dir, err)
	}
	return f, nil
}

// Recovered reports what Open restored.
func (e *Engine) Recovered() RecoveryInfo { return e.recovered }

func (e *Engine) replayRecord(payload []byte) error {
	ns, effs, err := decodeRecord(payload)
	if err != nil {
		return err
	}
	s := e.shardFor(ns)
	s.applyEffects(s.namespace(ns), effs)
	s.sweep() // replay frees what the live loop freed
	return nil
}

// observeHandle keeps nextHandle at or above every handle seen (I4).
func (e *Engine) observeHandle(h uint64) {
	for {
		cur := e.nextHandle.Load()
		if h <= cur || e.nextHandle.CompareAndSwap(cur, h) {
			return
		}
	}
}

// LastHandle is the highest lock handle issued so far.
func (e *Engine) LastHandle() uint64 { return e.nextHandle.Load() }

// syncDir fsyncs dir so that the names created, renamed or removed in it
// survive a power loss, and tells SyncHook.
func (e *Engine) syncDir(dir string) error {
	if err := wal.SyncDir(dir); err != nil {
		return err
	}
	if e.cfg.SyncHook != nil {
		e.cfg.SyncHook("dirsync", dir, 0)
	}
	return nil
}

func (e *Engine) onStorageFailure(err error) {
	e.failed.Store(true)
	if e.cfg.OnFatal != nil {
		e.cfg.OnFatal(err)
	}
}

func (e *Engine) shardFor(ns string) *shard {
	h := fnv.New64a()
	h.Write([]byte(ns))
	return e.shards[h.Sum64()%uint64(len(e.shards))]
}

func (e *Engine) admit() error {
	if e.failed.Load() {
		return errorf(ErrStorageFailed, "the server's storage failed and it is stopping; nothing more is acknowledged")
	}
	return nil
}

// durable waits for a reply's Ticket, turning a storage failure into
// ErrStorageFailed (DESIGN I1, I2).
func durable(t *wal.Ticket) error {
	if t == nil {
		return nil
	}
	if err := t.Wait(); err != nil {
		return &Error{Kind: ErrStorageFailed, Msg: "the write could not be made durable (" + err.Error() + "); the server is stopping"}
	}
	return nil
}

// Do runs one atomic request against namespace ns. It returns once the
// reply is durable. A request that must wait for a lock waits up to
// req.LockWaitMs; canceling ctx (a disconnect) withdraws it.
func (e *Engine) Do(ctx context.Context, ns string, req *Request) (*Response, error) {
	if err := e.admit(); err != nil {
		return nil, err
	}
	s := e.shardFor(ns)
	op := doOpPool.Get().(*doOp)
	op.ns, op.req = ns, req
	var parked <-chan *wal.Ticket
	if req.LockID != "" && req.LockWaitMs > 0 {
		op.parked = make(chan *wal.Ticket, 1)
		parked = op.parked
	}
	select {
	case s.cmds <- op:
	case <-ctx.Done():
		return nil, errorf(ErrCanceled, "request canceled before it ran")
	case <-s.done:
		return nil, errorf(ErrShuttingDown, "the server is shutting down")
	}
	// LockWait counts from when the loop parks the request behind a holder,
	// never from when it was queued: a free lock is never timed out. The
	// timeout reply waits for the ticket the loop saw at parking, which
	// covers the grant it waited behind, so "lock_timeout" never reports a
	// holder that a crash could undo (DESIGN I1).
	var waitC <-chan time.Time
	var heldBy *wal.Ticket
	var r result
wait:
	for {
		select {
		case r = <-op.reply:
			if op.parked == nil {
				op.recycle()
			}
			break wait
		case heldBy = <-parked:
			parked = nil
			t := time.NewTimer(time.Duration(req.LockWaitMs) * time.Millisecond)
			defer t.Stop()
			waitC = t.C
		case <-waitC:
			if op.cancel() {
				s.noteGone(goneNote{ns: ns, key: req.LockID, do: op})
				if err := durable(heldBy); err != nil {
					return nil, err
				}
				return nil, errorf(ErrLockTimeout, "lock %q was not acquired within %d ms", req.LockID, req.LockWaitMs)
			}
			r = <-op.reply
			break wait
		case <-ctx.Done():
			if op.cancel() {
				if req.LockID != "" {
					s.noteGone(goneNote{ns: ns, key: req.LockID, do: op})
				}
				return nil, errorf(ErrCanceled, "request canceled by the caller")
			}
			r = <-op.reply
			break wait
		case <-s.done:
			if op.cancel() {
				return nil, errorf(ErrShuttingDown, "the server is shutting down")
			}
			r = <-op.reply
			break wait
		}
	}
	if err := durable(r.ticket); err != nil {
		return nil, err
	}
	if r.err != nil {
		return nil, r.err
	}
	if ctx.Err() != nil && r.resp.Lock != 0 && req.LockID != req.UnlockID {
		// Granted at the instant the caller went away: nobody holds this
		// handle, so release it rather than block others until it expires.
		go e.Do(context.Background(), ns, &Request{UnlockID: req.LockID, Unlock: r.resp.Lock}) //nolint:errcheck
		return nil, errorf(ErrCanceled, "request canceled by the caller; the lock granted to it was released")
	}
	return r.resp, nil
}

// noteGone tells the loop about a canceled waiter without blocking the
// caller; if the loop's queue is full, a goroutine delivers it later, so
// the waiter counts are exact once every notice is in.
func (s *shard) noteGone(n goneNote) {
	select {
	case s.cmds <- n:
	default:
		go func() {
			select {
			case s.cmds <- n:
			case <-s.done:
			}
		}()
	}
}

// Watch waits until key's version in ns differs from version, or timeout
// passes; then it returns the key's current state. The reply is durable.
func (e *Engine) Watch(ctx context.Context, ns, key string, version uint64, timeout time.Duration) (WatchResult, error) {
	if err := e.admit(); err != nil {
		return WatchResult{}, err
	}
	// Counted from here to the return, so the bound holds for every watch
	// that holds a caller, parked or about to be.
	if n := e.watchers.Add(1); n > int64(e.cfg.MaxWatchers) {
		e.watchers.Add(-1)
		return WatchResult{}, errorf(ErrTooManyWatchers, "the server already has %d watches in flight (the limit, --max-watchers)", e.cfg.MaxWatchers)
	}
	defer e.watchers.Add(-1)
	s := e.shardFor(ns)
	op := &watchOp{ns: ns, key: key, version: version, reply: make(chan watchReply, 1)}
	select {
	case s.cmds <- op:
	case <-ctx.Done():
		return WatchResult{}, errorf(ErrCanceled, "watch canceled before it ran")
	case <-s.done:
		return WatchResult{}, errorf(ErrShuttingDown, "the server is shutting down")
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	var r watchReply
	select {
	case r = <-op.reply:
	case <-t.C:
		if op.cancel() {
			s.noteGone(goneNote{ns: ns, key: key, watch: op})
			resp, err := e.Do(ctx, ns, &Request{KVGet: []string{key}})
			if err != nil {
				return WatchResult{}, err
			}
			return watchResult(resp.KV[0]), nil
		}
		r = <-op.reply
	case <-ctx.Done():
		if op.cancel() {
			s.noteGone(goneNote{ns: ns, key: key, watch: op})
			return WatchResult{}, errorf(ErrCanceled, "watch canceled by the caller")
		}
		r = <-op.reply
	case <-s.done:
		if op.cancel() {
			return WatchResult{}, errorf(ErrShuttingDown, "the server is shutting down")
		}
		r = <-op.reply
	}
	if err := durable(r.ticket); err != nil {
		return WatchResult{}, err
	}
	return r.res, r.err
}

// Drain fails every parked lock waiter and watcher with ErrShuttingDown and
// refuses new ones; ordinary requests keep working until Close.
func (e *Engine) Drain() {
	e.draining.Store(true)
	for _, s := range e.shards {
		c := drainCmd{done: make(chan struct{})}
		select {
		case s.cmds <- c:
			select {
			case <-c.done:
			case <-s.done: // the loop stopped before it read c
			}
		case <-s.done:
		}
	}
}

// Close stops the loops, commits and fsyncs what they logged, and closes
// the log. It returns the storage failure, if there was one.
func (e *Engine) Close() error {
	e.closeOnce.Do(func() {
		close(e.snapStop)
		<-e.snapDone
		e.snapMu.Lock()
		e.closed = true
		e.snapMu.Unlock()
		e.draining.Store(true)
		for _, s := range e.shards {
			close(s.stop)
			<-s.done
		}
		e.closeErr = e.log.Close()
		e.lockFile.Close()
	})
	return e.closeErr
}

// LockWaiters reports how many requests are queued (not holding) on the
// lock key in namespace ns, read on the owning shard's loop. It is for
// tests and observability; the number may change as soon as it returns.
func (e *Engine) LockWaiters(ns, key string) int {
	return e.countOnLoop(ns, func(space *namespace) int {
		if l := space.locks[key]; l != nil {
			return l.waiters.live()
		}
		return 0
	})
}

// countOnLoop runs count on the loop that owns namespace ns (0 if the
// namespace does not exist or the engine is closed).
func (e *Engine) countOnLoop(ns string, count func(*namespace) int) int {
	s := e.shardFor(ns)
	n, _ := onLoop(context.Background(), s, func() int {
		if space := s.nss[ns]; space != nil {
			return count(space)
		}
		return 0
	})
	return n
}

// WatchesInFlight reports how many Watch calls are running now, parked or
// about to be; MaxWatchers bounds it.
func (e *Engine) WatchesInFlight() int { return int(e.watchers.Load()) }

// KeyWatchers reports how many watches are parked on key in namespace ns,
// read on the owning shard's loop, as LockWaiters does for locks.
func (e *Engine) KeyWatchers(ns, key string) int {
	return e.countOnLoop(ns, func(space *namespace) int {
		if q := space.watchers[key]; q != nil {
			return q.live()
		}
		return 0
	})
}

// LockWaitersParked reports how many lock waiters are parked in the whole
// engine; MaxLockWaiters bounds it. Like Stats.Waiters, a waiter that gave
// up counts until its loop hears of it.
func (e *Engine) LockWaitersParked() int { return int(e.lockWaiters.Load()) }

// reserveWaiter takes one of the MaxLockWaiters slots for a waiter about to
// park; its queue gives the slot back when the waiter leaves.
func (e *Engine) reserveWaiter() bool {
	if e.lockWaiters.Add(1) > int64(e.cfg.MaxLockWaiters) {
		e.lockWaiters.Add(-1)
		return false
	}
	return true
}
