package httpapi_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/latchkv/latch/engine"
	"github.com/latchkv/latch/httpapi"
)

// newObservedServer is newTestServer wired the way `latch serve` wires
// it: engine commits feed the metrics, and the API answers the health
// endpoints of h.
func newObservedServer(t *testing.T) (*testServer, *httpapi.Health) {
	t.Helper()
	v := httpapi.BuildVersion("v9.9.9-test")
	h, m := httpapi.NewHealth(v), httpapi.NewMetrics(v)
	eng, err := engine.Open(engine.Config{Dir: t.TempDir(), Shards: 2, SnapshotEveryRecords: -1, OnCommit: m.ObserveCommit, OnSnapshot: m.ObserveSnapshot})
	if err != nil {
		t.Fatal(err)
	}
	api := httpapi.New(eng, httpapi.DefaultLimits())
	api.Observe(h, m)
	h.Serve(api)
	ts := &testServer{eng: eng}
	ts.srv = httptest.NewServer(h)
	ts.url = ts.srv.URL
	tr := &http.Transport{MaxIdleConnsPerHost: 100, DisableCompression: true}
	ts.client = &http.Client{Transport: tr}
	t.Cleanup(func() {
		eng.Drain()
		ts.srv.CloseClientConnections()
		ts.srv.Close()
		tr.CloseIdleConnections()
		if err := eng.Close(); err != nil {
			t.Errorf("engine.Close: %v", err)
		}
	})
	return ts, h
}

// scrape is one /metrics exposition: series ("name{labels}" exactly as
// written, labels sorted by name) to value, plus the raw text.
type scrape struct {
	series map[string]float64
	raw    string
}

func (ts *testServer) scrape(t *testing.T) scrape {
	t.Helper()
	r, err := ts.send(t.Context(), http.MethodGet, "/metrics", "")
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %d %s", r.Status, r.Header.Get("Content-Type"))
	}
	sc := scrape{series: map[string]float64{}, raw: string(r.Raw)}
	lines := bufio.NewScanner(strings.NewReader(sc.raw))
	for lines.Scan() {
		l := lines.Text()
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", l, err)
		}
		sc.series[l[:i]] = v
	}
	return sc
}

// get returns a series' value, failing if it is absent.
func (s scrape) get(t *testing.T, series string) float64 {
	t.Helper()
	v, ok := s.series[series]
	if !ok {
		t.Fatalf("no series %s in /metrics", series)
	}
	return v
}

// TestMetricsMove scrapes, makes requests of every kind the metrics
// describe, scrapes again and checks each number moved by what the
// requests did.
func TestMetricsMove(t *testing.T) {
	ts, _ := newObservedServer(t)
	const ns, secretKey = "tenant_c4f1", "key_9e27b"
	before := ts.scrape(t)

	const writes = 7
	for i := 0; i < writes; i++ {
		ok(t, ts.post(t, "/db/"+ns, fmt.Sprintf(`{"KVSet":[{"Key":%q,"Value":%d}]}`, secretKey, i)))
	}
	wantErr(t, ts.post(t, "/db/"+ns, `{"KVSet":[{"Key":""}]}`), http.StatusBadRequest, httpapi.CodeKeyRequired)
	holder := ok(t, ts.post(t, "/db/"+ns, `{"LockID":"L","LockDur":60}`))
	waiter := ts.start("/db/"+ns, `{"LockID":"L","LockDur":60,"LockWait":60}`)
	ts.waitLockWaiters(t, ns, "L", 1)
	watch := ts.start("/watch/"+ns, fmt.Sprintf(`{"ID":%q,"Version":%d,"Timeout":60}`, secretKey, writes))
	waitUntil(t, "the watch is parked", func() bool { return ts.eng.Stats().Watchers == 1 })

	mid := ts.scrape(t)
	delta := func(series string) float64 { return mid.get(t, series) - before.series[series] }
	if d := delta(`latch_http_requests_total{code="200",route="/db/{env}"}`); d != writes+1 {
		t.Errorf("200s on /db/{env} rose by %v, want %d (writes and the lock)", d, writes+1)
	}
	if d := delta(`latch_http_requests_total{code="400",route="/db/{env}"}`); d != 1 {
		t.Errorf("400s on /db/{env} rose by %v, want 1", d)
	}
	if d := delta(`latch_http_request_duration_seconds_count{route="/db/{env}"}`); d != writes+2 {
		t.Errorf("latency observations on /db/{env} rose by %v, want %d", d, writes+2)
	}
	for series, want := range map[string]float64{"latch_locks_held": 1, "latch_lock_waiters": 1, "latch_watchers": 1} {
		if got := mid.get(t, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	// writes+1 records (the lock is one), in at least one group commit.
	if d := delta("latch_wal_commit_records_sum"); d != writes+1 {
		t.Errorf("records committed rose by %v, want %d", d, writes+1)
	}
	commits := delta("latch_wal_commit_records_count")
	if commits < 1 || commits > writes+1 {
		t.Errorf("group commits rose by %v, want 1..%d", commits, writes+1)
	}
	if d := delta("latch_wal_fsync_duration_seconds_count"); d != commits {
		t.Errorf("fsyncs observed rose by %v, want one per commit (%v)", d, commits)
	}
	if d := delta("latch_wal_size_bytes"); d <= 0 || d != delta("latch_wal_written_bytes_total") {
		t.Errorf("WAL size rose by %v, bytes written by %v; want the same, above 0", d, delta("latch_wal_written_bytes_total"))
	}
	if mid.get(t, "latch_lock_last_handle") != float64(holder.Lock) {
		t.Errorf("latch_lock_last_handle %v, want the holder's handle %d", mid.get(t, "latch_lock_last_handle"), holder.Lock)
	}
	busy := mid.get(t, `latch_shard_busy_seconds_total{shard="0"}`) + mid.get(t, `latch_shard_busy_seconds_total{shard="1"}`)
	if busy <= 0 {
		t.Errorf("the shard loops did work but report %v busy seconds", busy)
	}
	for _, s := range []string{"go_goroutines", "process_resident_memory_bytes", "latch_snapshot_last_success_timestamp_seconds", "latch_snapshots_total"} {
		mid.get(t, s)
	}
	if _, ok := mid.series["latch_snapshot_age_seconds"]; ok {
		t.Errorf("latch_snapshot_age_seconds present with no snapshot ever taken")
	}
	// Neither namespaces nor keys are labels (cardinality, secrecy).
	for _, secret := range []string{ns, secretKey} {
		if strings.Contains(mid.raw, secret) {
			t.Errorf("/metrics mentions %q", secret)
		}
	}

	// Release: the waiter is granted, the write wakes the watcher.
	ok(t, ts.post(t, "/db/"+ns, unlockBody("L", holder.Lock)))
	ok(t, waiter.wait(t))
	ok(t, ts.post(t, "/db/"+ns, fmt.Sprintf(`{"KVSet":[{"Key":%q,"Value":"last"}]}`, secretKey)))
	if r := watch.wait(t); r.Status != http.StatusOK {
		t.Fatalf("watch: %s", r)
	}
	if _, err := ts.eng.Snapshot(); err != nil {
		t.Fatal(err)
	}
	after := ts.scrape(t)
	for series, want := range map[string]float64{"latch_locks_held": 1, "latch_lock_waiters": 0, "latch_watchers": 0, "latch_snapshots_total": 1} {
		if got := after.get(t, series); got != want {
			t.Errorf("after the release: %s = %v, want %v", series, got, want)
		}
	}
	if d := after.get(t, `latch_http_requests_total{code="200",route="/watch/{env}"}`) - before.series[`latch_http_requests_total{code="200",route="/watch/{env}"}`]; d != 1 {
		t.Errorf("200s on /watch/{env} rose by %v, want 1", d)
	}
	if age := after.get(t, "latch_snapshot_age_seconds"); age < 0 || age > 3600 {
		t.Errorf("latch_snapshot_age_seconds = %v just after a snapshot", age)
	}
	if after.get(t, "latch_snapshot_last_duration_seconds") <= 0 {
		t.Errorf("latch_snapshot_last_duration_seconds is 0 after a snapshot")
	}
	for _, h := range []string{"latch_snapshot_duration_seconds_count", "latch_snapshot_pause_seconds_count"} {
		if n := after.get(t, h) - before.series[h]; n != 1 {
			t.Errorf("%s rose by %v over one snapshot, want 1", h, n)
		}
	}
	if after.get(t, "latch_snapshot_duration_seconds_sum") <= 0 {
		t.Errorf("latch_snapshot_duration_seconds_sum is 0 after a snapshot")
	}
}

// TestHealthEndpoints follows /livez, /readyz and the API through the
// states the server goes through: recovering, ready, draining.
func TestHealthEndpoints(t *testing.T) {
	h := httpapi.NewHealth(httpapi.BuildVersion("v1.2.3"))
	stand := httptest.NewServer(h)
	defer stand.Close()
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct{ Status, Code string }
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		return resp.StatusCode, body.Status + body.Code
	}
	// Recovering: alive, not ready, and the API refuses with a clear code.
	if st, s := get(stand.URL + "/livez"); st != 200 || s != "alive" {
		t.Errorf("recovering /livez: %d %s", st, s)
	}
	if st, s := get(stand.URL + "/readyz"); st != 503 || s != httpapi.StateRecovering {
		t.Errorf("recovering /readyz: %d %s", st, s)
	}
	resp, err := http.Post(stand.URL+"/db/x", "application/json", strings.NewReader(`{"KVGet":["k"]}`))
	if err != nil {
		t.Fatal(err)
	}
	var e struct{ Code string }
	json.NewDecoder(resp.Body).Decode(&e) //nolint:errcheck // checked through e.Code
	resp.Body.Close()
	if resp.StatusCode != 503 || e.Code != httpapi.CodeRecovering {
		t.Errorf("POST /db/x while recovering: %d %q, want 503 %s", resp.StatusCode, e.Code, httpapi.CodeRecovering)
	}

	// Ready: the API serves, /readyz says so.
	eng, err := engine.Open(engine.Config{Dir: t.TempDir(), Shards: 1, SnapshotEveryRecords: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	api := httpapi.New(eng, httpapi.DefaultLimits())
	api.Observe(h, nil)
	h.Serve(api)
	if st, s := get(stand.URL + "/readyz"); st != 200 || s != httpapi.StateReady {
		t.Errorf("ready /readyz: %d %s", st, s)
	}
	if st, s := get(stand.URL + "/db/x"); st != 405 || s != httpapi.CodeMethodNotAllowed {
		t.Errorf("GET /db/x once ready: %d %s, want the API's 405", st, s)
	}
	if st, s := get(stand.URL + "/metrics"); st != 404 || s != httpapi.CodeNotFound {
		t.Errorf("/metrics without Metrics: %d %s, want 404", st, s)
	}

	// Draining and failed: still alive, no longer ready.
	h.Drain()
	if st, s := get(stand.URL + "/readyz"); st != 503 || s != httpapi.StateDraining {
		t.Errorf("draining /readyz: %d %s", st, s)
	}
	if st, s := get(stand.URL + "/livez"); st != 200 || s != "alive" {
		t.Errorf("draining /livez: %d %s", st, s)
	}
	h.Fail()
	if st, s := get(stand.URL + "/readyz"); st != 503 || s != httpapi.StateFailed {
		t.Errorf("failed /readyz: %d %s", st, s)
	}

	// /version: the ldflags version and the toolchain.
	resp, err = http.Get(stand.URL + "/version")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	if v["Version"] != "v1.2.3" || !strings.HasPrefix(fmt.Sprint(v["GoVersion"]), "go") {
		t.Errorf("/version: %v", v)
	}
	for _, k := range []string{"Commit", "Modified"} {
		if _, ok := v[k]; !ok {
			t.Errorf("/version has no %s: %v", k, v)
		}
	}
}

// BenchmarkMetricsMiddleware is the per-request cost of the request
// metrics: the same cheap route (/livez) without and with them.
func BenchmarkMetricsMiddleware(b *testing.B) {
	eng, err := engine.Open(engine.Config{Dir: b.TempDir(), Shards: 1, SnapshotEveryRecords: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	for _, on := range []bool{false, true} {
		b.Run(map[bool]string{false: "off", true: "on"}[on], func(b *testing.B) {
			api := httpapi.New(eng, httpapi.DefaultLimits())
			if on {
				api.Observe(nil, httpapi.NewMetrics(httpapi.BuildVersion("")))
			}
			req := httptest.NewRequest(http.MethodGet, "/livez", nil)
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				api.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatal(rec.Code)
				}
			}
		})
	}
}
