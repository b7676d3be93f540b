package main

// Process tests of the real binary (issue 2, acceptance 2 and the fail-stop
// part of 3): SIGKILL at random points, SIGTERM, injected storage faults,
// the data directory lock, torn tails and corruption.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// envInt reads a positive integer from the environment, or def.
func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// testSeed is random per run and logged, so a failure can be replayed with
// LATCH_TEST_SEED.
func testSeed(t *testing.T) uint64 {
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

// heldLock is a lock taken before a crash that must outlive it.
type heldLock struct {
	ns, name string
	handle   uint64
	tillMs   int64
}

// checkHeldLocks checks locks taken before a crash on a restarted server.
// Before its deadline a lock must still block (409 lock_timeout with
// LockWaitMs 0); once the deadline has passed it must be granted, never
// earlier by the server's own clock, with a handle above every handle seen.
// With final, it waits for every deadline. It returns the locks still to
// check and counts in blocked the checks that found a lock still blocking.
func checkHeldLocks(t *testing.T, s *server, h *handles, locks []heldLock, final bool, blocked *int) []heldLock {
	t.Helper()
	const dur = 5000
	var keep []heldLock
	for _, l := range locks {
		now := time.Now().UnixMilli()
		if !final && now < l.tillMs-100 {
			st, r, err := s.db(context.Background(), l.ns, map[string]any{"LockID": l.name, "LockDurMs": dur, "LockWaitMs": 0})
			if err != nil {
				t.Fatalf("lock %s: %v", l.name, err)
			}
			switch {
			case st == http.StatusConflict && r.Code == "lock_timeout":
				keep = append(keep, l)
				*blocked++
			case st == http.StatusOK && r.TillMs-dur >= l.tillMs:
				// This process was slow: by the server's clock the deadline
				// had passed, so the grant is right.
				h.see(t, r.Lock, "lock "+l.name+" after its deadline")
				s.mustDB(l.ns, map[string]any{"UnlockID": l.name, "Unlock": r.Lock}, http.StatusOK)
			default:
				t.Errorf("lock %s/%s held (handle %d) until %d before the crash: at %d a LockWaitMs 0 request got %d %s %s (granted until %d), want 409 lock_timeout",
					l.ns, l.name, l.handle, l.tillMs, now, st, r.Code, r.Message, r.TillMs)
			}
			continue
		}
		if !final && now < l.tillMs+100 {
			keep = append(keep, l) // too close to the deadline to say; next time
			continue
		}
		wait := max(0, l.tillMs-now) + 3000
		r := s.mustDB(l.ns, map[string]any{"LockID": l.name, "LockDurMs": dur, "LockWaitMs": wait}, http.StatusOK)
		h.see(t, r.Lock, "lock "+l.name+" after its deadline")
		if granted := r.TillMs - dur; granted < l.tillMs {
			t.Errorf("lock %s/%s held until %d before the crash was granted again at %d (server clock), before its deadline", l.ns, l.name, l.tillMs, granted)
		}
		s.mustDB(l.ns, map[string]any{"UnlockID": l.name, "Unlock": r.Lock}, http.StatusOK)
	}
	return keep
}

func TestCrashKeepsAcknowledgedWrites(t *testing.T) {
	t.Parallel()
	cycles := envInt(t, "LATCH_CRASH_CYCLES", 24)
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 1))
	dir := t.TempDir()
	m := newModel(t)
	ws := newWriters(16, "crash", 4, seed)
	h := &handles{}
	var held []heldLock
	snapshots, withSnap, heldTaken, blocked := 0, 0, 0, 0
	start := time.Now()
	for c := 0; c < cycles && !t.Failed(); c++ {
		// Every third cycle snapshots often and lives past the first
		// snapshot tick, so kills land before, during and after snapshots
		// and log truncation.
		snapCycle := c%3 == 2
		var args []string
		life := time.Duration(50+rng.IntN(351)) * time.Millisecond
		if snapCycle {
			args = []string{"--snapshot-every-records", "200", "--snapshot-keep", strconv.Itoa(1 + c%2)}
			life = time.Duration(1000+rng.IntN(500)) * time.Millisecond
		}
		s := startServer(t, dir, nil, args...)
		m.verify(s)
		if t.Failed() {
			break
		}
		held = checkHeldLocks(t, s, h, held, false, &blocked)
		if c%4 == 1 {
			name := fmt.Sprintf("held-%d", c)
			r := s.mustDB("crash-locks", map[string]any{"LockID": name, "LockDurMs": 3000}, http.StatusOK)
			h.see(t, r.Lock, name)
			held = append(held, heldLock{"crash-locks", name, r.Lock, r.TillMs})
			heldTaken++
		}
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); m.run(s, ws, nil) }()
		go func() { defer wg.Done(); churn(t, s, h, "crash-locks", "churn", nil, nil) }()
		time.Sleep(life)
		s.crash()
		wg.Wait()
		if n := s.count("msg=snapshot "); n > 0 {
			snapshots += n
			withSnap++
		}
	}
	if t.Failed() {
		return
	}
	s := startServer(t, dir, nil)
	m.verify(s)
	checkHeldLocks(t, s, h, held, true, &blocked)
	s.stop()
	t.Logf("%d crash cycles in %s: %s; %d lock handles, %d locks held across a crash, found still blocking %d times after a restart; %d snapshots in %d cycles",
		cycles, time.Since(start).Round(time.Millisecond), m.summary(), h.n, heldTaken, blocked, snapshots, withSnap)
	if heldTaken > 0 && blocked == 0 {
		t.Errorf("no lock held across a crash was checked before its deadline: the restarts were too slow to test that a held lock still blocks")
	}
	if snapshots == 0 {
		t.Errorf("no cycle took a snapshot before its crash (--snapshot-every-records 200): crashes around snapshots were not tested")
	}
	if m.acks < cycles {
		t.Errorf("only %d writes acknowledged in %d cycles: the test wrote too little to check anything", m.acks, cycles)
	}
}

func TestSigtermExitsCleanly(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	m := newModel(t)
	ws := newWriters(8, "term", 2, testSeed(t))
	s := startServer(t, dir, nil)
	lock := s.mustDB("term-locks", map[string]any{"LockID": "L", "LockDurMs": 60000}, http.StatusOK)

	waiter := make(chan outcome, 1)
	go func() {
		o := outcome{sent: time.Now()}
		var r dbResp
		o.status, r, o.err = s.db(context.Background(), "term-locks", map[string]any{"LockID": "L", "LockDurMs": 1000, "LockWaitMs": 120000})
		o.code, o.recv = r.Code, time.Now()
		waiter <- o
	}()
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked, shutting := 0, 0
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				o := m.step(context.Background(), s, w)
				mu.Lock()
				if o.ok() {
					acked++
				} else if o.status == http.StatusServiceUnavailable && o.code == "shutting_down" {
					shutting++
				}
				mu.Unlock()
				switch {
				case o.ok():
				case o.err != nil, o.status == http.StatusServiceUnavailable && o.code == "shutting_down":
					return // a clean end: refused, closed, or told so
				default:
					t.Errorf("writer %d during shutdown: %d %s: want success, 503 shutting_down or a closed connection", w.id, o.status, o.code)
					return
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond) // the load runs and the waiter is parked
	s.Term()
	st := s.Wait(hangGuard)
	wg.Wait()
	if st.ExitCode() != 0 {
		t.Errorf("SIGTERM under load: exit %v, want 0", st)
	}
	if !strings.Contains(s.Stderr(), "stopped cleanly") {
		t.Errorf("no 'stopped cleanly' line on stderr")
	}
	select {
	case o := <-waiter:
		switch {
		case o.err != nil:
			t.Logf("the parked waiter's connection was closed: %v", o.err)
		case o.status == http.StatusServiceUnavailable && o.code == "shutting_down":
		default:
			t.Errorf("the parked lock waiter got %d %s, want 503 shutting_down or a closed connection", o.status, o.code)
		}
	case <-time.After(hangGuard):
		t.Fatalf("the parked lock waiter got no reply %s after SIGTERM (it would have waited 120 s)", hangGuard)
	}
	t.Logf("%d writes acknowledged, %d got 503 shutting_down", acked, shutting)
	if acked == 0 {
		t.Fatalf("no write was acknowledged before SIGTERM")
	}

	s2 := startServer(t, dir, nil)
	m.verify(s2)
	// The lock held across the clean stop still blocks, and its handle still holds it.
	if r := s2.mustDB("term-locks", map[string]any{"LockID": "L", "LockDurMs": 1000}, http.StatusConflict); r.Code != "lock_timeout" {
		t.Errorf("lock L after the restart: got %s, want lock_timeout", r.Code)
	}
	s2.mustDB("term-locks", map[string]any{"UnlockID": "L", "Unlock": lock.Lock}, http.StatusOK)
	s2.stop()
}

func TestStorageFaultStopsServer(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, spec string
		writers    int
		pad        int // bytes of padding per KV write, to fill a segment
	}{
		// Several points of failure: whether a batch is queued behind the
		// failing one, and how full it is, varies.
		{"fsync-30", "fsync:30", 16, 0},
		{"fsync-70", "fsync:70", 16, 0},
		{"fsync-110", "fsync:110", 16, 0},
		{"fsync-150", "fsync:150", 16, 0},
		{"write-40", "write:40", 16, 0},
		{"write-120", "write:120", 16, 0},
		// The first directory fsync comes when a new segment is created;
		// serve has no segment size flag, so fill the default 20 MiB with
		// large values (about 25 requests).
		{"dirsync", "dirsync:1", 4, 900_000},
	}
	seed := testSeed(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			m := newModel(t)
			ws := newWriters(tc.writers, "fault", 2, seed)
			for _, w := range ws {
				w.versioned = true
				if tc.pad > 0 {
					w.pad, w.onlyKV = strings.Repeat("x", tc.pad), true
				}
			}
			s := startServer(t, dir, []string{"LATCH_TEST_FAULT=" + tc.spec})
			outs, st := driveUntilExit(s, m, ws, hangGuard)
			if st.ExitCode() == 0 || killedBySIGKILL(st) {
				t.Errorf("after an injected %s failure: exit %v, want a non-zero exit code", tc.spec, st)
			}
			if !strings.Contains(s.Stderr(), "storage failed") {
				t.Errorf("stderr does not say the storage failed:\n%s", s.tail(5))
			}
			_, failed503 := checkNoAckAfterFailure(t, tc.spec, outs)
			if failed503 == 0 {
				t.Errorf("no request got 503 storage_failed: the requests pending at the fault must fail with it")
			}

			s2 := startServer(t, dir, nil)
			checkFailedOrder(t, s2, outs)
			m.verify(s2)
			s2.stop()
		})
	}
}

// driveUntilExit runs the writers against s until the server exits (at most
// wait), and returns every outcome with the server's exit state.
func driveUntilExit(s *server, m *model, ws []*writer, wait time.Duration) ([]outcome, *os.ProcessState) {
	var mu sync.Mutex
	var outs []outcome
	var wg sync.WaitGroup
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				exited := s.Exited()
				o := m.step(context.Background(), s, w)
				mu.Lock()
				outs = append(outs, o)
				mu.Unlock()
				if o.err != nil && exited {
					return
				}
				if !o.ok() {
					time.Sleep(5 * time.Millisecond) // pacing while the server stops, not synchronisation
				}
			}
		}()
	}
	st := s.Wait(wait)
	wg.Wait()
	return outs, st
}

// checkNoAckAfterFailure checks that every failure is a 503 storage_failed
// or shutting_down (or no reply), that nothing sent after the first failed
// reply was acknowledged, and that something was acknowledged before it.
// It sorts outs by send time.
func checkNoAckAfterFailure(t *testing.T, spec string, outs []outcome) (acked, failed503 int) {
	t.Helper()
	sort.Slice(outs, func(i, j int) bool { return outs[i].sent.Before(outs[j].sent) })
	var firstFail time.Time
	for _, o := range outs {
		if o.ok() {
			acked++
			continue
		}
		if o.status == http.StatusServiceUnavailable && o.code == "storage_failed" {
			failed503++
		} else if o.err == nil && !(o.status == http.StatusServiceUnavailable && o.code == "shutting_down") {
			t.Errorf("unexpected reply %d %s", o.status, o.code)
		}
		if firstFail.IsZero() || o.recv.Before(firstFail) {
			firstFail = o.recv
		}
	}
	late := 0
	for _, o := range outs {
		if o.ok() && o.sent.After(firstFail) {
			late++
		}
	}
	t.Logf("%s: %d requests, %d acknowledged, %d got 503 storage_failed", spec, len(outs), acked, failed503)
	if late > 0 {
		t.Errorf("%d requests sent after the first failed reply were acknowledged: nothing may be acknowledged after a storage failure", late)
	}
	if acked == 0 {
		t.Errorf("nothing was acknowledged before the fault: the test checks nothing")
	}
	return acked, failed503
}

// checkFailedOrder finds, after a restart, the requests that got 503
// storage_failed but whose write reached the disk anyway (a failed fsync of
// written data). Their version is where they were applied in the
// namespace's order, so in the log: no acknowledged request may come after
// them, since a batch after a failed one must never be acknowledged.
func checkFailedOrder(t *testing.T, s *server, outs []outcome) {
	t.Helper()
	failedAt := map[string]uint64{} // namespace -> lowest version of a failed request found
	found := 0
	for _, o := range outs {
		if o.status != http.StatusServiceUnavailable || o.kv.key == "" {
			continue
		}
		r := s.mustDB(o.kv.ns, map[string]any{"KVGet": []string{o.kv.key}}, http.StatusOK)
		if len(r.KV) == 1 && string(r.KV[0].Value) == strconv.FormatInt(o.val, 10) {
			found++
			if v, ok := failedAt[o.kv.ns]; !ok || r.KV[0].Version < v {
				failedAt[o.kv.ns] = r.KV[0].Version
			}
		}
	}
	bad := 0
	for _, o := range outs {
		if v, ok := failedAt[o.kv.ns]; ok && o.ok() && o.version > v {
			if bad++; bad <= 5 {
				t.Errorf("%s/%s=%d was acknowledged at version %d, after a request applied at version %d whose batch failed",
					o.kv.ns, o.kv.key, o.val, o.version, v)
			}
		}
	}
	t.Logf("%d failed requests found on disk after the restart", found)
}

func TestDataDirLocked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServer(t, dir, nil)
	code, _, stderr := runLatch(t, nil, "serve", "--addr", "127.0.0.1:0", "--data-dir", dir, "--shards", "2")
	if code == 0 {
		t.Errorf("a second server on the same data directory exited 0")
	}
	if !strings.Contains(stderr, dir) || !strings.Contains(stderr, "in use") {
		t.Errorf("the second server's message names neither the directory nor the lock:\n%s", stderr)
	}
	// The first one is unharmed.
	s.mustDB("locked", map[string]any{"KVSet": map[string]any{"Key": "a", "Value": 1}}, http.StatusOK)
	s.stop()
}

var segmentName = regexp.MustCompile(`^[0-9]{20}$`)

// segments lists the log segment files of a data directory, oldest first.
func segments(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "wal"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if segmentName.MatchString(e.Name()) {
			out = append(out, filepath.Join(dir, "wal", e.Name()))
		}
	}
	if len(out) == 0 {
		t.Fatalf("no log segment in %s/wal", dir)
	}
	return out
}

func TestTornTailAndCorruptionViaBinary(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServer(t, dir, nil)
	const n = 50
	var keys []string
	for i := 0; i < n; i++ {
		keys = append(keys, fmt.Sprintf("k%d", i))
		s.mustDB("torn", map[string]any{"KVSet": map[string]any{"Key": keys[i], "Value": i}}, http.StatusOK)
	}
	s.stop()

	// A torn write: the last record cut short.
	segs := segments(t, dir)
	last := segs[len(segs)-1]
	st, err := os.Stat(last)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() < 20 {
		t.Fatalf("%s has only %d bytes", last, st.Size())
	}
	if err := os.Truncate(last, st.Size()-3); err != nil {
		t.Fatal(err)
	}
	s = startServer(t, dir, nil)
	if !strings.Contains(s.Stderr(), "repaired_segment=") {
		t.Errorf("the torn tail was not reported as repaired:\n%s", s.Stderr())
	}
	if broken, _ := filepath.Glob(filepath.Join(dir, "wal", "*.broken-at-*")); len(broken) == 0 {
		t.Errorf("no *.broken-at-* copy of the torn tail in %s/wal", dir)
	}
	vals, _ := readState(t, s, "torn", keys, nil)
	for i, k := range keys {
		got := vals[k]
		switch {
		case got != nil && *got == int64(i):
		case got == nil && i == n-1:
			// the torn record
		default:
			t.Errorf("%s = %v after the tail repair, want %d", k, deref(got), i)
		}
	}
	s.stop()

	// Damage in the first record, with valid records after it: refuse to start.
	first := segments(t, dir)[0]
	data, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}
	data[2] ^= 0x40 // inside the first record's CRC (after its uvarint length)
	if err := os.WriteFile(first, data, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runLatch(t, nil, "serve", "--addr", "127.0.0.1:0", "--data-dir", dir, "--shards", "2")
	if code == 0 {
		t.Errorf("the server started (exit 0) on a log corrupt before its tail")
	}
	if !strings.Contains(stderr, filepath.Base(first)) || !strings.Contains(stderr, "offset") {
		t.Errorf("the refusal does not name the file %s and the offset:\n%s", filepath.Base(first), stderr)
	}
	if strings.Contains(stderr, "msg=listening") {
		t.Errorf("the server listened on a corrupt log:\n%s", stderr)
	}
}
