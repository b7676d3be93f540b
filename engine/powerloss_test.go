package engine

// Power-loss harness (issue 5). kill -9 loses only what the process had not
// handed to the kernel; a power loss also loses what the kernel had not
// written back. This harness runs an engine in-process with concurrent
// writers and snapshots, and records, from Config.SyncHook, what was durable
// after every fsync: each file's durable length and, after each directory
// fsync, which names in that directory are durable. It notes when every
// request was acknowledged, counted in fsync events. Afterwards it builds
// crash images of the data directory, one for a moment between two events:
//
//   - files: the durable prefix, plus any cut of the bytes written since;
//     512 B or 4 KiB chunks of those bytes zeroed (out-of-order write-back);
//     zeros where the bytes should be (a size extended, data never written);
//   - names: entries created or removed since the directory's last fsync
//     may or may not be there (new segments: missing, empty or partial;
//     snapshot temp files present or partial; a renamed snapshot missing,
//     or still under its temp name; truncated segments and snapshots back);
//
// and opens each with Open. Every image must open (only the non-durable part
// was touched), hold every write acknowledged before its moment, and hold
// nothing never requested, with each writer's requests present as a prefix
// (the log is ordered) and counters, sequences, locks and handles agreeing
// with that prefix.
//
// What the model assumes of the file system: fsynced bytes of a file and
// fsynced names of a directory survive; anything else may be lost, in whole
// sectors. Names created (or removed) in one directory reach the disk in the
// order they were made, and a segment file tidwall/wal creates implies the
// previous one complete, because tidwall/wal fsyncs a segment before it
// creates the next.
//
// LATCH_POWER_IMAGES sets how many images to check (default 1,200; the
// workload grows with it). LATCH_TEST_SEED repeats a run.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkv/latch/wal"
)

// plEvent is the durable state right after one fsync.
type plEvent struct {
	step, file string
	durLen     map[string]int64 // rel path -> bytes of it that are durable
	durNames   map[string]bool  // rel paths whose directory entry is durable
	vol        map[string]int64 // rel path -> size seen (files), -1 (directories)
	// The tail marker is replaced by rename, not appended to: its content
	// now (tail), and as of the data directory's last fsync (durTail).
	tail, durTail []byte
}

// plRecorder is the SyncHook: it keeps the event trace and the content of
// every file it has seen (files are append-only, so the longest read of a
// name holds every shorter state of it).
type plRecorder struct {
	root     string
	mu       sync.Mutex
	n        atomic.Int64 // events recorded
	events   []plEvent
	durLen   map[string]int64
	durNames map[string]bool
	durTail  []byte
	content  map[string][]byte
	problems []string
}

func newRecorder(root string) *plRecorder {
	return &plRecorder{root: root, durLen: map[string]int64{}, durNames: map[string]bool{}, content: map[string][]byte{}}
}

func (r *plRecorder) rel(path string) string {
	rel, err := filepath.Rel(r.root, path)
	if err != nil {
		return path
	}
	return filepath.ToSlash(rel)
}

func (r *plRecorder) hook(step, file string, size int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rel := r.rel(file)
	switch step {
	case "fsync", "cycle", "snapshot-fsync":
		if fi, err := os.Stat(file); step == "fsync" && (err != nil || fi.Size() != size) {
			// The wal mirrors tidwall/wal's sizes; if the mirror drifted,
			// everything this harness concludes is wrong.
			r.problems = append(r.problems, fmt.Sprintf("%s of %s reports %d bytes, the file has %v (%v)", step, rel, size, fi, err))
		}
		if size > r.durLen[rel] {
			r.durLen[rel] = size
		}
	case "dirsync", "snapshot-dirsync":
		names, err := os.ReadDir(file)
		if err != nil {
			r.problems = append(r.problems, fmt.Sprintf("%s %s: %v", step, rel, err))
			break
		}
		prefix := rel + "/"
		if rel == "." {
			prefix = ""
		}
		for n := range r.durNames {
			if strings.HasPrefix(n, prefix) && !strings.Contains(n[len(prefix):], "/") {
				delete(r.durNames, n)
			}
		}
		for _, n := range names {
			if n.Name() != "LOCK" {
				r.durNames[prefix+n.Name()] = true
			}
		}
		if rel == "." {
			r.durTail = r.readTail()
		}
	default:
		r.problems = append(r.problems, "unknown sync step "+step)
	}
	r.events = append(r.events, plEvent{step: step, file: rel, durLen: clone(r.durLen), durNames: clone(r.durNames), vol: r.look(),
		tail: r.readTail(), durTail: r.durTail})
	r.n.Store(int64(len(r.events)))
}

// readTail reads the tail marker, nil if there is none.
func (r *plRecorder) readTail() []byte {
	b, err := os.ReadFile(filepath.Join(r.root, WalTailFile))
	if err != nil {
		return nil
	}
	return b
}

// look lists the data directory (sizes, -1 for directories) and reads every
// file that grew since it was last read. The caller holds mu.
func (r *plRecorder) look() map[string]int64 {
	vol := map[string]int64{}
	for _, d := range []string{"", "wal", "snap"} {
		ents, err := os.ReadDir(filepath.Join(r.root, d))
		if err != nil {
			continue
		}
		for _, e := range ents {
			rel := e.Name()
			if d != "" {
				rel = d + "/" + rel
			}
			if rel == "LOCK" {
				continue
			}
			if e.IsDir() {
				vol[rel] = -1
				continue
			}
			fi, err := e.Info()
			if err != nil {
				continue // removed since ReadDir
			}
			vol[rel] = fi.Size()
			if fi.Size() > int64(len(r.content[rel])) {
				if b, err := os.ReadFile(filepath.Join(r.root, rel)); err == nil && len(b) > len(r.content[rel]) {
					r.content[rel] = b
				}
			}
			if int64(len(r.content[rel])) < vol[rel] {
				vol[rel] = int64(len(r.content[rel]))
			}
		}
	}
	return vol
}

func clone[V any](m map[string]V) map[string]V {
	c := make(map[string]V, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// plRequest is one request of one writer, and what became of it.
type plRequest struct {
	key    string // the key it sets
	value  string // to this value
	acked  bool
	ackAt  int64  // events recorded when the reply came
	handle uint64 // lock handle granted, if acknowledged
	lock   bool   // the request takes lock L<writer>
	unlock bool   // the request releases it
}

// plWorkload is what the writers asked for and were told.
type plWorkload struct {
	writers int
	reqs    [][]plRequest
}

func plNamespace(w int) string { return fmt.Sprintf("ns%d", w%3) }

// Request i of writer w, in namespace plNamespace(w): set w<w>-<i> to
// v<w>-<i>, add 1 to counter c<w>, take one id from sequence s<w>, and
// every third request take lock L<w>, released by the next request.
func plBuild(w, i int, prevHandle uint64) (*Request, bool, bool) {
	r := &Request{
		KVSet:  []KVSet{{Key: fmt.Sprintf("w%d-%d", w, i), Value: []byte(fmt.Sprintf("v%d-%d", w, i))}},
		Atomic: []AtomicOp{{Key: fmt.Sprintf("c%d", w), Add: ptr(int64(1))}},
		Seq:    []SeqOp{{Key: fmt.Sprintf("s%d", w), Count: 1}},
	}
	lock, unlock := i%3 == 0, i%3 == 1 && prevHandle != 0
	if lock {
		r.LockID, r.LockDurMs = fmt.Sprintf("L%d", w), int64(time.Hour/time.Millisecond)
	}
	if unlock {
		r.UnlockID, r.Unlock = fmt.Sprintf("L%d", w), prevHandle
	}
	return r, lock, unlock
}

// plRun runs the workload on a fresh engine in dir and returns the trace.
// Snapshots are taken every snapEvery requests of writer 0, beside the
// writes, so that their publish and the log truncation interleave with
// commits. The engine is abandoned without Close at the end, as a power
// loss would, after its final state is recorded.
func plRun(t *testing.T, dir string, writers, perWriter, snapEvery, segSize int) (*plRecorder, *plWorkload) {
	t.Helper()
	rec := newRecorder(dir)
	e, err := Open(Config{Dir: dir, Shards: 2, SegmentSize: segSize, SnapshotEveryRecords: -1, SyncHook: rec.hook})
	if err != nil {
		t.Fatal(err)
	}
	wl := &plWorkload{writers: writers, reqs: make([][]plRequest, writers)}
	snapReq := make(chan struct{}, 1)
	snapDone := make(chan struct{})
	var snaps atomic.Int64
	go func() {
		defer close(snapDone)
		last := uint64(0)
		for range snapReq {
			if e.log.LastSeq() == last {
				continue // the same cut would rewrite the same name
			}
			info, err := e.Snapshot()
			if err != nil {
				t.Errorf("snapshot: %v", err)
				return
			}
			last = info.Cut
			snaps.Add(1)
		}
	}()
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wl.reqs[w] = make([]plRequest, perWriter)
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var held uint64
			for i := 0; i < perWriter; i++ {
				req, lock, unlock := plBuild(w, i, held)
				resp, err := e.Do(context.Background(), plNamespace(w), req)
				r := &wl.reqs[w][i]
				r.key, r.value = req.KVSet[0].Key, string(req.KVSet[0].Value)
				r.lock, r.unlock, r.ackAt = lock, unlock, rec.n.Load()
				if err != nil {
					t.Errorf("writer %d request %d: %v", w, i, err)
					return
				}
				r.acked = true
				if lock {
					r.handle, held = resp.Lock, resp.Lock
				}
				if unlock {
					held = 0
				}
				if w == 0 && snapEvery > 0 && i%snapEvery == snapEvery-1 {
					select {
					case snapReq <- struct{}{}:
					default:
					}
				}
			}
		}(w)
	}
	wg.Wait()
	close(snapReq)
	<-snapDone
	rec.mu.Lock()
	final := plEvent{step: "end", durLen: clone(rec.durLen), durNames: clone(rec.durNames), vol: rec.look()}
	rec.events = append(rec.events, final)
	rec.mu.Unlock()
	// Close only to release the directory; the trace above is the crash.
	e.Close()
	if len(rec.problems) > 0 {
		t.Fatalf("the recorder found problems: %s", strings.Join(rec.problems, "; "))
	}
	t.Logf("workload: %d writers x %d requests, %d fsync events, %d snapshots", writers, perWriter, len(rec.events)-1, snaps.Load())
	return rec, wl
}

// plImage is one crash image: the files and directories to write.
type plImage struct {
	kind   string
	moment int // the image is of the moment right after events[moment]
	files  map[string][]byte
	dirs   map[string]bool
	desc   []string
}

func isFinalSnap(rel string) bool {
	base := filepath.Base(rel)
	return strings.HasPrefix(rel, "snap/") && len(base) == len(snapPrefix)+20 && strings.HasPrefix(base, snapPrefix)
}

func isSegment(rel string) bool {
	base := filepath.Base(rel)
	if !strings.HasPrefix(rel, "wal/") || len(base) != 20 {
		return false
	}
	_, err := strconv.ParseUint(base, 10, 64)
	return err == nil
}

// plKinds are the image kinds built for every moment (a kind that needs
// non-durable bytes is skipped where there are none).
var plKinds = []string{"durable-only", "all-written", "random-cut", "random-cut", "zero-512", "zero-4k", "trailing-zeros", "names-only"}

// buildImage makes the image of one kind for the moment after events[k].
// ok is false when the kind does not apply at that moment.
func (r *plRecorder) buildImage(k int, kind string, rng *rand.Rand) (img plImage, ok bool) {
	ev := r.events[k]
	next := r.events[len(r.events)-1]
	if k+1 < len(r.events) {
		next = r.events[k+1]
	}
	img = plImage{kind: kind, moment: k, files: map[string][]byte{}, dirs: map[string]bool{}}
	choose := func() bool { // a pending name change: applied or not
		switch kind {
		case "durable-only":
			return false
		case "all-written", "zero-512", "zero-4k", "trailing-zeros":
			return true
		}
		return rng.IntN(2) == 0
	}
	// Directories: a data directory always has wal/ (Open makes it before
	// any acknowledgement); snap/ may be pending.
	for _, d := range []string{"wal", "snap"} {
		if ev.durNames[d] || (next.vol[d] == -1 && choose()) {
			img.dirs[d] = true
		}
	}
	// Names: durable ones stay unless a pending removal is applied;
	// pending creations may appear. Segments change in name order.
	all := map[string]bool{}
	for n := range ev.durNames {
		all[n] = true
	}
	for n, sz := range next.vol {
		if sz >= 0 {
			all[n] = true
		}
	}
	var created, removed, present []string
	for n := range all {
		if ev.vol[n] == -1 || next.vol[n] == -1 || n == "wal" || n == "snap" {
			continue
		}
		_, inNext := next.vol[n]
		switch {
		case ev.durNames[n] && inNext:
			present = append(present, n)
		case ev.durNames[n]:
			removed = append(removed, n)
		default:
			created = append(created, n)
		}
	}
	sort.Strings(created)
	sort.Strings(removed)
	var segCreated, otherCreated []string
	for _, n := range created {
		if isSegment(n) {
			segCreated = append(segCreated, n)
		} else {
			otherCreated = append(otherCreated, n)
		}
	}
	// Pending segment creations: a prefix of them reached the disk.
	nSeg := 0
	for nSeg < len(segCreated) && choose() {
		nSeg++
	}
	present = append(present, segCreated[:nSeg]...)
	if nSeg > 0 {
		img.desc = append(img.desc, fmt.Sprintf("new segments kept %v", segCreated[:nSeg]))
	}
	if nSeg < len(segCreated) {
		img.desc = append(img.desc, fmt.Sprintf("new segments lost %v", segCreated[nSeg:]))
	}
	// Pending removals of segments: a prefix (oldest first) took effect;
	// snapshots: any of them.
	segRm := true
	for _, n := range removed {
		if isSegment(n) {
			if segRm = segRm && choose(); segRm {
				img.desc = append(img.desc, "removed "+n)
				continue
			}
		}
		if !isSegment(n) && choose() {
			img.desc = append(img.desc, "removed "+n)
			continue
		}
		present = append(present, n)
	}
	// Pending snapshot files: a published name may be missing, or the
	// rename may be lost with the temp file in its place; a temp file may
	// be there, cut anywhere.
	for _, n := range otherCreated {
		if !choose() {
			img.desc = append(img.desc, "lost "+n)
			if isFinalSnap(n) && (kind == "names-only" || (kind == "random-cut" && rng.IntN(2) == 0)) {
				for tmp := range r.content {
					if strings.HasPrefix(tmp, n+".tmp-") {
						img.files[tmp] = r.content[tmp]
						img.desc = append(img.desc, "its temp file kept "+tmp)
						break
					}
				}
			}
			continue
		}
		present = append(present, n)
	}
	// Contents: durable prefix plus a cut of what was written since.
	sort.Strings(present)
	var damageable []string
	lo := map[string]int64{}
	for _, n := range present {
		if !img.dirs[filepath.Dir(n)] {
			continue
		}
		full := int64(len(r.content[n]))
		if sz, ok := next.vol[n]; ok && sz < full {
			full = sz
		}
		d := min(ev.durLen[n], full)
		if isFinalSnap(n) {
			d = full // renamed only after its fsync
		}
		lo[n] = d
		l := full
		switch kind {
		case "durable-only", "names-only":
			l = d
		case "random-cut":
			l = d + rng.Int64N(full-d+1)
		}
		img.files[n] = r.content[n][:l]
		if strings.Contains(n, ".tmp-") {
			img.desc = append(img.desc, fmt.Sprintf("temp file present %s (%d of %d bytes)", n, l, full))
		}
		if full > d {
			damageable = append(damageable, n)
		}
	}
	// tidwall/wal fsyncs a segment before creating the next: a segment
	// with a successor on disk is complete.
	var segs []string
	for n := range img.files {
		if isSegment(n) {
			segs = append(segs, n)
		}
	}
	sort.Strings(segs)
	for i := 0; i+1 < len(segs); i++ {
		img.files[segs[i]] = r.content[segs[i]]
		lo[segs[i]] = int64(len(r.content[segs[i]]))
	}
	kept := damageable[:0]
	for _, n := range damageable {
		if int64(len(r.content[n])) > lo[n] {
			kept = append(kept, n)
		}
	}
	damageable = kept
	switch kind {
	case "zero-512", "zero-4k", "trailing-zeros":
		var cands []string
		for _, n := range damageable {
			if len(img.files[n]) > int(lo[n]) { // still has non-durable bytes
				cands = append(cands, n)
			}
		}
		if len(cands) == 0 {
			return img, false
		}
		n := cands[rng.IntN(len(cands))]
		b := bytes.Clone(img.files[n])
		d := int(lo[n])
		if kind == "trailing-zeros" {
			// The size reached the disk, the data did not.
			cut := d + rng.IntN(len(b)-d)
			clear(b[cut:])
			img.desc = append(img.desc, fmt.Sprintf("%s zeros from %d to %d (durable %d)", n, cut, len(b), d))
		} else {
			chunk := 512
			if kind == "zero-4k" {
				chunk = 4096
			}
			first, last := d/chunk, (len(b)-1)/chunk
			c := first + rng.IntN(last-first+1)
			from, to := max(c*chunk, d), min((c+1)*chunk, len(b))
			clear(b[from:to])
			img.desc = append(img.desc, fmt.Sprintf("%s zeroed [%d,%d) (durable %d, length %d)", n, from, to, d, len(b)))
		}
		img.files[n] = b
	case "random-cut", "all-written", "durable-only", "names-only":
		if kind == "all-written" && len(damageable) == 0 && len(created)+len(removed) == 0 {
			return img, false // same as durable-only
		}
	}
	for _, n := range damageable {
		img.desc = append(img.desc, fmt.Sprintf("%s %d of %d bytes (durable %d)", n, len(img.files[n]), len(r.content[n]), lo[n]))
	}
	img.tailMarker(ev, next, segs, kind, rng)
	return img, true
}

// tailMarker puts the tail marker into the image: the one durable at the
// moment, or one renamed over it since (what the process saw at the
// moment or at the next event), whole, as a rename leaves it.
func (img *plImage) tailMarker(ev, next plEvent, segs []string, kind string, rng *rand.Rand) {
	tail := ev.durTail
	switch kind {
	case "all-written", "trailing-zeros", "zero-512", "zero-4k":
		tail = next.tail
	case "durable-only", "names-only":
	default:
		tail = [][]byte{ev.durTail, ev.tail, next.tail}[rng.IntN(3)]
	}
	if tail == nil {
		img.desc = append(img.desc, "no tail marker")
		return
	}
	img.files[WalTailFile] = tail
	newest := "none"
	if len(segs) > 0 {
		newest = strings.TrimLeft(filepath.Base(segs[len(segs)-1]), "0")
	}
	state := "names the newest segment"
	if newest != strings.TrimSpace(string(tail)) {
		state = "behind the newest segment"
	}
	img.desc = append(img.desc, fmt.Sprintf("tail marker %s %s (%s)", strings.TrimSpace(string(tail)), state, newest))
}

// write puts the image into dir.
func (img plImage) write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for d := range img.dirs {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	for n, b := range img.files {
		if !img.dirs[filepath.Dir(n)] && filepath.Dir(n) != "." {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// plReport is what checking images found.
type plReport struct {
	images   map[string]int
	states   map[string]int // images showing each crash state (plStates)
	lost     []string       // acknowledged writes missing
	phantom  []string       // state nobody asked for
	refused  []string       // images Open refused
	mismatch []string       // counters, sequences, locks or handles out of line
}

func (p *plReport) summary() string {
	var kinds []string
	for k, n := range p.images {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(kinds)
	var states []string
	for _, st := range plStates {
		states = append(states, fmt.Sprintf("%s %d", st.name, p.states[st.name]))
	}
	return fmt.Sprintf("images: %s; states: %s; lost acknowledged: %d, phantom: %d, refused: %d, inconsistent: %d",
		strings.Join(kinds, ", "), strings.Join(states, ", "), len(p.lost), len(p.phantom), len(p.refused), len(p.mismatch))
}

// checkImage opens the image in dir and checks it against the workload.
func checkImage(img plImage, dir string, wl *plWorkload, rep *plReport, ev plEvent) {
	where := fmt.Sprintf("image %s after event %d (%s %s) [%s]", img.kind, img.moment, ev.step, ev.file, strings.Join(img.desc, "; "))
	e, err := Open(Config{Dir: dir, Shards: 2, SnapshotEveryRecords: -1})
	if err != nil {
		rep.refused = append(rep.refused, fmt.Sprintf("%s: Open: %v", where, err))
		return
	}
	lastHandle := e.LastHandle()
	e.Close()
	st := dumpState(e)
	seen := int64(img.moment + 1) // events recorded at this moment
	for w := 0; w < wl.writers; w++ {
		ns := plNamespace(w)
		kv := st.kv[ns]
		n := 0
		for n < len(wl.reqs[w]) {
			if _, ok := kv[wl.reqs[w][n].key]; !ok {
				break
			}
			n++
		}
		for i := n; i < len(wl.reqs[w]); i++ {
			r := wl.reqs[w][i]
			if r.acked && r.ackAt <= seen {
				rep.lost = append(rep.lost, fmt.Sprintf("%s: writer %d request %d acknowledged at event %d is missing (writer has %d)", where, w, i, r.ackAt, n))
				break
			}
		}
		// Only this writer's prefix, with the values it wrote.
		for k, v := range kv {
			kw, ki, ok := plParseKey(k)
			if !ok || kw%3 != w%3 || kw >= wl.writers {
				rep.phantom = append(rep.phantom, fmt.Sprintf("%s: key %s/%s was never written", where, ns, k))
				continue
			}
			if kw != w {
				continue
			}
			if ki >= n || v.value != wl.reqs[w][ki].value {
				rep.phantom = append(rep.phantom, fmt.Sprintf("%s: key %s/%s=%q is not in writer %d's prefix of %d requests", where, ns, k, v.value, w, n))
			}
		}
		if got := st.counters[ns][fmt.Sprintf("c%d", w)]; got != int64(n) {
			rep.mismatch = append(rep.mismatch, fmt.Sprintf("%s: counter c%d is %d, writer %d has %d requests present", where, w, got, w, n))
		}
		if got, want := st.seqs[ns][fmt.Sprintf("s%d", w)], uint64(n+1); n > 0 && got != want {
			rep.mismatch = append(rep.mismatch, fmt.Sprintf("%s: sequence s%d next id %d, want %d", where, w, got, want))
		}
		holds := n > 0 && wl.reqs[w][n-1].lock
		h, held := st.locks[ns][fmt.Sprintf("L%d", w)]
		if held != holds {
			rep.mismatch = append(rep.mismatch, fmt.Sprintf("%s: lock L%d held %v, but writer %d's last present request (%d) lock=%v", where, w, held, w, n-1, holds))
		}
		for i := 0; i < len(wl.reqs[w]); i++ {
			r := wl.reqs[w][i]
			if r.acked && r.handle != 0 && i < n && r.handle > lastHandle {
				rep.mismatch = append(rep.mismatch, fmt.Sprintf("%s: handle %d was granted but the last handle after recovery is %d (DESIGN I4)", where, r.handle, lastHandle))
			}
			if held && i == n-1 && r.acked && r.handle != h {
				rep.mismatch = append(rep.mismatch, fmt.Sprintf("%s: lock L%d held by %d, was granted %d", where, w, h, r.handle))
			}
		}
	}
	for ns := range st.kv {
		if !strings.HasPrefix(ns, "ns") {
			rep.phantom = append(rep.phantom, fmt.Sprintf("%s: namespace %q was never written", where, ns))
		}
	}
}

// plStates are crash states worth counting, recognised in an image's
// description; each must be reached (TestPowerLoss checks).
var plStates = []struct{ name, marker string }{
	{"new-segment-kept", "new segments kept"},
	{"new-segment-lost", "new segments lost"},
	{"segment-removal-applied", "removed wal/"},
	{"snapshot-temp-present", "temp file present"},
	{"snapshot-publish-lost", "lost snap/snap-"},
	{"rename-lost-temp-kept", "its temp file kept"},
	{"old-snapshot-removed", "removed snap/"},
	{"tail-marker-behind", "behind the newest segment"},
	{"tail-marker-current", "names the newest segment"},
}

func (img plImage) states() []string {
	d := strings.Join(img.desc, "; ")
	var out []string
	for _, st := range plStates {
		if strings.Contains(d, st.marker) {
			out = append(out, st.name)
		}
	}
	return out
}

// plParseKey splits w<writer>-<index>.
func plParseKey(k string) (w, i int, ok bool) {
	a, b, found := strings.Cut(strings.TrimPrefix(k, "w"), "-")
	w, err1 := strconv.Atoi(a)
	i, err2 := strconv.Atoi(b)
	return w, i, found && strings.HasPrefix(k, "w") && err1 == nil && err2 == nil
}

// plCheck builds up to want images round-robin over the moments and kinds,
// and checks them on two workers (each Open waits on fsyncs).
func plCheck(t *testing.T, rec *plRecorder, wl *plWorkload, want int, seed uint64) *plReport {
	t.Helper()
	rep := &plReport{images: map[string]int{}, states: map[string]int{}}
	base := plImageDir(t)
	rng := rand.New(rand.NewPCG(seed, 5))
	type job struct {
		img plImage
		dir string
	}
	jobs := make(chan job)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				one := &plReport{}
				err := j.img.write(j.dir)
				if err == nil {
					checkImage(j.img, j.dir, wl, one, rec.events[j.img.moment])
				}
				os.RemoveAll(j.dir)
				mu.Lock()
				if err != nil {
					one.refused = append(one.refused, "writing the image: "+err.Error())
				}
				rep.images[j.img.kind]++
				for _, st := range j.img.states() {
					rep.states[st]++
				}
				rep.lost = append(rep.lost, one.lost...)
				rep.phantom = append(rep.phantom, one.phantom...)
				rep.refused = append(rep.refused, one.refused...)
				rep.mismatch = append(rep.mismatch, one.mismatch...)
				mu.Unlock()
			}
		}()
	}
	total := 0
	for round := 0; total < want && round < 50; round++ {
		for k := 0; k < len(rec.events) && total < want; k++ {
			for _, kind := range plKinds {
				img, ok := rec.buildImage(k, kind, rng)
				if !ok {
					continue
				}
				jobs <- job{img, filepath.Join(base, strconv.Itoa(total))}
				total++
			}
		}
	}
	close(jobs)
	wg.Wait()
	return rep
}

// plImageDir is where images are written: a fresh directory on tmpfs
// (/dev/shm) when there is one, because each image's Open fsyncs several
// times and the images themselves need no durability; else t.TempDir.
func plImageDir(t *testing.T) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "latch-powerloss-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return t.TempDir()
}

// plSeed is random per run and logged (LATCH_TEST_SEED repeats it).
func plSeed(t *testing.T) uint64 {
	if v := os.Getenv("LATCH_TEST_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("LATCH_TEST_SEED=%q: %v", v, err)
		}
		return s
	}
	s := rand.Uint64()
	t.Logf("seed %d (LATCH_TEST_SEED to repeat)", s)
	return s
}

func plImagesWanted(t *testing.T, def int) int {
	v := os.Getenv("LATCH_POWER_IMAGES")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("LATCH_POWER_IMAGES=%q: want a positive integer", v)
	}
	return n
}

func reportProblems(t *testing.T, what string, list []string) {
	t.Helper()
	for i, p := range list {
		if i == 5 {
			t.Errorf("... and %d more %s", len(list)-5, what)
			break
		}
		t.Errorf("%s: %s", what, p)
	}
}

// TestPowerLoss is the harness itself (see the top of this file).
func TestPowerLoss(t *testing.T) {
	if wal.FsyncDisabled {
		t.Skip("built with latch_nofsync: TestPowerLossNoFsync checks the harness instead")
	}
	want := plImagesWanted(t, 1200)
	seed := plSeed(t)
	start := time.Now()
	// About one image kind per moment and request: the workload grows
	// with the number of images asked for.
	perWriter := max(30, want/20)
	rec, wl := plRun(t, t.TempDir(), 6, perWriter, 8, 2048)
	rep := plCheck(t, rec, wl, want, seed)
	t.Logf("%s (%v)", rep.summary(), time.Since(start).Round(time.Millisecond))
	total := 0
	for _, n := range rep.images {
		total += n
	}
	if total < want {
		t.Errorf("checked %d images, want %d", total, want)
	}
	for _, k := range plKinds {
		if rep.images[k] == 0 {
			t.Errorf("no image of kind %s was built: the workload does not reach it", k)
		}
	}
	for _, st := range plStates {
		if rep.states[st.name] == 0 {
			t.Errorf("no image showed the crash state %s: the workload does not reach it", st.name)
		}
	}
	reportProblems(t, "lost", rep.lost)
	reportProblems(t, "phantom", rep.phantom)
	reportProblems(t, "refused", rep.refused)
	reportProblems(t, "inconsistent", rep.mismatch)
}

// TestPowerLossBitFlipRefused is the harness's second reverse check: a bit
// flipped in the durable part of a segment that is not the last one is not
// a power loss, and Open must refuse it with a CorruptError naming the file
// rather than start without the records in it.
func TestPowerLossBitFlipRefused(t *testing.T) {
	if wal.FsyncDisabled {
		t.Skip("built with latch_nofsync")
	}
	seed := plSeed(t)
	rng := rand.New(rand.NewPCG(seed, 7))
	rec, _ := plRun(t, t.TempDir(), 3, 40, 0, 2048)
	base := t.TempDir()
	checked := 0
	for k := len(rec.events) - 1; k >= 0 && checked < 40; k-- {
		img, _ := rec.buildImage(k, "durable-only", rng)
		var segs []string
		for n := range img.files {
			if isSegment(n) && rec.events[k].durLen[n] > 0 {
				segs = append(segs, n)
			}
		}
		sort.Strings(segs)
		if len(segs) < 2 {
			continue
		}
		n := segs[rng.IntN(len(segs)-1)] // never the last
		b := bytes.Clone(img.files[n])
		bit := rng.IntN(len(b) * 8)
		b[bit/8] ^= 1 << (bit % 8)
		img.files[n] = b
		dir := filepath.Join(base, strconv.Itoa(checked))
		if err := img.write(dir); err != nil {
			t.Fatal(err)
		}
		checked++
		e, err := Open(Config{Dir: dir, Shards: 2, SnapshotEveryRecords: -1})
		var ce *wal.CorruptError
		if err == nil {
			e.Close()
			t.Errorf("event %d: bit %d of durable segment %s flipped, and Open started anyway", k, bit, n)
			continue
		}
		if !errors.As(err, &ce) || ce.File != filepath.Join(dir, n) {
			t.Errorf("event %d: bit %d of %s flipped: Open failed with %v, want a CorruptError naming that file", k, bit, n, err)
		}
	}
	if checked < 10 {
		t.Fatalf("only %d images had two durable segments", checked)
	}
	t.Logf("%d images with a flipped durable bit, each refused", checked)
}
