package main

// Lock safety over the real binary (issue 5): many clients contend for many
// locks while holders crash (walk away and let the lock expire), waiters give
// up (LockWait runs out, or the client cancels the HTTP request), the server
// is SIGKILLed and restarted, once it is saved with `latch snapshot
// save`, restored into a new directory and booted from there, and once it
// is rolled back with `restore --force` to a backup taken at the first
// quiet point, thousands of grants earlier. A checker then proves from
// what the clients saw that
//
//   - no two holders held one lock at once,
//   - handles strictly increase, across restarts and both restores (the
//     older backup knows nothing of the handles issued after it: only the
//     handle floor keeps them from being issued again),
//   - a lock held at a crash or at the save blocks until its deadline,
//   - no waiter that gave up was ever granted.
//
// How two holders are caught. Every grant reply carries the server's clock
// at the grant: TillMs - LockDurMs (the engine computes TillMs as now +
// LockDurMs). So each holder's hold starts at a known server time, and ends
// no earlier than min(its last acknowledged deadline, the moment its unlock
// was sent). The next handle granted on the same lock must start at or after
// that end; starting earlier is two holders at once. This catches a server
// that hands a lock to a waiter while the holder still holds it, even if the
// server then forgets the first holder (whose next fenced request would get
// lock_lost): that lock_lost before the holder's deadline is reported too.
//
// Independently, every holder writes through the server's own guard: each
// fenced request is an extend (LockID = UnlockID, Unlock = handle) together
// with a compare-and-set of the counter "fence/<lock>" from the value the
// holder last saw to the next. Only a holder's own requests move that
// counter while it holds, so an IfEq failure means two requests passed the
// lock guard of one lock for different holders.
//
// How a granted give-up is caught. A waiter that gives up asks for the lock
// with a long LockDurMs (ghostDurMs) while a known holder holds it, and the
// holder confirms it still holds the lock after the waiter is gone. Were
// the server to grant that waiter later anyway, nobody known would hold the
// lock yet it would stay held for ghostDurMs. At every quiet point each
// lock whose known holders have all released or expired is probed with
// LockWaitMs 0: it must be granted at once.
//
// `make test` runs the short version (5,000 grants, one SIGKILL, two
// restores; 20-25 s here without -race, 35-45 s with, on a 2-core machine
// at load 15). The long one:
//
//	LATCH_LOCK_GRANTS=100000 LATCH_LOCK_RESTARTS=5 go test -count=1 -timeout 30m -v -run '^TestLockSafety$' ./cmd/latch

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Durations of the workload, in ms.
const (
	holdDurMs     = 1000 // an ordinary hold's LockDurMs
	giveUpHoldMs  = 3000 // a hold during which a waiter gives up
	crashDurMinMs = 80   // a holder that walks away holds for 80..200 ms
	crashDurMaxMs = 200
	waitMs        = 2000  // an ordinary waiter's LockWaitMs
	ghostDurMs    = 30000 // a giving-up waiter's LockDurMs: granted, it would block its lock this long
	giveUpWaitMs  = 40    // LockWaitMs of a waiter that gives up by timing out
	cancelAfterMs = 40    // a waiter that gives up by disconnecting cancels after this
	// cancelGrace is how long a holder keeps the lock after a waiter
	// canceled its HTTP request, so the server sees the disconnect (net/http
	// notices it asynchronously) before the lock is free to be granted.
	cancelGrace = 500 * time.Millisecond
)

// ---------------------------------------------------------------------------
// The checker.

// holdRec is one handle's hold of one lock as the clients saw it. Times
// ending in Ms are unix milliseconds; the server's and the clients' clocks
// are the same machine's.
type holdRec struct {
	lock         string
	handle       uint64
	grantMs      int64 // server clock at the grant: TillMs - LockDurMs
	confirmedMs  int64 // server clock at the last acknowledged fenced request
	deadlineMs   int64 // TillMs of the last acknowledged grant or extend
	unlockSentMs int64 // client clock when an unlock was first sent; 0 if never
	unlockAcked  bool
	lostMs       int64 // client clock when a fenced request got lock_lost; 0 if never
}

// releaseLowerBound is the earliest the hold can have ended.
func (h *holdRec) releaseLowerBound() int64 {
	if h.unlockSentMs != 0 && h.unlockSentMs < h.deadlineMs {
		return h.unlockSentMs
	}
	return h.deadlineMs
}

type grantObs struct {
	lock       string
	handle     uint64
	sent, recv time.Time
}

// lockTrace records what clients saw of locks and finds violations. Its
// methods are safe for concurrent use.
type lockTrace struct {
	mu         sync.Mutex
	holds      map[string]map[uint64]*holdRec // lock -> handle -> hold
	byHandle   map[uint64]string              // handle -> lock
	grants     []grantObs
	violations []string
}

func newLockTrace() *lockTrace {
	return &lockTrace{holds: map[string]map[uint64]*holdRec{}, byHandle: map[uint64]string{}}
}

func (tr *lockTrace) violate(format string, args ...any) {
	tr.violations = append(tr.violations, fmt.Sprintf(format, args...))
}

// Violate records a violation found outside the trace (by a client).
func (tr *lockTrace) Violate(format string, args ...any) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.violate(format, args...)
}

func (tr *lockTrace) hold(lock string, handle uint64) *holdRec {
	h := tr.holds[lock][handle]
	if h == nil {
		tr.violate("%s: a fenced request of handle %d succeeded, but no grant of that handle on this lock was ever seen", lock, handle)
		h = &holdRec{lock: lock, handle: handle}
		tr.holdsOf(lock)[handle] = h
	}
	return h
}

func (tr *lockTrace) holdsOf(lock string) map[uint64]*holdRec {
	m := tr.holds[lock]
	if m == nil {
		m = map[uint64]*holdRec{}
		tr.holds[lock] = m
	}
	return m
}

// granted records a grant reply: the request was sent at sent and its
// reply received at recv.
func (tr *lockTrace) granted(lock string, handle uint64, tillMs, durMs int64, sent, recv time.Time) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if other, ok := tr.byHandle[handle]; ok {
		tr.violate("handle %d granted twice: on %s and on %s", handle, other, lock)
		return
	}
	if handle == 0 {
		tr.violate("%s: granted with handle 0", lock)
		return
	}
	tr.byHandle[handle] = lock
	g := tillMs - durMs
	tr.holdsOf(lock)[handle] = &holdRec{lock: lock, handle: handle, grantMs: g, confirmedMs: g, deadlineMs: tillMs}
	tr.grants = append(tr.grants, grantObs{lock: lock, handle: handle, sent: sent, recv: recv})
}

// confirmed records an acknowledged fenced request (an extend) of handle.
func (tr *lockTrace) confirmed(lock string, handle uint64, tillMs, durMs int64) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	h := tr.hold(lock, handle)
	if c := tillMs - durMs; c > h.confirmedMs {
		h.confirmedMs = c
	}
	if tillMs > h.deadlineMs {
		h.deadlineMs = tillMs
	}
}

// unlocking records that an unlock of handle was sent at sent.
func (tr *lockTrace) unlocking(lock string, handle uint64, sent time.Time) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if h := tr.hold(lock, handle); h.unlockSentMs == 0 {
		h.unlockSentMs = sent.UnixMilli()
	}
}

// unlocked records an acknowledged unlock.
func (tr *lockTrace) unlocked(lock string, handle uint64) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.hold(lock, handle).unlockAcked = true
}

// lost records a lock_lost reply to a fenced request of handle, received at recv.
func (tr *lockTrace) lost(lock string, handle uint64, recv time.Time) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if h := tr.hold(lock, handle); h.lostMs == 0 {
		h.lostMs = recv.UnixMilli()
	}
}

// freeAfterMs is when, by what the clients know, every known hold of lock
// has ended (0 if none is open).
func (tr *lockTrace) freeAfterMs(lock string) int64 {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var free int64
	for _, h := range tr.holds[lock] {
		if h.unlockAcked || h.lostMs != 0 {
			continue
		}
		free = max(free, h.deadlineMs)
	}
	return free
}

// openHolds are the holds not known to have ended by nowMs.
func (tr *lockTrace) openHolds(nowMs int64) []holdRec {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out []holdRec
	for _, m := range tr.holds {
		for _, h := range m {
			if !h.unlockAcked && h.lostMs == 0 && h.unlockSentMs == 0 && h.deadlineMs > nowMs {
				out = append(out, *h)
			}
		}
	}
	return out
}

func (tr *lockTrace) maxHandle() uint64 {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var m uint64
	for h := range tr.byHandle {
		m = max(m, h)
	}
	return m
}

func (tr *lockTrace) grantCount() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.grants)
}

// check analyses the whole trace and returns every violation.
func (tr *lockTrace) check() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	out := append([]string(nil), tr.violations...)

	// One lock's holds, in handle order, must not overlap.
	locks := make([]string, 0, len(tr.holds))
	for l := range tr.holds {
		locks = append(locks, l)
	}
	sort.Strings(locks)
	for _, l := range locks {
		hs := make([]*holdRec, 0, len(tr.holds[l]))
		for _, h := range tr.holds[l] {
			hs = append(hs, h)
		}
		sort.Slice(hs, func(i, j int) bool { return hs[i].handle < hs[j].handle })
		for i, h := range hs {
			if h.lostMs != 0 && h.unlockSentMs == 0 && h.lostMs < h.deadlineMs {
				out = append(out, fmt.Sprintf("%s: handle %d got lock_lost at %d, before its deadline %d, without an unlock: the server dropped a held lock",
					l, h.handle, h.lostMs, h.deadlineMs))
			}
			if i == 0 {
				continue
			}
			prev := hs[i-1]
			switch {
			case h.grantMs < prev.grantMs:
				out = append(out, fmt.Sprintf("%s: handle %d granted at %d, before the smaller handle %d (granted at %d)", l, h.handle, h.grantMs, prev.handle, prev.grantMs))
			case h.grantMs < prev.confirmedMs:
				out = append(out, fmt.Sprintf("%s: two holders: handle %d granted at %d while handle %d still passed the lock guard at %d",
					l, h.handle, h.grantMs, prev.handle, prev.confirmedMs))
			case h.grantMs < prev.releaseLowerBound():
				out = append(out, fmt.Sprintf("%s: two holders: handle %d granted at %d while handle %d held it until at least %d (deadline %d, unlock sent at %d)",
					l, h.handle, h.grantMs, prev.handle, prev.releaseLowerBound(), prev.deadlineMs, prev.unlockSentMs))
			}
		}
	}

	// Handles strictly increase: a grant asked for after another grant's
	// reply arrived has a larger handle, whatever the lock, restarts and
	// restores included.
	bySent := append([]grantObs(nil), tr.grants...)
	sort.Slice(bySent, func(i, j int) bool { return bySent[i].sent.Before(bySent[j].sent) })
	byRecv := append([]grantObs(nil), tr.grants...)
	sort.Slice(byRecv, func(i, j int) bool { return byRecv[i].recv.Before(byRecv[j].recv) })
	var maxSeen grantObs
	bad := 0
	j := 0
	for _, g := range bySent {
		for ; j < len(byRecv) && byRecv[j].recv.Before(g.sent); j++ {
			if byRecv[j].handle > maxSeen.handle {
				maxSeen = byRecv[j]
			}
		}
		if g.handle <= maxSeen.handle {
			if bad++; bad <= 10 {
				out = append(out, fmt.Sprintf("%s: handle %d was asked for after handle %d (%s) had been granted, yet is not larger",
					g.lock, g.handle, maxSeen.handle, maxSeen.lock))
			}
		}
	}
	if bad > 10 {
		out = append(out, fmt.Sprintf("... %d handles out of order in all", bad))
	}
	return out
}

// probeVerdict judges a LockWaitMs 0 acquire of a lock that, by what the
// clients know, is free since freeAfterMs: it must be granted.
func probeVerdict(lock string, freeAfterMs, sentMs int64, status int, code string) string {
	if status == http.StatusOK || sentMs <= freeAfterMs {
		return ""
	}
	if status == http.StatusConflict && code == "lock_timeout" {
		return fmt.Sprintf("%s: held at %d by no known holder (every known hold ended by %d): a waiter that gave up was granted", lock, sentMs, freeAfterMs)
	}
	return fmt.Sprintf("%s: a LockWaitMs 0 acquire of a free lock replied %d %s", lock, status, code)
}

func TestLockTraceCatchesViolations(t *testing.T) {
	t0 := time.UnixMilli(1_000_000)
	at := func(ms int64) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	base := t0.UnixMilli()
	cases := []struct {
		name string
		run  func(tr *lockTrace)
		want string // "" for a clean trace
	}{
		{"handoff after unlock", func(tr *lockTrace) {
			tr.granted("L", 5, base+1000, 1000, at(-1), at(1))
			tr.confirmed("L", 5, base+1100, 1000)
			tr.unlocking("L", 5, at(150))
			tr.unlocked("L", 5)
			tr.granted("L", 6, base+1150, 1000, at(10), at(160))
		}, ""},
		{"handoff at expiry", func(tr *lockTrace) {
			tr.granted("L", 5, base+1000, 1000, at(-1), at(1))
			tr.granted("L", 6, base+2000, 1000, at(10), at(1001))
		}, ""},
		{"granted before expiry", func(tr *lockTrace) {
			tr.granted("L", 5, base+1000, 1000, at(-1), at(1))
			tr.granted("L", 6, base+1999, 1000, at(10), at(1000))
		}, "two holders"},
		{"granted while the holder still passed the guard", func(tr *lockTrace) {
			tr.granted("L", 5, base+1000, 1000, at(-1), at(1))
			tr.granted("L", 6, base+1500, 1000, at(10), at(501))
			tr.confirmed("L", 5, base+1600, 1000) // the server forgot nothing: two holders
		}, "two holders"},
		{"granted before the unlock was sent", func(tr *lockTrace) {
			tr.granted("L", 5, base+1000, 1000, at(-1), at(1))
			tr.granted("L", 6, base+1100, 1000, at(10), at(101))
			tr.unlocking("L", 5, at(200))
		}, "two holders"},
		{"lost before the deadline", func(tr *lockTrace) {
			tr.granted("L", 5, base+1000, 1000, at(-1), at(1))
			tr.lost("L", 5, at(500))
		}, "dropped a held lock"},
		{"lost after the deadline", func(tr *lockTrace) {
			tr.granted("L", 5, base+1000, 1000, at(-1), at(1))
			tr.lost("L", 5, at(1000))
		}, ""},
		{"handle reused", func(tr *lockTrace) {
			tr.granted("L", 5, base+1000, 1000, at(-1), at(1))
			tr.granted("M", 5, base+1000, 1000, at(-1), at(1))
		}, "granted twice"},
		{"handle went back after a restart", func(tr *lockTrace) {
			tr.granted("L", 9, base+1000, 1000, at(-1), at(1))
			tr.granted("M", 7, base+3000, 1000, at(2000), at(2001))
		}, "is not larger"},
		{"concurrent requests may get handles in either order", func(tr *lockTrace) {
			tr.granted("L", 9, base+1000, 1000, at(-1), at(3))
			tr.granted("M", 7, base+1000, 1000, at(0), at(2))
		}, ""},
	}
	for _, c := range cases {
		tr := newLockTrace()
		c.run(tr)
		got := strings.Join(tr.check(), "\n")
		switch {
		case c.want == "" && got != "":
			t.Errorf("%s: a clean trace was reported:\n%s", c.name, got)
		case c.want != "" && !strings.Contains(got, c.want):
			t.Errorf("%s: want a violation containing %q, got %q", c.name, c.want, got)
		}
	}
	if v := probeVerdict("L", base+100, base+200, http.StatusConflict, "lock_timeout"); !strings.Contains(v, "gave up was granted") {
		t.Errorf("a free lock that blocks: verdict %q", v)
	}
	if v := probeVerdict("L", base+300, base+200, http.StatusConflict, "lock_timeout"); v != "" {
		t.Errorf("a lock still held by a known holder that blocks: verdict %q", v)
	}
	if v := probeVerdict("L", base+100, base+200, http.StatusOK, ""); v != "" {
		t.Errorf("a free lock granted: verdict %q", v)
	}
}

// ---------------------------------------------------------------------------
// The workload.

// lockStats counts what happened, for the log.
type lockStats struct {
	acquires, lockTimeouts, fenced, unlocks, walkAways, expiredWhileHeld atomic.Int64
	giveUpTimeouts, giveUpCancels, giveUpGranted, probes, probesSkipped  atomic.Int64
	blockedAfter                                                         atomic.Int64
}

// lockRun is the shared state of one lock safety run.
type lockRun struct {
	t     *testing.T
	tr    *lockTrace
	stats lockStats
	mu    sync.Mutex
	latMu sync.Mutex
	lat   []time.Duration // round trips of the requests that never wait
	// excuse holds, per lock, until when a hold no client knows of may
	// last: a grant whose reply was lost to a crash.
	excuse map[string]int64
}

// db is s.db; the round trips of requests that never wait (fenced
// requests and unlocks) are recorded.
func (r *lockRun) db(ctx context.Context, s *server, ns string, body any) (int, dbResp, error) {
	t0 := time.Now()
	st, resp, err := s.db(ctx, ns, body)
	d := time.Since(t0)
	if m, ok := body.(map[string]any); ok && m["UnlockID"] == nil {
		return st, resp, err
	}
	r.latMu.Lock()
	r.lat = append(r.lat, d)
	r.latMu.Unlock()
	return st, resp, err
}

// latencies is the median, 99th percentile and maximum round trip.
func (r *lockRun) latencies() (p50, p99, pmax time.Duration) {
	r.latMu.Lock()
	defer r.latMu.Unlock()
	if len(r.lat) == 0 {
		return
	}
	l := append([]time.Duration(nil), r.lat...)
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	return l[len(l)/2], l[len(l)*99/100], l[len(l)-1]
}

func (r *lockRun) excuseUntil(lock string, ms int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.excuse[lock] = max(r.excuse[lock], ms)
}

func (r *lockRun) excused(lock string) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.excuse[lock]
}

// lockClient is one sequential client of one lock. Its state outlives
// server restarts: a holder resumes holding after a crash or the restore.
type lockClient struct {
	ns, name string
	rng      *rand.Rand
	handle   uint64 // 0: not holding
	durMs    int64
	fence    int64 // the fence counter as this holder last saw it
	needRead bool  // a fenced request got no reply: read the fence again
	bumps    int   // fenced writes still to do before releasing
	walkAway bool  // release by letting the deadline pass
	giveUp   int   // 1: a waiter gives up by timeout during this hold, 2: by cancel
}

func (c *lockClient) lock() string { return c.ns + "/" + c.name }

func (c *lockClient) fenceKey() string { return "fence/" + c.name }

// step sends one request (two for a give-up). It returns an error only when
// a request got no reply: the server is gone.
func (c *lockClient) step(r *lockRun, s *server) error {
	if c.handle == 0 {
		return c.acquire(r, s)
	}
	switch {
	case c.needRead:
		return c.fenced(r, s, false)
	case c.giveUp != 0:
		return c.waiterGivesUp(r, s)
	case c.bumps > 0:
		return c.fenced(r, s, true)
	case c.walkAway:
		r.stats.walkAways.Add(1)
		c.handle = 0
		return nil
	default:
		return c.unlock(r, s)
	}
}

func (c *lockClient) acquire(r *lockRun, s *server) error {
	c.durMs, c.walkAway, c.giveUp = holdDurMs, false, 0
	switch p := c.rng.IntN(100); {
	case p < 3:
		c.durMs, c.walkAway = int64(crashDurMinMs+c.rng.IntN(crashDurMaxMs-crashDurMinMs+1)), true
	case p < 5:
		c.durMs, c.giveUp = giveUpHoldMs, 1+c.rng.IntN(2)
	}
	c.bumps = c.rng.IntN(3)
	body := map[string]any{"LockID": c.name, "LockDurMs": c.durMs, "LockWaitMs": waitMs, "Atomic": map[string]any{"Key": c.fenceKey()}}
	sent := time.Now()
	st, resp, err := r.db(context.Background(), s, c.ns, body)
	recv := time.Now()
	r.stats.acquires.Add(1)
	if err != nil {
		// Granted or not, a grant is over by the deadline it would have had.
		r.excuseUntil(c.lock(), recv.UnixMilli()+c.durMs)
		return err
	}
	switch {
	case st == http.StatusOK && len(resp.Atomic) == 1:
		r.tr.granted(c.lock(), resp.Lock, resp.TillMs, c.durMs, sent, recv)
		c.handle, c.fence, c.needRead = resp.Lock, resp.Atomic[0].Value, false
	case st == http.StatusConflict && resp.Code == "lock_timeout":
		r.stats.lockTimeouts.Add(1)
	default:
		r.tr.Violate("%s: acquire replied %d %s %s (%+v)", c.lock(), st, resp.Code, resp.Message, resp)
	}
	return nil
}

// fenced extends the hold and, with bump, moves the fence counter on by
// one, guarded by the handle; without, it only reads the counter.
func (c *lockClient) fenced(r *lockRun, s *server, bump bool) error {
	op := map[string]any{"Key": c.fenceKey()}
	body := map[string]any{"LockID": c.name, "UnlockID": c.name, "Unlock": c.handle, "LockDurMs": c.durMs, "Atomic": op}
	if bump {
		op["Set"], op["IfEq"] = c.fence+1, c.fence
		body["KVSet"] = map[string]any{"Key": "owner/" + c.name, "Value": c.handle}
	}
	st, resp, err := r.db(context.Background(), s, c.ns, body)
	recv := time.Now()
	r.stats.fenced.Add(1)
	if err != nil {
		c.needRead = true
		return err
	}
	switch {
	case st == http.StatusOK && len(resp.Atomic) == 1:
		r.tr.confirmed(c.lock(), c.handle, resp.TillMs, c.durMs)
		want := c.fence
		if bump {
			want++
			c.bumps--
		}
		if !c.needRead && resp.Atomic[0].Value != want {
			r.tr.Violate("%s: handle %d's fenced request replied fence %d, want %d", c.lock(), c.handle, resp.Atomic[0].Value, want)
		}
		c.fence, c.needRead = resp.Atomic[0].Value, false
	case st == http.StatusConflict && resp.Code == "lock_lost":
		r.tr.lost(c.lock(), c.handle, recv)
		r.stats.expiredWhileHeld.Add(1)
		c.handle = 0
	case st == http.StatusConflict && resp.Code == "precondition_failed":
		r.tr.Violate("%s: handle %d passed the lock guard but the fence counter was not %d, the value it last saw: another request passed the guard meanwhile (%s)",
			c.lock(), c.handle, c.fence, resp.Message)
		c.needRead = true
	default:
		r.tr.Violate("%s: fenced request of handle %d replied %d %s %s", c.lock(), c.handle, st, resp.Code, resp.Message)
		c.handle = 0
	}
	return nil
}

func (c *lockClient) unlock(r *lockRun, s *server) error {
	body := map[string]any{"UnlockID": c.name, "Unlock": c.handle,
		"Atomic": map[string]any{"Key": c.fenceKey(), "Set": c.fence + 1, "IfEq": c.fence}}
	sent := time.Now()
	r.tr.unlocking(c.lock(), c.handle, sent)
	st, resp, err := r.db(context.Background(), s, c.ns, body)
	recv := time.Now()
	r.stats.unlocks.Add(1)
	h := c.handle
	c.handle = 0 // applied or not, this client is done with the hold
	if err != nil {
		return err
	}
	switch {
	case st == http.StatusOK:
		r.tr.unlocked(c.lock(), h)
	case st == http.StatusConflict && resp.Code == "lock_lost":
		r.tr.lost(c.lock(), h, recv)
		r.stats.expiredWhileHeld.Add(1)
	default:
		r.tr.Violate("%s: unlock of handle %d (fence %d) replied %d %s %s", c.lock(), h, c.fence, st, resp.Code, resp.Message)
	}
	return nil
}

// waiterGivesUp queues a second request for the held lock, which gives up:
// by LockWait running out, or by canceling its HTTP request. Then the
// holder proves it still holds the lock, so the waiter was not granted
// while it waited; were it granted later, the lock would be held by nobody
// known for ghostDurMs, which the probes find.
func (c *lockClient) waiterGivesUp(r *lockRun, s *server) error {
	kind := c.giveUp
	c.giveUp = 0
	body := map[string]any{"LockID": c.name, "LockDurMs": ghostDurMs, "LockWaitMs": giveUpWaitMs}
	ctx := context.Background()
	if kind == 2 {
		body["LockWaitMs"] = 60000
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cancelAfterMs*time.Millisecond)
		defer cancel()
	}
	sent := time.Now()
	st, resp, err := r.db(ctx, s, c.ns, body)
	recv := time.Now()
	switch {
	case err != nil && kind == 2 && ctx.Err() != nil:
		r.stats.giveUpCancels.Add(1)
		time.Sleep(cancelGrace)
	case err != nil:
		// The server is gone. Had the holder lost the lock meanwhile the
		// waiter might have been granted before the crash.
		r.excuseUntil(c.lock(), recv.UnixMilli()+ghostDurMs)
		return err
	case st == http.StatusConflict && resp.Code == "lock_timeout":
		r.stats.giveUpTimeouts.Add(1)
	case st == http.StatusOK:
		// Granted: legitimate only if the holder's lock had expired, which
		// the trace checks. Release it at once.
		r.stats.giveUpGranted.Add(1)
		r.tr.granted(c.lock(), resp.Lock, resp.TillMs, ghostDurMs, sent, recv)
		r.tr.unlocking(c.lock(), resp.Lock, time.Now())
		ust, uresp, uerr := s.db(context.Background(), c.ns, map[string]any{"UnlockID": c.name, "Unlock": resp.Lock})
		if uerr != nil {
			return uerr
		}
		if ust != http.StatusOK {
			r.tr.Violate("%s: unlock of handle %d replied %d %s", c.lock(), resp.Lock, ust, uresp.Code)
		}
		r.tr.unlocked(c.lock(), resp.Lock)
	default:
		r.tr.Violate("%s: a waiter that gives up got %d %s %s", c.lock(), st, resp.Code, resp.Message)
	}
	// The holder proves it still holds the lock.
	err = c.fenced(r, s, true)
	if err == nil && c.handle == 0 && kind == 2 {
		// It expired meanwhile, so the canceled waiter may have been
		// granted before the server saw the disconnect.
		r.excuseUntil(c.lock(), time.Now().UnixMilli()+ghostDurMs)
	}
	return err
}

// runLockClients runs every client against s until stop is closed (each then
// stops between requests, holding or not) or the server is gone.
func runLockClients(r *lockRun, s *server, cs []*lockClient, stop <-chan struct{}) {
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if c.step(r, s) != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
}

// releaseAllHolds has every holder release (quietly: the probes come next).
func releaseAllHolds(r *lockRun, s *server, cs []*lockClient) {
	var wg sync.WaitGroup
	for _, c := range cs {
		if c.handle == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.walkAway, c.bumps, c.giveUp = false, 0, 0
			for c.handle != 0 {
				if err := c.step(r, s); err != nil {
					r.t.Errorf("%s: releasing: %v", c.lock(), err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// probeFreeLocks acquires every lock with LockWaitMs 0 once every known hold of it
// has ended: it must be granted at once, else a waiter that gave up holds it.
func probeFreeLocks(r *lockRun, s *server, locks [][2]string) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for _, nl := range locks {
		ns, name := nl[0], nl[1]
		lock := ns + "/" + name
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			free := r.tr.freeAfterMs(lock)
			if ex := r.excused(lock); ex > time.Now().UnixMilli() {
				r.stats.probesSkipped.Add(1)
				return // a grant lost to a crash may hold it
			}
			if wait := time.Until(time.UnixMilli(free + 5)); wait > 0 {
				time.Sleep(wait) // a holder that walked away: its deadline
			}
			// Long enough that the unlock right after it still finds it
			// held on a loaded machine; it is released at once.
			const dur = 10_000
			sent := time.Now()
			st, resp, err := s.db(context.Background(), ns, map[string]any{"LockID": name, "LockDurMs": dur, "LockWaitMs": 0})
			recv := time.Now()
			if err != nil {
				r.t.Errorf("probe %s: %v", lock, err)
				return
			}
			r.stats.probes.Add(1)
			if v := probeVerdict(lock, free, sent.UnixMilli(), st, resp.Code); v != "" {
				r.tr.Violate("%s", v)
				return
			}
			if st != http.StatusOK {
				return
			}
			r.tr.granted(lock, resp.Lock, resp.TillMs, dur, sent, recv)
			r.tr.unlocking(lock, resp.Lock, time.Now())
			if ust, uresp, err := s.db(context.Background(), ns, map[string]any{"UnlockID": name, "Unlock": resp.Lock}); err != nil || ust != http.StatusOK {
				r.t.Errorf("probe %s: unlock replied %d %s %v", lock, ust, uresp.Code, err)
				return
			}
			r.tr.unlocked(lock, resp.Lock)
		}()
	}
	wg.Wait()
}

// checkHeldLocksBlock checks, right after a restart or the restore, that every
// lock a client knows to be held blocks a LockWaitMs 0 acquire (I5).
func checkHeldLocksBlock(r *lockRun, s *server) int {
	n := 0
	for _, h := range r.tr.openHolds(time.Now().UnixMilli() + 100) {
		ns, name, _ := strings.Cut(h.lock, "/")
		const dur = 1000
		sent := time.Now()
		st, resp, err := s.db(context.Background(), ns, map[string]any{"LockID": name, "LockDurMs": dur, "LockWaitMs": 0})
		recv := time.Now()
		if err != nil {
			r.t.Fatalf("%s: %v", h.lock, err)
		}
		switch {
		case st == http.StatusConflict && resp.Code == "lock_timeout":
			n++
			r.stats.blockedAfter.Add(1)
		case st == http.StatusOK:
			// The trace says whether that was before the deadline.
			r.tr.granted(h.lock, resp.Lock, resp.TillMs, dur, sent, recv)
			r.tr.unlocking(h.lock, resp.Lock, time.Now())
			s.mustDB(ns, map[string]any{"UnlockID": name, "Unlock": resp.Lock}, http.StatusOK)
			r.tr.unlocked(h.lock, resp.Lock)
		default:
			r.t.Errorf("%s: LockWaitMs 0 acquire replied %d %s", h.lock, st, resp.Code)
		}
	}
	return n
}

// startLockServer starts a server whose client keeps a connection per
// lock client alive (new connections for each request would run the
// machine out of ephemeral ports over 100,000 grants).
func startLockServer(t *testing.T, dir string) *server {
	s := startServer(t, dir, nil)
	s.tr.MaxIdleConnsPerHost = 1024
	return s
}

// runLockSafety runs the workload until grants grants are seen, with
// restarts SIGKILLs under load, one save/restore in the middle and, at the
// last boundary, a restore of the backup taken at the first.
func runLockSafety(t *testing.T, grants, restarts, nLocks, perLock int) {
	seed := testSeed(t)
	start := time.Now()
	r := &lockRun{t: t, tr: newLockTrace(), excuse: map[string]int64{}}
	var locks [][2]string
	var cs []*lockClient
	for i := 0; i < nLocks; i++ {
		ns, name := fmt.Sprintf("locksafe-%d", i%4), fmt.Sprintf("L%d", i)
		locks = append(locks, [2]string{ns, name})
		for j := 0; j < perLock; j++ {
			cs = append(cs, &lockClient{ns: ns, name: name, rng: rand.New(rand.NewPCG(seed, uint64(len(cs))))})
		}
	}
	dir := t.TempDir()
	s := startLockServer(t, dir)
	phases := restarts + 3 // two boundaries are restores
	restoreAt, olderAt := phases/2, phases-1
	restored, restoredOlder := false, false
	var older string    // the backup taken at the first boundary
	var olderGrants int // grants seen when it was taken
	crashes := 0
	for p := 0; p < phases && !t.Failed(); p++ {
		target := grants * (p + 1) / phases
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() { defer close(done); runLockClients(r, s, cs, stop) }()
		for r.tr.grantCount() < target && !s.Exited() {
			select {
			case <-done:
			case <-time.After(20 * time.Millisecond):
			}
			if time.Since(start) > 20*time.Minute {
				t.Fatalf("only %d grants after %s (hang guard)", r.tr.grantCount(), time.Since(start))
			}
		}
		close(stop)
		<-done
		if s.Exited() {
			t.Fatalf("the server exited by itself: %v\n%s", s.state, s.tail(10))
		}
		t.Logf("phase %d/%d: %d grants after %s", p+1, phases, r.tr.grantCount(), time.Since(start).Round(time.Millisecond))
		if p == phases-1 {
			break
		}
		if p == 0 {
			// A quiet point (no hold the trace knows of outlives the
			// backup), then the backup restored at the last boundary.
			releaseAllHolds(r, s, cs)
			probeFreeLocks(r, s, locks)
			older, olderGrants = filepath.Join(t.TempDir(), "older.snap"), r.tr.grantCount()
			if code, _, stderr := runLatch(t, nil, "snapshot", "save", "--addr", s.URL, "--out", older); code != 0 {
				t.Fatalf("snapshot save: exit %d:\n%s", code, stderr)
			}
		}
		if p+1 == restoreAt {
			s, dir = lockSaveAndRestore(t, r, s)
			restored = true
			continue
		}
		if p+1 == olderAt {
			t.Logf("restoring the backup taken %d grants ago", r.tr.grantCount()-olderGrants)
			s = lockRestoreOlder(t, r, s, cs, locks, older, dir)
			restoredOlder = true
			continue
		}
		// A quiet point: every hold released, every lock must be free.
		releaseAllHolds(r, s, cs)
		probeFreeLocks(r, s, locks)
		// Then a crash under load.
		stop = make(chan struct{})
		done = make(chan struct{})
		go func() { defer close(done); runLockClients(r, s, cs, stop) }()
		burst := r.tr.grantCount() + 200
		for r.tr.grantCount() < burst && !s.Exited() {
			time.Sleep(5 * time.Millisecond)
		}
		s.crash()
		crashes++
		close(stop)
		<-done
		s = startLockServer(t, dir)
		checkHeldLocksBlock(r, s)
	}
	releaseAllHolds(r, s, cs)
	probeFreeLocks(r, s, locks)
	s.stop()
	for i, v := range r.tr.check() {
		if i == 30 {
			t.Errorf("... %d violations in all", len(r.tr.check()))
			break
		}
		t.Error(v)
	}
	el := time.Since(start)
	n := r.tr.grantCount()
	st := &r.stats
	t.Logf("%d grants in %s (%.0f grants/s) on %d locks x %d clients; %d SIGKILL restarts, save+restore %v, restore of an older backup %v; acquires %d (%d lock_timeout), fenced %d, unlocks %d",
		n, el.Round(time.Millisecond), float64(n)/el.Seconds(), nLocks, perLock, crashes, restored, restoredOlder,
		st.acquires.Load(), st.lockTimeouts.Load(), st.fenced.Load(), st.unlocks.Load())
	p50, p99, pmax := r.latencies()
	t.Logf("round trips of fenced requests and unlocks: median %s, p99 %s, max %s", p50.Round(time.Microsecond), p99.Round(time.Microsecond), pmax.Round(time.Millisecond))
	t.Logf("expiries: %d holders walked away, %d lost a lock to its deadline; give-ups: %d by LockWait, %d by cancel (%d granted because the holder's lock had expired first); %d probes of free locks (%d skipped: a grant lost to a crash may hold them), %d held locks blocked after a restart or the restore",
		st.walkAways.Load(), st.expiredWhileHeld.Load(), st.giveUpTimeouts.Load(), st.giveUpCancels.Load(), st.giveUpGranted.Load(), st.probes.Load(), st.probesSkipped.Load(), st.blockedAfter.Load())
	if n < grants {
		t.Errorf("only %d grants, want %d", n, grants)
	}
	if !restored || !restoredOlder || crashes != restarts {
		t.Errorf("%d crashes (want %d), restored %v, restored an older backup %v", crashes, restarts, restored, restoredOlder)
	}
}

// lockSaveAndRestore saves s with `latch snapshot save` while a lock is held,
// kills it, restores the snapshot into a new directory and boots from it.
// Locks held at the save must block until their deadlines; the trace
// checks that new handles are above every earlier one.
func lockSaveAndRestore(t *testing.T, r *lockRun, s *server) (*server, string) {
	const ns, name, dur = "locksafe-restore", "held", 4000
	sent := time.Now()
	resp := s.mustDB(ns, map[string]any{"LockID": name, "LockDurMs": dur}, http.StatusOK)
	r.tr.granted(ns+"/"+name, resp.Lock, resp.TillMs, dur, sent, time.Now())
	before := r.tr.maxHandle()

	snapFile := filepath.Join(t.TempDir(), "locks.snap")
	if code, _, stderr := runLatch(t, nil, "snapshot", "save", "--addr", s.URL, "--out", snapFile); code != 0 {
		t.Fatalf("snapshot save: exit %d:\n%s", code, stderr)
	}
	s.crash()
	newDir := filepath.Join(t.TempDir(), "restored")
	if code, _, stderr := runLatch(t, nil, "snapshot", "restore", "--in", snapFile, "--data-dir", newDir); code != 0 {
		t.Fatalf("snapshot restore: exit %d:\n%s", code, stderr)
	}
	if err := os.Remove(snapFile); err != nil {
		t.Fatal(err)
	}
	s = startLockServer(t, newDir)
	if n := checkHeldLocksBlock(r, s); n == 0 {
		t.Errorf("no lock held at the save blocked after the restore")
	}
	// The lock held at the save is granted only at its deadline, with a
	// handle above every earlier one.
	wait := max(0, resp.TillMs-time.Now().UnixMilli()) + 3000
	sent = time.Now()
	g := s.mustDB(ns, map[string]any{"LockID": name, "LockDurMs": dur, "LockWaitMs": wait}, http.StatusOK)
	r.tr.granted(ns+"/"+name, g.Lock, g.TillMs, dur, sent, time.Now())
	if g.Lock <= before || g.TillMs-dur < resp.TillMs {
		t.Errorf("after the restore %s/%s: handle %d granted at %d; want a handle above %d, not before the deadline %d", ns, name, g.Lock, g.TillMs-dur, before, resp.TillMs)
	}
	r.tr.unlocking(ns+"/"+name, g.Lock, time.Now())
	s.mustDB(ns, map[string]any{"UnlockID": name, "Unlock": g.Lock}, http.StatusOK)
	r.tr.unlocked(ns+"/"+name, g.Lock)
	return s, newDir
}

// lockRestoreOlder rolls the server in dir back to the backup older, taken
// before many grants: it stops s, runs `snapshot restore --force` over dir
// and boots it. Every hold the trace knows of has ended first, so the
// holds the backup forgets are over anyway; what the backup cannot know is
// the handles issued since, and the trace checks that none is issued again.
func lockRestoreOlder(t *testing.T, r *lockRun, s *server, cs []*lockClient, locks [][2]string, older, dir string) *server {
	releaseAllHolds(r, s, cs)
	probeFreeLocks(r, s, locks)
	var free int64
	for _, l := range locks {
		free = max(free, r.tr.freeAfterMs(l[0]+"/"+l[1]))
	}
	time.Sleep(time.Until(time.UnixMilli(free + 5)))
	before := r.tr.maxHandle()
	s.stop()
	if code, _, stderr := runLatch(t, nil, "snapshot", "restore", "--in", older, "--data-dir", dir, "--force"); code != 0 {
		t.Fatalf("snapshot restore --force of the older backup: exit %d:\n%s", code, stderr)
	}
	s = startLockServer(t, dir)
	checkHeldLocksBlock(r, s)
	const ns, name, dur = "locksafe-older", "first", 1000
	sent := time.Now()
	g := s.mustDB(ns, map[string]any{"LockID": name, "LockDurMs": dur}, http.StatusOK)
	r.tr.granted(ns+"/"+name, g.Lock, g.TillMs, dur, sent, time.Now())
	if g.Lock <= before {
		t.Errorf("after restoring an older backup, the first grant got handle %d: handles up to %d were issued since that backup (fencing broken)", g.Lock, before)
	}
	r.tr.unlocking(ns+"/"+name, g.Lock, time.Now())
	s.mustDB(ns, map[string]any{"UnlockID": name, "Unlock": g.Lock}, http.StatusOK)
	r.tr.unlocked(ns+"/"+name, g.Lock)
	return s
}

// TestLockSafety is the short run, part of `make test` (under -race too):
// LATCH_LOCK_GRANTS and LATCH_LOCK_RESTARTS make it longer.
func TestLockSafety(t *testing.T) {
	t.Parallel()
	grants := envInt(t, "LATCH_LOCK_GRANTS", 5000)
	restarts := envInt(t, "LATCH_LOCK_RESTARTS", 1)
	runLockSafety(t, grants, restarts, 50, 4)
}

// TestLockCheckerOnRealServer shows the checker and the probe catching, on
// the real server's replies, what they exist to catch: a hold the clients
// do not know of (as a granted give-up would be) and two holders (made up
// here by hiding an unlock from the trace).
func TestLockCheckerOnRealServer(t *testing.T) {
	t.Parallel()
	s := startLockServer(t, t.TempDir())
	r := &lockRun{t: t, tr: newLockTrace(), excuse: map[string]int64{}}
	const ns = "checker"

	// A hold nobody recorded: the probe must call the lock held by no known holder.
	s.mustDB(ns, map[string]any{"LockID": "ghost", "LockDurMs": 60000}, http.StatusOK)
	probeFreeLocks(r, s, [][2]string{{ns, "ghost"}})
	if got := strings.Join(r.tr.check(), "\n"); !strings.Contains(got, "gave up was granted") {
		t.Errorf("a lock held by an unrecorded grant: the probe reported %q", got)
	}

	// A recorded hold whose unlock the trace never hears of, then a second
	// grant: two holders as far as the trace can tell.
	tr := newLockTrace()
	grant := func() dbResp {
		sent := time.Now()
		g := s.mustDB(ns, map[string]any{"LockID": "twice", "LockDurMs": 60000}, http.StatusOK)
		tr.granted(ns+"/twice", g.Lock, g.TillMs, 60000, sent, time.Now())
		return g
	}
	a := grant()
	s.mustDB(ns, map[string]any{"UnlockID": "twice", "Unlock": a.Lock}, http.StatusOK) // hidden from tr
	grant()
	if got := strings.Join(tr.check(), "\n"); !strings.Contains(got, "two holders") {
		t.Errorf("a second grant while the trace believes the first still holds: check reported %q", got)
	}
	s.stop()
}
