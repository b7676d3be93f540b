package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// smokeScale shrinks the 10,000-watcher and 10,000-waiter rows (and the
// 1,000-key watch row) so the smoke run stays far below the race
// detector's goroutine limit.
const smokeScale = 0.01

// TestScenariosSmoke runs every scenario briefly against an in-process
// server and checks behaviour only: no errors, no violations (counters
// add up, handles increase, one holder at a time, every watcher saw every
// change). Never timing.
func TestScenariosSmoke(t *testing.T) {
	url := startLatch(t, t.TempDir())
	c := NewClient(url, 16)
	defer c.Close()
	for _, s := range Scenarios() {
		t.Run(s.Name, func(t *testing.T) {
			clients := 8
			if s.DefaultClients < 100 {
				clients = 12 // the hand-off row: enough waiters to queue
			}
			res := s.Run(context.Background(), c, Options{Clients: clients, Duration: 150 * time.Millisecond, Seed: 1, Scale: smokeScale})
			t.Log(res.String())
			checkSmoke(t, s, res)
			if !strings.HasPrefix(s.Name, "idle-") && !strings.HasPrefix(s.Name, "watch-") && res.Clients != clients {
				t.Errorf("result has %d clients, want %d", res.Clients, clients)
			}
		})
	}
}

func checkSmoke(t *testing.T, s Scenario, res *Result) {
	t.Helper()
	if res.Skipped != "" {
		t.Fatalf("skipped: %s", res.Skipped)
	}
	if res.Ops == 0 {
		t.Errorf("no operation succeeded")
	}
	if n := res.ErrorCount(); n > 0 {
		t.Errorf("%d errors: %v", n, res.Errors)
	}
	for _, v := range res.Violations {
		t.Error(v)
	}
	if res.Failed() {
		t.Errorf("result failed")
	}
	if res.Scenario != s.Name || res.Title == "" || res.Target != "latch" || res.Histogram().Count() != uint64(res.Ops) {
		t.Errorf("result labels: %q %q %q, %d latencies for %d ops", res.Scenario, res.Title, res.Target, res.Histogram().Count(), res.Ops)
	}
	if _, err := json.Marshal(res); err != nil {
		t.Errorf("json: %v", err)
	}
}

// TestOptionsSmoke runs a few rows with the other options: an ops limit,
// an open-loop rate, simulated latency, progress output.
func TestOptionsSmoke(t *testing.T) {
	url := startLatch(t, t.TempDir())
	c := NewClient(url, 16)
	defer c.Close()
	var progress strings.Builder
	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"kv64-1x1000", Options{Clients: 4, Ops: 50}},
		{"atomic-1000x1", Options{Clients: 4, Duration: 200 * time.Millisecond, Rate: 200}},
		{"lock-1x1000", Options{Clients: 4, Duration: 100 * time.Millisecond, Latency: 2 * time.Millisecond}},
		{"watch-1x100", Options{Clients: 4, Ops: 10, Scale: 0.1, Latency: 2 * time.Millisecond}},
		{"kv1k-1x1", Options{Clients: 2, Duration: 500 * time.Millisecond, Progress: &syncWriter{w: &progress}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, ok := Lookup(tc.name)
			if !ok {
				t.Fatal("no such scenario")
			}
			tc.o.Seed = 2
			res := s.Run(context.Background(), c, tc.o)
			t.Log(res.String())
			checkSmoke(t, s, res)
			if tc.o.Ops > 0 && tc.name != "watch-1x100" && res.Ops > tc.o.Ops {
				t.Errorf("%d ops with Ops %d", res.Ops, tc.o.Ops)
			}
		})
	}
	if !strings.Contains(progress.String(), "\rkv1k-1x1") {
		t.Errorf("no progress line in %q", progress.String())
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func TestSelect(t *testing.T) {
	all, err := Select("all")
	if err != nil || len(all) != len(Scenarios()) {
		t.Fatalf("all: %d, %v", len(all), err)
	}
	seen := map[string]bool{}
	for _, s := range all {
		if seen[s.Name] {
			t.Errorf("duplicate scenario name %s", s.Name)
		}
		seen[s.Name] = true
	}
	for _, name := range []string{"kv64-1x1", "kv1k-1000x1000", "kv10k-1000x1", "atomic-1x1000", "watch-1x10000",
		"watch-1000x5", "lock-1x1000", "lock-1000x1000", "lock-handoff", "idle-waiters-10000"} {
		if !seen[name] {
			t.Errorf("no scenario %s", name)
		}
	}
	got, err := Select("kv10k-*, lock-1x1,atomic-1x1")
	if err != nil {
		t.Fatal(err)
	}
	var gotNames []string
	for _, s := range got {
		gotNames = append(gotNames, s.Name)
	}
	if want := "lock-handoff kv10k-1x1 kv10k-1x1000 kv10k-1000x1 kv10k-1000x1000 atomic-1x1"; strings.Join(gotNames, " ") != want {
		t.Errorf("Select: %q, want %q", strings.Join(gotNames, " "), want)
	}
	if _, err := Select("kv64-1x1,nope"); err == nil {
		t.Error("unknown name accepted")
	}
}

// TestLockChecksCatchDoubleGrant points the lock scenario at a broken
// server that grants every request at once, and at one whose handles go
// backwards: the checks must report both.
func TestLockChecksCatchDoubleGrant(t *testing.T) {
	var next atomic.Int64
	for _, tc := range []struct {
		name     string
		scenario string
		handle   func() int64
		want     string
	}{
		{"double grant", "lock-handoff", func() int64 { return next.Add(1) }, "while client"},
		{"handle reused", "lock-handoff", func() int64 { return 7 }, "after handle"},
		{"idle double grant", "idle-waiters-10000", func() int64 { return next.Add(1) }, "while the first holder held"},
		{"idle handle reused", "idle-waiters-10000", func() int64 { return 7 }, "was granted to client"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := serveHandler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, `{"Lock":%d,"Till":1,"TillMs":1000}`, tc.handle())
			}))
			c := NewClient(url, 8)
			defer c.Close()
			s, _ := Lookup(tc.scenario)
			res := s.Run(context.Background(), c, Options{Clients: 8, Duration: 100 * time.Millisecond, Hold: time.Millisecond, Scale: 0.001})
			if !strings.Contains(strings.Join(res.Violations, "\n"), tc.want) {
				t.Errorf("violations %q, want one containing %q", res.Violations, tc.want)
			}
			if !res.Failed() || !strings.Contains(res.String(), "VIOLATION") {
				t.Errorf("a result with violations must fail and say so: %s", res)
			}
		})
	}
}

// brokenLockHandler grants every lock request at once, with increasing
// handles.
func brokenLockHandler() http.Handler {
	var next atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"Lock":%d,"Till":1,"TillMs":1000}`, next.Add(1))
	})
}

// TestCounterChecksCatchLostAdds: a server that acknowledges every add
// but applies only every other one must fail the counter check.
func TestCounterChecksCatchLostAdds(t *testing.T) {
	var mu sync.Mutex
	counters := map[string]int64{}
	var n int
	url := serveHandler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Atomic []struct {
				Key string
				Add *int64
			}
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, `{"Code":"bad_json"}`, 400)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for _, a := range req.Atomic {
			k := r.URL.Path + "/" + a.Key
			if a.Add != nil {
				if n++; n%2 == 0 {
					counters[k] += *a.Add
				}
			}
			out = append(out, fmt.Sprintf(`{"Key":%q,"Value":%d}`, a.Key, max(counters[k], 1)))
		}
		fmt.Fprintf(w, `{"Atomic":[%s]}`, strings.Join(out, ","))
	}))
	c := NewClient(url, 8)
	defer c.Close()
	s, _ := Lookup("atomic-1x1")
	res := s.Run(context.Background(), c, Options{Clients: 4, Ops: 40})
	if !strings.Contains(strings.Join(res.Violations, "\n"), "acknowledged adds") {
		t.Errorf("violations %q, want a counter mismatch", res.Violations)
	}
}

// TestWatchChecksCatchMissedChanges: a server whose watches return at
// once with the version the watcher already has (they never see a
// change) must fail the watch check, as must one that wakes watchers
// with a new version before anything was written.
func TestWatchChecksCatchMissedChanges(t *testing.T) {
	for _, tc := range []struct {
		name    string
		version func(held int64) int64
		want    string
	}{
		{"never changes", func(held int64) int64 { return max(held, 1) }, "did not see the change"},
		{"spurious", func(held int64) int64 { return held + 1 }, "before the write was sent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := serveHandler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !strings.HasPrefix(r.URL.Path, "/watch/") {
					fmt.Fprint(w, `{}`)
					return
				}
				var req struct {
					ID        string
					Version   int64
					TimeoutMs int64
				}
				json.NewDecoder(r.Body).Decode(&req) //nolint:errcheck
				fmt.Fprintf(w, `{"Key":%q,"Value":"x","Version":%d}`, req.ID, tc.version(req.Version))
			}))
			c := NewClient(url, 8)
			defer c.Close()
			s, _ := Lookup("watch-1x100")
			res := s.Run(context.Background(), c, Options{Clients: 2, Ops: 20, Scale: 0.05})
			if !strings.Contains(strings.Join(res.Violations, "\n"), tc.want) {
				t.Errorf("violations %q, want one containing %q", res.Violations, tc.want)
			}
		})
	}
}

// TestSkipUnsupported: a target without a feature skips the rows that
// need it, with the reason.
func TestSkipUnsupported(t *testing.T) {
	s, _ := Lookup("watch-1x1")
	res := s.Run(context.Background(), noWatch{NewClient("127.0.0.1:1", 1)}, Options{})
	if res.Skipped == "" || !strings.Contains(res.String(), "skipped") || res.Failed() {
		t.Errorf("not skipped: %s", res)
	}
}

type noWatch struct{ *Client }

func (noWatch) Supports(f Feature) error {
	if f == FeatureWatch {
		return fmt.Errorf("no versioned watch")
	}
	return nil
}
