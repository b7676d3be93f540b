package engine

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/latchkv/latch/snapshot"
	"github.com/latchkv/latch/wal"
	"github.com/tidwall/btree"
)

// Snapshots live in Dir/snap as snap-<cut, 20 digits>. How one is taken:
//
//  1. Every shard loop gets a snapCmd. On it, the loop takes O(1)
//     copy-on-write Copy()s of its namespaces' B-trees, hands them over with
//     its latest Ticket, and blocks until told to resume. Once every loop is
//     blocked nothing can be appended, so the log's last sequence is an exact
//     cut: the copies hold every record up to it and none after.
//  2. The loops resume (the pause is the time from the first loop blocking
//     to the resume), and the copies are encoded and compressed off the loops
//     while writes continue on the originals.
//  3. Once the state at the cut is durable in the log, the file is published
//     atomically (snapshot.WriteFile: temp, fsync, rename, directory fsync).
//  4. Only then are older snapshots beyond SnapshotKeep deleted, and log
//     segments wholly covered by the oldest kept snapshot removed (I8).
//
// Crash points: before 3's rename the old snapshots and the whole log are
// intact; after it, recovery uses the new snapshot and replays the log after
// its cut, which is all still there; during 4 a prefix of the old files is
// gone, which recovery accepts because the kept snapshots cover it.

const snapPrefix = "snap-"

type snapCmd struct {
	copies chan<- shardCopy
	resume <-chan struct{}
}

type shardCopy struct {
	nss    []nsCopy
	ticket *wal.Ticket
}

type nsCopy struct {
	name     string
	rev      uint64
	kv       *kvTree
	counters *btree.Map[string, int64]
	seqs     *btree.Map[string, uint64]
	held     *btree.Map[string, heldLock]
	idem     *btree.Map[string, int64]
}

// snapshotCopy runs on the loop: copy, hand over, wait.
func (s *shard) snapshotCopy(c snapCmd) {
	out := shardCopy{ticket: s.lastTicket, nss: make([]nsCopy, 0, len(s.nss))}
	for _, ns := range s.nss {
		if !ns.hasDurableState() {
			continue // only parked callers, which no snapshot holds
		}
		out.nss = append(out.nss, nsCopy{
			name: ns.name, rev: ns.rev,
			kv: ns.kv.Copy(), counters: ns.counters.Copy(), seqs: ns.seqs.Copy(),
			held: ns.held.Copy(), idem: ns.idem.Copy(),
		})
	}
	c.copies <- out
	<-c.resume
}

// SnapshotInfo describes a snapshot that was taken.
type SnapshotInfo struct {
	Path    string
	Cut     uint64        // last log sequence it covers
	Bytes   int64         // file size
	Entries uint64        // entries in the body
	Pause   time.Duration // how long the loops were stopped for the copy
	Took    time.Duration // the whole snapshot, publish and truncation included
	Removed []string      // old snapshots and log segments deleted after it
}

// capture takes a consistent cut: every loop copies and pauses, then the
// log's last sequence and the handle counter are read, then the loops
// resume. The caller holds snapMu. It waits until the cut is durable.
func (e *Engine) capture() ([]shardCopy, snapshot.Header, time.Duration, error) {
	start := time.Now()
	copies := make(chan shardCopy, len(e.shards))
	resume := make(chan struct{})
	sent := 0
	for _, s := range e.shards {
		select {
		case s.cmds <- snapCmd{copies: copies, resume: resume}:
			sent++
		case <-s.done:
		}
	}
	var all []shardCopy
	var pauseStart time.Time
	for i := 0; i < sent; i++ {
		all = append(all, <-copies)
		if i == 0 {
			pauseStart = time.Now()
		}
	}
	hdr := snapshot.Header{Cut: e.log.LastSeq(), LastHandle: e.nextHandle.Load(), CreatedMs: start.UnixMilli()}
	close(resume)
	pause := time.Since(pauseStart)
	if sent < len(e.shards) {
		return nil, hdr, pause, errorf(ErrShuttingDown, "the engine is stopping")
	}
	for _, c := range all {
		if err := durable(c.ticket); err != nil {
			return nil, hdr, pause, err
		}
	}
	return all, hdr, pause, nil
}

// takeSnapshot is Snapshot without the bookkeeping for Stats.
func (e *Engine) takeSnapshot() (SnapshotInfo, error) {
	e.snapMu.Lock()
	defer e.snapMu.Unlock()
	if e.closed {
		return SnapshotInfo{}, errorf(ErrShuttingDown, "the engine is closed")
	}
	start := time.Now()
	dir := filepath.Join(e.cfg.Dir, "snap")
	if err := e.makeSnapDir(dir); err != nil {
		return SnapshotInfo{}, err
	}
	// Checked before the loops pause too: on a full disk, fail cheaply.
	room := e.snapshotRoom(dir)
	if err := room(0); err != nil {
		return SnapshotInfo{}, err
	}
	all, hdr, pause, err := e.capture()
	info := SnapshotInfo{Cut: hdr.Cut, Pause: pause}
	if err != nil {
		return info, err
	}
	name := fmt.Sprintf("%s%020d", snapPrefix, hdr.Cut)
	tr, err := snapshot.WriteFileSteps(dir, name, hdr, func(w *snapshot.Writer) error { return writeCopies(w, all) }, snapshot.PublishSteps{
		Before: func(step string) error {
			if e.cfg.FaultHook != nil {
				return e.cfg.FaultHook("snapshot-" + step)
			}
			return nil
		},
		Synced: func(step, file string, size int64) {
			if e.cfg.SyncHook != nil {
				e.cfg.SyncHook("snapshot-"+step, file, size)
			}
		},
		Reached: e.cfg.SnapshotHook,
		Room:    room,
	})
	if err != nil {
		err = fmt.Errorf("engine: writing snapshot %s: %w", name, err)
		if errors.Is(err, snapshot.ErrPublishUncertain) {
			err = fmt.Errorf("%w: %w", ErrStorageFailed, err)
			// Renamed but the directory fsync failed: whether the new
			// snapshot survives a power loss is unknown, and a retried
			// fsync may report success for what was lost (the page cache
			// marks failed pages clean). Stop, and let recovery decide
			// from what is really on disk; the log still holds everything.
			e.fatal(err)
		}
		// Before the rename nothing changed on disk but a temporary file
		// (removed): the old snapshots and the whole log are intact, so
		// the server keeps serving and the next attempt comes later.
		return info, err
	}
	e.snapshotStep("published")
	info.Path, info.Entries = filepath.Join(dir, name), tr.Entries
	if st, err := os.Stat(info.Path); err == nil {
		info.Bytes = st.Size()
	}
	e.lastSnapCut.Store(hdr.Cut)
	removed, err := e.pruneAfterSnapshot(dir)
	info.Removed = removed
	info.Took = time.Since(start)
	if err != nil {
		// Part of the truncation may or may not be durable: the directory
		// no longer matches what this process believes, and the error is
		// most likely the file system failing. Fail stop like the log
		// does; a restart recovers from the published snapshot and the
		// log after it, whichever files survived (see the crash points
		// above).
		err = fmt.Errorf("%w: removing files the new snapshot made obsolete: %w", ErrStorageFailed, err)
		e.fatal(err)
	}
	return info, err
}

// fatal stops the engine for a storage failure outside the log: nothing
// more is admitted (503 storage_failed) and OnFatal runs, so the server
// exits non-zero, as after a log failure (DESIGN I2).
func (e *Engine) fatal(err error) {
	if e.failed.Swap(true) {
		return
	}
	if e.cfg.OnFatal != nil {
		e.cfg.OnFatal(err)
	}
}

// makeSnapDir creates Dir/snap if needed and fsyncs Dir, so the
// directory's name is durable before a snapshot in it lets the log be
// truncated. It fsyncs every time (one fsync per snapshot), so a failed
// fsync on an earlier attempt cannot leave the name undurable for good.
func (e *Engine) makeSnapDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return e.syncDir(e.cfg.Dir)
}

// WriteSnapshot writes a consistent snapshot of the live state to w (for
// `latch snapshot save` over HTTP). It leaves the data directory alone.
func (e *Engine) WriteSnapshot(w io.Writer) (SnapshotInfo, error) {
	e.snapMu.Lock()
	if e.closed {
		e.snapMu.Unlock()
		return SnapshotInfo{}, errorf(ErrShuttingDown, "the engine is closed")
	}
	start := time.Now()
	all, hdr, pause, err := e.capture()
	e.snapMu.Unlock() // the copies stay valid; encoding needs no lock
	info := SnapshotInfo{Cut: hdr.Cut, Pause: pause}
	if err != nil {
		return info, err
	}
	cw := &countingWriter{w: w}
	sw, err := snapshot.NewWriter(cw, hdr)
	if err != nil {
		return info, err
	}
	if err := writeCopies(sw, all); err != nil {
		sw.Close()
		return info, err
	}
	tr, err := sw.Close()
	info.Entries, info.Bytes, info.Took = tr.Entries, cw.n, time.Since(start)
	return info, err
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func writeCopies(w *snapshot.Writer, all []shardCopy) error {
	var err error
	for _, c := range all {
		for _, ns := range c.nss {
			if err = w.Namespace(ns.name, ns.rev); err != nil {
				return err
			}
			ns.kv.Scan(func(v kvEntry) bool { err = w.KV(v.key(), v.version, v.value()); return err == nil })
			ns.counters.Scan(func(k string, v int64) bool { err = w.Counter(k, v); return err == nil })
			ns.seqs.Scan(func(k string, v uint64) bool { err = w.Seq(k, v); return err == nil })
			ns.held.Scan(func(k string, v heldLock) bool { err = w.Lock(k, v.handle, v.deadlineMs); return err == nil })
			ns.idem.Scan(func(k string, v int64) bool { err = w.Idem(k, v); return err == nil })
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// snapshotFiles lists dir's snapshots, newest (highest cut) first.
func snapshotFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, snapPrefix) && len(n) == len(snapPrefix)+20 {
			if _, err := strconv.ParseUint(n[len(snapPrefix):], 10, 64); err == nil {
				names = append(names, n)
			}
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(names)))
	return names, nil
}

func cutOf(name string) uint64 {
	v, _ := strconv.ParseUint(name[len(snapPrefix):], 10, 64)
	return v
}

// pruneAfterSnapshot keeps the newest SnapshotKeep snapshots and removes
// the log segments that the oldest kept one covers entirely, so that any
// kept snapshot can still be combined with the log.
func (e *Engine) pruneAfterSnapshot(dir string) ([]string, error) {
	names, err := snapshotFiles(dir)
	if err != nil {
		return nil, err
	}
	var removed []string
	keep := min(e.cfg.SnapshotKeep, len(names))
	for _, n := range names[keep:] {
		if e.cfg.FaultHook != nil {
			if err := e.cfg.FaultHook("truncate"); err != nil {
				return removed, fmt.Errorf("removing %s: %w", n, err)
			}
		}
		if err := os.Remove(filepath.Join(dir, n)); err != nil {
			return removed, err
		}
		removed = append(removed, n)
		e.snapshotStep("truncating")
	}
	if len(removed) > 0 {
		d, err := os.Open(dir)
		if err != nil {
			return removed, err
		}
		err = d.Sync()
		d.Close()
		if err != nil {
			return removed, fmt.Errorf("fsync of directory %s: %w", dir, err)
		}
		if e.cfg.SyncHook != nil {
			e.cfg.SyncHook("snapshot-dirsync", dir, 0)
		}
	}
	segs, err := e.log.TruncateBefore(cutOf(names[keep-1]), func() { e.snapshotStep("truncating") })
	return append(removed, segs...), err
}

func (e *Engine) snapshotStep(step string) {
	if e.cfg.SnapshotHook != nil {
		e.cfg.SnapshotHook(step)
	}
}

// loadSnapshot restores the newest readable snapshot into the shards and
// returns its cut (0 if none). A snapshot that fails its checks is renamed
// to *.broken and the next older one is tried.
func (e *Engine) loadSnapshot(info *RecoveryInfo) (uint64, error) {
	dir := filepath.Join(e.cfg.Dir, "snap")
	// A crash while a snapshot was being written leaves its temp file
	// (snap-<cut>.tmp-*): never published, so never needed. Remove them
	// so repeated crashes cannot fill the disk. The data dir is flocked,
	// so no other process is writing one.
	if temps, err := filepath.Glob(filepath.Join(dir, "*.tmp-*")); err == nil {
		for _, t := range temps {
			if err := os.Remove(t); err != nil {
				return 0, fmt.Errorf("engine: removing an unfinished snapshot: %w", err)
			}
			info.UnfinishedRemoved = append(info.UnfinishedRemoved, filepath.Base(t))
		}
	}
	names, err := snapshotFiles(dir)
	if err != nil {
		return 0, err
	}
	for _, n := range names {
		path := filepath.Join(dir, n)
		var cur *namespace
		var curShard *shard
		hdr, _, err := snapshot.ReadFile(path, func(en snapshot.Entry) error {
			if en.Tag == snapshot.TagNamespace {
				curShard = e.shardFor(en.Name)
				cur = curShard.namespace(en.Name)
				cur.rev = en.Num
				return nil
			}
			if cur == nil {
				return fmt.Errorf("%w: entry before the first namespace", snapshot.ErrCorrupt)
			}
			switch en.Tag {
			case snapshot.TagKV:
				cur.kvPut(en.Name, en.Value, en.Num)
			case snapshot.TagCounter:
				cur.counters.Set(en.Name, en.Signed)
			case snapshot.TagSeq:
				cur.seqs.Set(en.Name, en.Num)
			case snapshot.TagLock:
				curShard.applyEffects(cur, []effect{{kind: effGrant, key: en.Name, num: en.Num, signed: en.Signed}})
			case snapshot.TagIdem:
				cur.idem.Set(en.Name, en.Signed)
			}
			return nil
		})
		if err == nil {
			e.observeHandle(hdr.LastHandle)
			e.lastSnapUnixNs.Store(hdr.CreatedMs * int64(time.Millisecond))
			info.Snapshot, info.SnapshotCut = path, hdr.Cut
			return hdr.Cut, nil
		}
		if !errors.Is(err, snapshot.ErrCorrupt) {
			return 0, err
		}
		// Throw away what the damaged file built, keep it aside, try older.
		for _, s := range e.shards {
			s.nss = make(map[string]*namespace)
			s.views = viewIndex{}
		}
		e.nextHandle.Store(0)
		if rerr := os.Rename(path, path+".broken"); rerr != nil {
			return 0, rerr
		}
		info.BrokenSnapshots = append(info.BrokenSnapshots, fmt.Sprintf("%s (%v)", path+".broken", err))
	}
	return 0, nil
}

// snapshotLoop takes a snapshot every SnapshotEveryRecords records or every
// SnapshotEvery, whichever comes first, when anything was written.
func (e *Engine) snapshotLoop() {
	defer close(e.snapDone)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	last := time.Now()
	var retryAt time.Time
	for {
		select {
		case <-e.snapStop:
			return
		case <-tick.C:
		}
		written := e.log.LastSeq() - e.lastSnapCut.Load()
		if written == 0 || (written < uint64(e.cfg.SnapshotEveryRecords) && time.Since(last) < e.cfg.SnapshotEvery) || time.Now().Before(retryAt) {
			continue
		}
		last = time.Now()
		// Snapshot tells OnSnapshot of a failure; the next tick retries,
		// or a later one if there was no room.
		if _, err := e.Snapshot(); errors.Is(err, ErrSnapshotNoRoom) {
			retryAt = time.Now().Add(min(e.cfg.SnapshotEvery, noRoomRetry))
		}
	}
}
