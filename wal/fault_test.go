package wal

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

var errInjected = errors.New("injected fault")

// faultHook fails the n-th call of step (1-based) and counts every call.
type faultHook struct {
	step  string
	n     int64
	calls sync.Map // step -> *atomic.Int64
}

func (h *faultHook) count(step string) int64 {
	v, _ := h.calls.LoadOrStore(step, new(atomic.Int64))
	return v.(*atomic.Int64).Load()
}

func (h *faultHook) hook(step string) error {
	v, _ := h.calls.LoadOrStore(step, new(atomic.Int64))
	if v.(*atomic.Int64).Add(1) == h.n && step == h.step {
		return errInjected
	}
	return nil
}

// failRecorder is an OnFail that remembers each call.
type failRecorder struct {
	mu   sync.Mutex
	errs []error
}

func (f *failRecorder) onFail(err error) {
	f.mu.Lock()
	f.errs = append(f.errs, err)
	f.mu.Unlock()
}

func (f *failRecorder) get() []error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]error(nil), f.errs...)
}

// checkFailedTicket asserts tk is already resolved with ErrFailed.
func checkFailedTicket(t *testing.T, tk *Ticket, what string) {
	t.Helper()
	select {
	case <-tk.Done():
	default:
		t.Fatalf("%s: ticket not resolved at once", what)
	}
	if !errors.Is(tk.Err(), ErrFailed) || errors.Is(tk.Err(), ErrClosed) {
		t.Fatalf("%s: %v, want ErrFailed", what, tk.Err())
	}
}

// TestFaultFailStop injects a write or fsync error into the n-th batch of a
// serial writer: that batch fails, the log is failed for good, OnFail runs
// once, and a reopen (without the fault) finds every acknowledged record.
func TestFaultFailStop(t *testing.T) {
	cases := []struct {
		step   string
		n      int
		onFail bool
	}{
		{"write", 4, true},
		{"fsync", 4, true},
		{"write", 1, true},
		{"fsync", 1, false},
		{"write", 7, false},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s-%d", c.step, c.n), func(t *testing.T) {
			dir := t.TempDir()
			h := &faultHook{step: c.step, n: int64(c.n)}
			var fr failRecorder
			opts := Options{FaultHook: h.hook}
			if c.onFail {
				opts.OnFail = fr.onFail
			}
			l, _ := mustOpen(t, dir, opts)
			var acked [][]byte
			for i := 0; i < c.n-1; i++ {
				p := payloadOf(i, 10+i)
				appendWait(t, l, p)
				acked = append(acked, p)
			}
			if l.Err() != nil {
				t.Fatalf("Err before the fault: %v", l.Err())
			}
			failedPayload := payloadOf(c.n-1, 33)
			tk := l.Append(failedPayload)
			err := tk.Wait()
			if !errors.Is(err, ErrFailed) || errors.Is(err, ErrClosed) {
				t.Fatalf("ticket of the failing batch: %v, want ErrFailed", err)
			}
			if msg := err.Error(); !strings.Contains(msg, c.step) || !strings.Contains(msg, errInjected.Error()) {
				t.Fatalf("error does not say what failed: %s", msg)
			}
			if !errors.Is(l.Err(), ErrFailed) {
				t.Fatalf("Err after the fault: %v", l.Err())
			}
			if l.DurableSeq() != uint64(c.n-1) {
				t.Fatalf("DurableSeq %d, want %d", l.DurableSeq(), c.n-1)
			}
			// Nothing is acknowledged any more, and nothing is attempted.
			writes := h.count("write")
			for i := 0; i < 10; i++ {
				checkFailedTicket(t, l.Append([]byte("later")), fmt.Sprintf("later append %d", i))
			}
			if l.DurableSeq() != uint64(c.n-1) || l.LastSeq() != uint64(c.n) {
				t.Fatalf("after refused appends: DurableSeq %d LastSeq %d", l.DurableSeq(), l.LastSeq())
			}
			if cerr := l.Close(); !errors.Is(cerr, ErrFailed) {
				t.Fatalf("Close after the fault: %v", cerr)
			}
			checkFailedTicket(t, l.Append([]byte("after close")), "append after Close")
			if h.count("write") != writes || h.count("write") != int64(c.n) {
				t.Fatalf("%d write steps after the fault (%d in all)", h.count("write")-writes, h.count("write"))
			}
			if c.onFail {
				// Close waits for the committer, which calls OnFail before
				// it stops: by now it has run, exactly once.
				errs := fr.get()
				if len(errs) != 1 || errs[0] != err {
					t.Fatalf("OnFail calls: %v, want once with %v", errs, err)
				}
			}

			l, got := mustOpen(t, dir, Options{})
			switch c.step {
			case "write":
				// The failing batch never reached tidwall/wal.
				checkRecords(t, got, 1, acked)
			case "fsync":
				// The failing batch was written, only its fsync "failed":
				// it may come back. It was never acknowledged, which is
				// allowed; what matters is that every acknowledged record
				// is there and nothing else is.
				if len(got) == len(acked)+1 {
					checkRecords(t, got, 1, append(append([][]byte{}, acked...), failedPayload))
				} else {
					checkRecords(t, got, 1, acked)
				}
			}
			// The reopened log works and continues the sequence.
			next := l.LastSeq() + 1
			appendWait(t, l, []byte("fresh"))
			mustClose(t, l)
			l, got = mustOpen(t, dir, Options{})
			if r := got[len(got)-1]; r.seq != next || string(r.payload) != "fresh" {
				t.Fatalf("after reopen: last record %d %q, want %d fresh", r.seq, r.payload, next)
			}
			mustClose(t, l)
		})
	}
}

// TestFaultConcurrent fails a write while many goroutines append: every
// record acknowledged before it is recovered, and exactly those.
func TestFaultConcurrent(t *testing.T) {
	for _, step := range []string{"write", "fsync"} {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			h := &faultHook{step: step, n: 15}
			var fr failRecorder
			l, _ := mustOpen(t, dir, Options{FaultHook: h.hook, OnFail: fr.onFail, SegmentSize: 512})
			const writers = 8
			var mu sync.Mutex
			acked := map[string]bool{}
			written := map[string]bool{}
			var wg sync.WaitGroup
			errs := make(chan error, writers)
			for w := 0; w < writers; w++ {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					for i := 0; ; i++ {
						p := fmt.Sprintf("w%d-%d", w, i)
						mu.Lock()
						written[p] = true
						mu.Unlock()
						if err := l.Append([]byte(p)).Wait(); err != nil {
							if !errors.Is(err, ErrFailed) {
								errs <- fmt.Errorf("writer %d: %v", w, err)
							}
							break
						}
						mu.Lock()
						acked[p] = true
						mu.Unlock()
						if i > 1000 {
							errs <- fmt.Errorf("writer %d: no failure after %d appends", w, i)
							return
						}
					}
					tk := l.Append([]byte("after"))
					select {
					case <-tk.Done():
						if !errors.Is(tk.Err(), ErrFailed) {
							errs <- fmt.Errorf("writer %d: later append: %v", w, tk.Err())
						}
					default:
						errs <- fmt.Errorf("writer %d: later append not failed at once", w)
					}
				}(w)
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			durable := l.DurableSeq()
			if cerr := l.Close(); !errors.Is(cerr, ErrFailed) {
				t.Fatalf("Close: %v", cerr)
			}
			if n := len(fr.get()); n != 1 {
				t.Fatalf("OnFail called %d times", n)
			}
			if durable != uint64(len(acked)) {
				t.Fatalf("DurableSeq %d but %d records acknowledged", durable, len(acked))
			}

			l, got := mustOpen(t, dir, Options{})
			defer mustClose(t, l)
			seen := map[string]bool{}
			for i, r := range got {
				p := string(r.payload)
				if r.seq != uint64(i+1) || !written[p] || seen[p] {
					t.Fatalf("record %d: seq %d payload %q (written %v, duplicate %v)", i, r.seq, p, written[p], seen[p])
				}
				seen[p] = true
				if i < len(acked) && !acked[p] {
					t.Fatalf("record %d %q was not acknowledged but precedes acknowledged ones", i, p)
				}
			}
			for p := range acked {
				if !seen[p] {
					t.Fatalf("acknowledged record %q lost", p)
				}
			}
			if step == "write" && len(got) != len(acked) {
				t.Fatalf("replayed %d records, %d acknowledged; the failed write put nothing on disk", len(got), len(acked))
			}
		})
	}
}

// TestFaultDirsync fails the directory fsync of the batch that created a
// new segment: that batch is not acknowledged although its data is on
// disk, the log is failed, and the acknowledged records survive.
func TestFaultDirsync(t *testing.T) {
	dir := t.TempDir()
	h := &faultHook{step: "dirsync", n: 1}
	var fr failRecorder
	// 40-byte payloads make 54-byte entries: the third reaches 128 and
	// makes tidwall/wal create the second segment.
	l, _ := mustOpen(t, dir, Options{SegmentSize: 128, FaultHook: h.hook, OnFail: fr.onFail})
	acked := [][]byte{payloadOf(0, 40), payloadOf(1, 40)}
	appendWait(t, l, acked...)
	if n := len(segmentPaths(t, dir)); n != 1 || h.count("dirsync") != 0 {
		t.Fatalf("%d segments, %d dirsyncs before the third record", n, h.count("dirsync"))
	}
	third := payloadOf(2, 40)
	err := l.Append(third).Wait()
	if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), "directory fsync") {
		t.Fatalf("ticket of the batch that created a segment: %v", err)
	}
	if segs := segmentPaths(t, dir); len(segs) != 2 || segs[1].first != 4 {
		t.Fatalf("segments after the cycle: %v", segs)
	}
	if l.DurableSeq() != 2 || !errors.Is(l.Err(), ErrFailed) {
		t.Fatalf("DurableSeq %d, Err %v", l.DurableSeq(), l.Err())
	}
	checkFailedTicket(t, l.Append([]byte("later")), "later append")
	if cerr := l.Close(); !errors.Is(cerr, ErrFailed) {
		t.Fatalf("Close: %v", cerr)
	}
	if errs := fr.get(); len(errs) != 1 || errs[0] != err {
		t.Fatalf("OnFail calls %v", errs)
	}

	l, got := mustOpen(t, dir, Options{SegmentSize: 128})
	// The third record was written and fsynced before the directory fsync
	// failed, so it is on disk; it was never acknowledged.
	if len(got) == 3 {
		checkRecords(t, got, 1, append(append([][]byte{}, acked...), third))
	} else {
		checkRecords(t, got, 1, acked)
	}
	appendWait(t, l, []byte("fresh"))
	mustClose(t, l)
	l, got = mustOpen(t, dir, Options{})
	if !bytes.Equal(got[len(got)-1].payload, []byte("fresh")) || len(got) < 3 {
		t.Fatalf("after reopen and append: %d records", len(got))
	}
	mustClose(t, l)
}
