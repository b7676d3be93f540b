package wal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	twal "github.com/tidwall/wal"
)

// DefaultSegmentSize is the target size of one segment file.
const DefaultSegmentSize = 20 << 20

// Options configure a Log. The zero value is usable.
type Options struct {
	// SegmentSize is the target size of a segment file (default 20 MiB).
	SegmentSize int
	// OnFail is called once, from the committer goroutine, with the first
	// write or fsync error. The server uses it to stop.
	OnFail func(error)
	// FaultHook, if set, is called before each persistence step with
	// "write", "fsync", "dirsync", "create" (before a write that will start
	// a new segment file), "tail" (before the tail marker is moved to a new
	// segment) or "truncate" (before each segment TruncateBefore removes);
	// an error it returns is treated exactly like a failure of that step.
	// It exists for fault-injection tests.
	FaultHook func(step string) error
	// SyncHook, if set, is called after each successful fsync (from the
	// committer, from Open, or from TruncateBefore's caller) with what is
	// now durable: "fsync" (the tail segment file, durable up to size),
	// "cycle" (a segment tidwall/wal fsynced and closed while writing a
	// batch, durable at its full size) and "dirsync" (the log directory:
	// every name in it now survives a power loss; size 0; also the
	// directory of TailFile after the marker is replaced). It must not
	// call back into the Log. Power-loss tests build crash images from it
	// (engine/powerloss_test.go).
	SyncHook func(step, file string, size int64)
	// Replay is called for every valid record found at Open, in order. The
	// payload is only valid during the call.
	Replay func(seq uint64, payload []byte) error
	// StartAfter, for a directory with no log yet, makes the first record's
	// sequence StartAfter+1 (a data directory restored from a snapshot).
	StartAfter uint64
	// TailFile, if set, is the tail marker: a file outside dir that holds
	// the first sequence of the newest segment, so Open can refuse a log
	// whose newest segments are missing (see tail.go). Its directory must
	// exist.
	TailFile string
	// OnCommit, if set, is called from the committer goroutine after each
	// successful batch with its record count, its bytes on disk and how
	// long its fsync took. It runs just before the batch's Ticket resolves
	// (so metrics already count a commit whose replies were seen), on the
	// commit path: it must be cheap and must not block.
	OnCommit func(records, bytes int, fsync time.Duration)
	// OnNoRoom, if set, is called once, with the first segment whose
	// room could not be reserved on disk (see reserveSegment), and why.
	// The log works on without the reservation.
	OnNoRoom func(segment string, err error)
}

// Ticket resolves when the batch holding a record is durable, or failed.
// Many records share one Ticket. It is safe to wait on from any goroutine.
type Ticket struct {
	done chan struct{}
	err  error
	last uint64 // highest sequence in the batch
}

// Done is closed once the Ticket is resolved.
func (t *Ticket) Done() <-chan struct{} { return t.done }

// Err is the outcome; only meaningful after Done is closed.
func (t *Ticket) Err() error { return t.err }

// Wait blocks until the Ticket resolves and returns its outcome.
func (t *Ticket) Wait() error { <-t.done; return t.err }

// resolvedTicket returns an already resolved Ticket.
func resolvedTicket(err error) *Ticket {
	t := &Ticket{done: make(chan struct{}), err: err}
	close(t.done)
	return t
}

// Durable is a resolved, successful Ticket for state that needs no write.
var Durable = resolvedTicket(nil)

type batch struct {
	tb     twal.Batch
	sizes  []int // framed sizes, to mirror tidwall's segment cycling
	ticket *Ticket
}

func newBatch() *batch { return &batch{ticket: &Ticket{done: make(chan struct{})}} }

// reuse readies a committed batch to collect the next one: its buffers
// keep their capacity (tidwall/wal's Batch.Clear does), so a steady load
// stops regrowing them on every commit; the Ticket is always new, since
// callers of the old one still hold it.
func (b *batch) reuse() *batch {
	b.tb.Clear()
	b.sizes = b.sizes[:0]
	b.ticket = &Ticket{done: make(chan struct{})}
	return b
}

// maxReusedBatch bounds the buffer a committed batch may keep for the next
// one, so one burst of large records does not pin its memory for good.
const maxReusedBatch = 2 << 20

// Log is an open write-ahead log. Append is safe for concurrent use.
type Log struct {
	dir  string
	opts Options
	tl   *twal.Log

	mu      sync.Mutex
	next    uint64 // sequence of the next Append
	cur     *batch
	scratch []byte
	err     error // ErrFailed (wrapped) or ErrClosed once set

	wake     chan struct{}
	stopped  chan struct{}
	segBytes int64        // bytes in tidwall's tail segment, mirrored
	segFirst uint64       // first sequence of the tail segment (its file name), mirrored
	size     atomic.Int64 // bytes in all segment files, for Size
	first    uint64
	durable  atomic.Uint64
	marked   atomic.Uint64 // the tail marker's durable value (TailFile)
	repair   *Repair
	failOnce sync.Once
	// Only Open and then the committer reserve room, one after the other.
	noRoom   bool // a reservation failed and OnNoRoom was told
	noRoomFS bool // the file system cannot reserve at all: do not retry
}

// Open scans and, where needed, repairs the log in dir, replays it through
// opts.Replay, and starts the committer.
func Open(dir string, opts Options) (*Log, error) {
	if opts.SegmentSize <= 0 {
		opts.SegmentSize = DefaultSegmentSize
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var marked uint64
	if opts.TailFile != "" {
		if err := removeTailTemps(opts.TailFile); err != nil {
			return nil, err
		}
		// Before startAfter: a log directory deleted beside a snapshot
		// must be refused, not rebuilt empty at the snapshot's cut.
		m, err := checkTail(dir, opts.TailFile)
		if err != nil {
			return nil, err
		}
		marked = m
	}
	if err := startAfter(dir, opts.StartAfter); err != nil {
		return nil, err
	}
	replay := opts.Replay
	if replay == nil {
		replay = func(uint64, []byte) error { return nil }
	}
	res, err := scan(dir, replay)
	if err != nil {
		return nil, err
	}
	tl, err := twal.Open(dir, &twal.Options{
		NoSync:      true, // we fsync ourselves, to group-commit and inject faults
		SegmentSize: opts.SegmentSize,
		AllowEmpty:  true,
	})
	if err != nil {
		return nil, fmt.Errorf("wal: opening %s after scan: %w", dir, err)
	}
	if last, err := tl.LastIndex(); err != nil || last != res.last {
		tl.Close()
		return nil, fmt.Errorf("wal: %s: tidwall/wal sees last record %d, scan saw %d (%v)", dir, last, res.last, err)
	}
	// A new log's first segment file was just created: make its name durable.
	if err := SyncDir(dir); err != nil {
		tl.Close()
		return nil, err
	}
	segs, err := listSegments(dir)
	if err != nil || len(segs) == 0 {
		tl.Close()
		return nil, fmt.Errorf("wal: %s: no segment file after open (%v)", dir, err)
	}
	if opts.SyncHook != nil {
		opts.SyncHook("dirsync", dir, 0)
	}
	l := &Log{
		dir: dir, opts: opts, tl: tl,
		next:     res.last + 1,
		cur:      newBatch(),
		wake:     make(chan struct{}, 1),
		stopped:  make(chan struct{}),
		segBytes: res.tailBytes,
		segFirst: segs[len(segs)-1].first,
		first:    res.first,
		repair:   res.repair,
	}
	l.durable.Store(res.last)
	l.marked.Store(marked)
	// A directory from a version without the marker, or one whose marker
	// lags (a crash before it moved), is protected from here on.
	if newest := segs[len(segs)-1].first; opts.TailFile != "" && marked != newest {
		// The log directory may be new, its name not yet durable: a crash
		// must never keep a marker without the log it describes.
		if err := SyncDir(filepath.Dir(opts.TailFile)); err != nil {
			tl.Close()
			return nil, err
		}
		l.synced("dirsync", filepath.Dir(opts.TailFile), 0)
		if err := l.markTail(newest); err != nil {
			tl.Close()
			return nil, err
		}
	}
	size, err := segmentBytes(dir)
	if err != nil {
		tl.Close()
		return nil, err
	}
	l.size.Store(size)
	l.reserveSegment(l.segmentPath(l.segFirst))
	go l.commitLoop()
	return l, nil
}

// Repaired reports the torn tail Open cut off, or nil.
func (l *Log) Repaired() *Repair { return l.repair }

// Size is the number of bytes in the log's segment files: what is on disk
// now, including a batch being written, less segments TruncateBefore removed.
func (l *Log) Size() int64 { return l.size.Load() }

// DurableSeq is the highest sequence number known to be on disk.
func (l *Log) DurableSeq() uint64 { return l.durable.Load() }

// Append queues payload as the next record and returns the Ticket of the
// batch that will hold it. Records are written in Append order.
func (l *Log) Append(payload []byte) *Ticket {
	l.mu.Lock()
	if l.err != nil {
		err := l.err
		l.mu.Unlock()
		return resolvedTicket(err)
	}
	l.scratch = appendFrame(l.scratch[:0], l.next, payload)
	l.cur.tb.Write(l.next, l.scratch)
	l.cur.sizes = append(l.cur.sizes, len(l.scratch))
	l.cur.ticket.last = l.next
	l.next++
	t := l.cur.ticket
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	return t
}

// commitLoop is the group-commit loop: block for work, take everything
// queued, write it once, fsync once, resolve the batch.
func (l *Log) commitLoop() {
	defer close(l.stopped)
	var spare *batch // the last committed batch, cleared, for the next swap
	for range l.wake {
		l.mu.Lock()
		b := l.cur
		closing := errors.Is(l.err, ErrClosed)
		// Decide under the lock: a batch not swapped out here is still
		// l.cur, and Append keeps adding to it.
		ready := len(b.sizes) > 0
		if ready {
			if spare != nil {
				l.cur, spare = spare, nil
			} else {
				l.cur = newBatch()
			}
		}
		l.mu.Unlock()
		if ready {
			fsync, err := l.commit(b)
			if err != nil {
				l.fail(err, b)
				return
			}
			if l.opts.OnCommit != nil {
				l.opts.OnCommit(len(b.sizes), b.bytes(), fsync)
			}
			l.durable.Store(b.ticket.last)
			close(b.ticket.done)
			if b.bytes() <= maxReusedBatch {
				spare = b.reuse()
			}
		}
		if closing {
			return
		}
	}
}

func (l *Log) step(name string) error {
	if l.opts.FaultHook != nil {
		return l.opts.FaultHook(name)
	}
	return nil
}

// commit writes and fsyncs one batch; it returns how long the fsync took.
func (l *Log) commit(b *batch) (time.Duration, error) {
	first := b.ticket.last - uint64(len(b.sizes)) + 1
	closed, tailBytes, tailFirst := l.planSegments(b.sizes, first)
	if len(closed) > 0 {
		if err := l.step("create"); err != nil {
			return 0, fmt.Errorf("segment creation: %w", err)
		}
	}
	if err := l.step("write"); err != nil {
		return 0, fmt.Errorf("write: %w", err)
	}
	if err := l.tl.WriteBatch(&b.tb); err != nil {
		return 0, fmt.Errorf("write: %w", err)
	}
	if len(closed) > 0 {
		// tidwall/wal keeps the segments it closed in memory for reads,
		// and this log never reads through it: drop them.
		if err := l.tl.ClearCache(); err != nil {
			return 0, fmt.Errorf("write: %w", err)
		}
	}
	l.size.Add(int64(b.bytes()))
	// tidwall/wal fsyncs a segment before it closes it and creates the
	// next one (cycle), so every closed segment is durable in full.
	l.segBytes, l.segFirst = tailBytes, tailFirst
	for _, c := range closed {
		l.synced("cycle", l.segmentPath(c.first), c.size)
	}
	if len(closed) > 0 {
		l.reserveSegment(l.segmentPath(l.segFirst))
	}
	if err := l.step("fsync"); err != nil {
		return 0, fmt.Errorf("fsync: %w", err)
	}
	var fsync time.Duration
	if fsyncEnabled {
		start := time.Now()
		if err := l.tl.Sync(); err != nil {
			return 0, fmt.Errorf("fsync: %w", err)
		}
		fsync = time.Since(start)
		l.synced("fsync", l.segmentPath(l.segFirst), l.segBytes)
	}
	if len(closed) > 0 {
		if err := l.step("dirsync"); err != nil {
			return fsync, fmt.Errorf("directory fsync: %w", err)
		}
		if fsyncEnabled {
			if err := SyncDir(l.dir); err != nil {
				return fsync, err
			}
			l.synced("dirsync", l.dir, 0)
		}
		// The new segment's name is durable; no record in it is
		// acknowledged before the marker names it.
		if l.opts.TailFile != "" {
			if err := l.step("tail"); err != nil {
				return fsync, fmt.Errorf("tail marker: %w", err)
			}
			if err := l.markTail(l.segFirst); err != nil {
				return fsync, err
			}
		}
	}
	return fsync, nil
}

// bytes is the batch's size on disk: each entry is uvarint(len) + frame.
func (b *batch) bytes() int {
	n := 0
	for _, sz := range b.sizes {
		n += uvarintLen(uint64(sz)) + sz
	}
	return n
}

// segmentBytes sums the sizes of dir's segment files.
func segmentBytes(dir string) (int64, error) {
	segs, err := listSegments(dir)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, s := range segs {
		st, err := os.Stat(s.path)
		if err != nil {
			return 0, err
		}
		n += st.Size()
	}
	return n, nil
}

// synced reports a completed fsync to Options.SyncHook.
func (l *Log) synced(step, file string, size int64) {
	if l.opts.SyncHook != nil {
		l.opts.SyncHook(step, file, size)
	}
}

func (l *Log) segmentPath(first uint64) string {
	return filepath.Join(l.dir, fmt.Sprintf("%020d", first))
}

// closedSegment is a segment a batch fills, which tidwall/wal then
// fsyncs and closes before creating the next one.
type closedSegment struct {
	first uint64
	size  int64
}

// planSegments follows tidwall/wal's writeBatch rule for starting a new
// segment (before the batch if the tail is over size, and after any entry
// that brings it to size) for a batch whose records are first, first+1, ...
// It returns the segments the batch closes (so a new file is created after
// each, whose directory entry must be fsynced before acknowledging) and the
// tail segment's size and first sequence afterwards. It changes nothing.
func (l *Log) planSegments(sizes []int, first uint64) (closed []closedSegment, tailBytes int64, tailFirst uint64) {
	seg := int64(l.opts.SegmentSize)
	tailBytes, tailFirst = l.segBytes, l.segFirst
	if tailBytes > seg {
		closed = append(closed, closedSegment{tailFirst, tailBytes})
		tailBytes, tailFirst = 0, first
	}
	for i, n := range sizes {
		tailBytes += int64(uvarintLen(uint64(n)) + n)
		if tailBytes >= seg {
			closed = append(closed, closedSegment{tailFirst, tailBytes})
			tailBytes, tailFirst = 0, first+uint64(i)+1
		}
	}
	return closed, tailBytes, tailFirst
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// fail makes the log fail-stop: the failing batch, the queued one and every
// later Append resolve with ErrFailed; OnFail runs once.
func (l *Log) fail(cause error, b *batch) {
	err := fmt.Errorf("%w: %v", ErrFailed, cause)
	l.mu.Lock()
	l.err = err
	queued := l.cur
	l.cur = newBatch()
	l.mu.Unlock()
	for _, t := range []*Ticket{b.ticket, queued.ticket} {
		t.err = err
		close(t.done)
	}
	l.failOnce.Do(func() {
		if l.opts.OnFail != nil {
			l.opts.OnFail(err)
		}
	})
}

// Err returns the error that failed the log, or nil.
func (l *Log) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if errors.Is(l.err, ErrFailed) {
		return l.err
	}
	return nil
}

// Close commits everything already appended, then closes the files. Later
// Appends resolve with ErrClosed. Close returns the log's failure, if any.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.err == nil {
		l.err = ErrClosed
	}
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	<-l.stopped
	cerr := l.tl.Close()
	if err := l.Err(); err != nil {
		return err
	}
	return cerr
}

// reserveSegment reserves the tail segment's full size on disk, so that
// appends inside it can never fail for want of space: a snapshot, or
// anything else filling the disk, can then only stop the log at its next
// segment, and snapshots keep room for that (engine.LogReserveSegments).
// Without the reservation the log works as before; OnNoRoom hears of the
// first failure.
func (l *Log) reserveSegment(path string) {
	if l.noRoomFS {
		return
	}
	err := reserveRoom(path, int64(l.opts.SegmentSize))
	if err == nil {
		return
	}
	l.noRoomFS = errors.Is(err, errors.ErrUnsupported)
	if !l.noRoom && l.opts.OnNoRoom != nil {
		l.opts.OnNoRoom(path, err)
	}
	l.noRoom = true
}
