package main

// The soak test (issue 5): mixed load against the real binary for a set
// time, with a SIGKILL and restart at a fixed interval, checking after each
// restart that nothing acknowledged was lost, and tracking the server's
// memory and goroutines over time. It is not part of `make test`; run it
// with `make soak` (SOAK_DURATION, SOAK_KILL_EVERY), which sets
//
//	LATCH_SOAK=1 LATCH_SOAK_DURATION=10m LATCH_SOAK_KILL_EVERY=30s

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// soakEnvDuration reads a duration from the environment, or def.
func soakEnvDuration(t *testing.T, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive duration such as 90s or 10m", name, v)
	}
	return d
}

// soakWatchReply is the reply of POST /watch/{env}, errors included.
type soakWatchReply struct {
	Key     string
	Value   json.RawMessage
	Version uint64
	Code    string
}

// soakWatch posts body to /watch/{ns}; err wraps errNoReply when no complete reply came.
func (s *server) soakWatch(ctx context.Context, ns string, body any) (int, soakWatchReply, error) {
	b, err := json.Marshal(body)
	if err != nil {
		panic(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/watch/"+ns, bytes.NewReader(b))
	if err != nil {
		panic(err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, soakWatchReply{}, fmt.Errorf("%w: %v", errNoReply, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, soakWatchReply{}, fmt.Errorf("%w: reading the body: %v", errNoReply, err)
	}
	var r soakWatchReply
	if err := json.Unmarshal(data, &r); err != nil {
		return resp.StatusCode, soakWatchReply{}, fmt.Errorf("%w: undecodable body %q: %v", errNoReply, data, err)
	}
	return resp.StatusCode, r, nil
}

// soakProcStatus reads VmRSS (KiB) and Threads from /proc/<pid>/status.
func soakProcStatus(pid int) (rssKiB, threads int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(fields[0], 10, 64)
		switch k {
		case "VmRSS":
			rssKiB = n
		case "Threads":
			threads = n
		}
	}
	return rssKiB, threads, sc.Err()
}

// scrapeGoroutines scrapes go_goroutines from GET /metrics; ok is false when
// that route does not answer 200 with the gauge.
func scrapeGoroutines(s *server) (n int64, ok bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/metrics", nil)
	if err != nil {
		return 0, false
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body) //nolint:errcheck // only draining
		return 0, false
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if rest, found := strings.CutPrefix(sc.Text(), "go_goroutines "); found {
			f, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return int64(f), err == nil
		}
	}
	return 0, false
}

// soakSample is one row of the resource table.
type soakSample struct {
	at            time.Duration
	ops           int64
	opsPerSec     float64
	crashes       int
	rssKiB        int64
	gor           int64
	gorFromThread bool
}

// soakLossesSince counts what f recorded as acknowledged and s no longer has:
// a value older than the acknowledged one, a counter below its
// acknowledged adds.
func soakLossesSince(t *testing.T, s *server, f frozen) int {
	lost := 0
	byNS := keysByNS(f.kv, f.ctr)
	for ns, e := range byNS {
		vals, ctrs := readState(t, s, ns, e[0], e[1])
		for key, got := range vals {
			if want := f.kv[nsKey{ns, key}]; got == nil || *got < want {
				if lost++; lost <= 10 {
					t.Errorf("%s/%s: acknowledged %d before the crash, read %v after", ns, key, want, deref(got))
				}
			}
		}
		for key, got := range ctrs {
			if want := f.ctr[nsKey{ns, key}]; got < want {
				if lost++; lost <= 10 {
					t.Errorf("%s/%s = %d after the crash: %d adds were acknowledged", ns, key, got, want)
				}
			}
		}
	}
	return lost
}

// soakReaders runs KV readers and watchers over the model's keys until s
// is gone or stop is closed. A read or a watch reply must never show a
// value older than one acknowledged before it was sent, nor a watch an
// older version than the one it was given.
func soakReaders(t *testing.T, m *model, s *server, n int, seed uint64, ops *atomic.Int64, stop <-chan struct{}) {
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(1000+i)))
			versions := map[nsKey]uint64{}
			for {
				select {
				case <-stop:
					return
				default:
				}
				// A key that has an acknowledged value, and that value.
				m.mu.Lock()
				var k nsKey
				var acked int64
				found := false
				for kk, st := range m.kv { // map order is random enough
					if st.hasAck && rng.IntN(4) == 0 {
						k, acked, found = kk, st.acked, true
						break
					}
				}
				m.mu.Unlock()
				if !found {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				var val json.RawMessage
				var status int
				var err error
				what := "KVGet"
				if i%2 == 0 {
					var r dbResp
					status, r, err = s.db(context.Background(), k.ns, map[string]any{"KVGet": k.key})
					if err == nil && status == http.StatusOK && len(r.KV) == 1 {
						val = r.KV[0].Value
					}
				} else {
					what = "watch"
					have := versions[k]
					var r soakWatchReply
					status, r, err = s.soakWatch(context.Background(), k.ns, map[string]any{"ID": k.key, "Version": have, "TimeoutMs": 1000})
					if err == nil && status == http.StatusOK {
						val = r.Value
						if r.Version < have {
							m.errorf("watch %s/%s given version %d replied the older version %d", k.ns, k.key, have, r.Version)
						}
						versions[k] = r.Version
					}
				}
				if err != nil {
					return // the server is gone
				}
				ops.Add(1)
				if status != http.StatusOK {
					m.errorf("%s %s/%s: status %d", what, k.ns, k.key, status)
					return
				}
				got, perr := strconv.ParseInt(string(val), 10, 64)
				if perr != nil || got < acked {
					m.errorf("%s %s/%s replied %s; %d was acknowledged before the request was sent", what, k.ns, k.key, val, acked)
				}
			}
		}()
	}
	wg.Wait()
}

// TestSoak runs mixed load (KV writes and reads, counters, sequences, locks,
// watches) against the real binary with a SIGKILL every LATCH_SOAK_KILL_EVERY
// for LATCH_SOAK_DURATION, and fails on any acknowledged write lost.
func TestSoak(t *testing.T) {
	if os.Getenv("LATCH_SOAK") != "1" {
		t.Skip("the soak test runs with LATCH_SOAK=1 (make soak)")
	}
	duration := soakEnvDuration(t, "LATCH_SOAK_DURATION", 10*time.Minute)
	killEvery := soakEnvDuration(t, "LATCH_SOAK_KILL_EVERY", 30*time.Second)
	sampleEvery := soakEnvDuration(t, "LATCH_SOAK_SAMPLE_EVERY", max(5*time.Second, duration/20))
	seed := testSeed(t)
	dir := t.TempDir()
	m := newModel(t)
	ws := newWriters(16, "soak", 4, seed)
	hs := []*handles{{}, {}} // one per lock churner: each sees its own handles in order
	var readOps, lockOps atomic.Int64
	crashes, losses := 0, 0
	start := time.Now()
	var samples []soakSample
	var lastOps int64
	lastAt := time.Duration(0)
	totalOps := func() int64 {
		m.mu.Lock()
		acks := int64(m.acks)
		m.mu.Unlock()
		return acks + readOps.Load() + lockOps.Load()
	}

	s := startServer(t, dir, nil)
	for !t.Failed() {
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			var wg sync.WaitGroup
			wg.Add(4)
			go func() { defer wg.Done(); m.run(s, ws, stop) }()
			go func() { defer wg.Done(); soakReaders(t, m, s, 6, seed, &readOps, stop) }()
			for i := 0; i < 2; i++ {
				go func() {
					defer wg.Done()
					churn(t, s, hs[i], fmt.Sprintf("soak-%d", i), "L", stop, &lockOps)
				}()
			}
			wg.Wait()
		}()

		// Sample until the next kill (or the end).
		lifeEnd := time.Now().Add(killEvery)
		end := start.Add(duration)
		for {
			next := start.Add(lastAt + sampleEvery)
			until := next
			if lifeEnd.Before(until) {
				until = lifeEnd
			}
			if end.Before(until) {
				until = end
			}
			select {
			case <-done:
				t.Fatalf("the load stopped by itself (server exited: %v)\n%s", s.Exited(), s.tail(10))
			case <-time.After(time.Until(until)):
			}
			if !time.Now().Before(next) {
				at := time.Since(start)
				ops := totalOps()
				sm := soakSample{at: at, ops: ops, opsPerSec: float64(ops-lastOps) / (at - lastAt).Seconds(), crashes: crashes}
				rss, threads, err := soakProcStatus(s.cmd.Process.Pid)
				if err != nil {
					t.Errorf("reading the server's /proc status: %v", err)
				}
				sm.rssKiB = rss
				if g, ok := scrapeGoroutines(s); ok {
					sm.gor = g
				} else {
					sm.gor, sm.gorFromThread = threads, true
				}
				samples = append(samples, sm)
				t.Logf("%s", formatSoakSample(sm))
				lastOps, lastAt = ops, at
			}
			if !time.Now().Before(lifeEnd) || !time.Now().Before(end) {
				break
			}
		}
		if !time.Now().Before(start.Add(duration)) {
			close(stop)
			<-done
			break
		}
		// SIGKILL under load; every write acknowledged before must survive.
		s.crash()
		close(stop)
		<-done
		crashes++
		f := m.freeze()
		s = startServer(t, dir, nil)
		if n := soakLossesSince(t, s, f); n > 0 {
			losses += n
		}
		m.verify(s) // exact: nothing unsent, unacknowledged writes settled
	}
	finalOps := totalOps()
	s.stop()

	var b strings.Builder
	fmt.Fprintf(&b, "soak %s, SIGKILL every %s: %d operations (%d writes acknowledged, %d reads and watches, %d lock ops), %d crashes survived, %d acknowledged writes lost\n",
		time.Since(start).Round(time.Second), killEvery, finalOps, finalOps-readOps.Load()-lockOps.Load(), readOps.Load(), lockOps.Load(), crashes, losses)
	gorSource, gorCol := "goroutines: go_goroutines from GET /metrics", "goroutines"
	for _, sm := range samples {
		if sm.gorFromThread {
			gorSource, gorCol = "no /metrics route answered go_goroutines, so the last column is the OS thread count (Threads in /proc/<pid>/status), not goroutines", "threads"
		}
	}
	fmt.Fprintf(&b, "%s; RSS is VmRSS of the serving process, which restarts at each crash\n", gorSource)
	fmt.Fprintf(&b, "%8s %10s %9s %8s %9s %10s\n", "elapsed", "ops", "ops/s", "crashes", "RSS MiB", gorCol)
	for _, sm := range samples {
		fmt.Fprintf(&b, "%8s %10d %9.0f %8d %9.1f %10d\n", sm.at.Round(time.Second), sm.ops, sm.opsPerSec, sm.crashes, float64(sm.rssKiB)/1024, sm.gor)
	}
	t.Logf("%s%s", b.String(), m.summary())
	if losses > 0 {
		t.Errorf("%d acknowledged writes lost over %d crashes", losses, crashes)
	}
}

func formatSoakSample(sm soakSample) string {
	src := "go_goroutines"
	if sm.gorFromThread {
		src = "threads"
	}
	return fmt.Sprintf("t=%s ops=%d (%.0f/s) crashes=%d rss=%.1fMiB %s=%d",
		sm.at.Round(time.Second), sm.ops, sm.opsPerSec, sm.crashes, float64(sm.rssKiB)/1024, src, sm.gor)
}
