package httpapi

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/latchkv/latch/engine"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is latch's Prometheus instrumentation, on a registry of its own
// (never the global default one). Labels are only ever a route pattern,
// a status code or a shard number: never a namespace, key, lock id or
// token, which would be unbounded and, for tokens, secret.
//
// Request metrics are recorded by the middleware Server.ServeHTTP runs
// when Observe gave it Metrics; group commits arrive through
// ObserveCommit (engine.Config.OnCommit); everything else is read from
// engine.Stats at scrape time, so it costs nothing between scrapes.
// docs/OPERATIONS.md ("Monitoring") lists every metric.
type Metrics struct {
	reg           *prometheus.Registry
	requests      *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	commitRecords prometheus.Histogram
	commitBytes   prometheus.Counter
	fsync         prometheus.Histogram
	snapTook      prometheus.Histogram
	snapPause     prometheus.Histogram
	eng           atomic.Pointer[engine.Engine]
	handler       http.Handler
	routes        atomic.Pointer[map[string]*routeMetrics] // see route
	routesMu      sync.Mutex                               // serialises adding to routes
}

// NewMetrics builds the registry: request, commit, engine, build, Go
// runtime and process metrics.
func NewMetrics(v VersionInfo) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.routes.Store(&map[string]*routeMetrics{})
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "latch_http_requests_total",
		Help: "HTTP requests by route pattern (e.g. /db/{env}) and status code.",
	}, []string{"route", "code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "latch_http_request_duration_seconds",
		Help:    "Time from receiving a request to the end of its reply, by route pattern; lock waits and watches included.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
	}, []string{"route"})
	m.commitRecords = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "latch_wal_commit_records",
		Help:    "Records per group commit (one write and one fsync each).",
		Buckets: prometheus.ExponentialBuckets(1, 2, 14), // 1 .. 8192
	})
	m.commitBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "latch_wal_written_bytes_total",
		Help: "Bytes written to the log by group commits.",
	})
	m.fsync = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "latch_wal_fsync_duration_seconds",
		Help:    "Duration of the log's fsync, one per group commit.",
		Buckets: []float64{.00005, .0001, .0002, .0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 5},
	})
	m.snapTook = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "latch_snapshot_duration_seconds",
		Help:    "How long each published snapshot took, copy, encoding, publish and log truncation included; writes go on meanwhile.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
	})
	m.snapPause = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "latch_snapshot_pause_seconds",
		Help:    "How long the shard loops stood still for each snapshot's copy (every request waits this long at most).",
		Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
	})
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "latch_build_info",
		Help:        "Always 1; the labels describe the running binary.",
		ConstLabels: prometheus.Labels{"version": v.Version, "goversion": v.GoVersion, "commit": v.Commit},
	})
	build.Set(1)
	m.reg.MustRegister(m.requests, m.latency, m.commitRecords, m.commitBytes, m.fsync, m.snapTook, m.snapPause, build,
		engineCollector{m: m},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	return m
}

// Registry is the registry behind /metrics, for tests and embedding.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ObserveCommit records one group commit; it has the signature of
// engine.Config.OnCommit.
func (m *Metrics) ObserveCommit(records, bytes int, fsync time.Duration) {
	m.commitRecords.Observe(float64(records))
	m.commitBytes.Add(float64(bytes))
	m.fsync.Observe(fsync.Seconds())
}

// ObserveSnapshot records one snapshot that was published; it has the
// signature of engine.Config.OnSnapshot. Failures are counted from
// engine.Stats (latch_snapshot_failures_total).
func (m *Metrics) ObserveSnapshot(info engine.SnapshotInfo, _ error) {
	if info.Path == "" {
		return
	}
	m.snapTook.Observe(info.Took.Seconds())
	m.snapPause.Observe(info.Pause.Seconds())
}

// ServeHTTP serves the Prometheus text format.
func (m *Metrics) ServeHTTP(w http.ResponseWriter, r *http.Request) { m.handler.ServeHTTP(w, r) }

// instrument serves r through mux and records its route and status. The
// mux stores the matched pattern in r.Pattern, which is the route label:
// "/db/{env}", never the namespace in the URL.
func (m *Metrics) instrument(mux http.Handler, w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := recorderPool.Get().(*statusRecorder)
	rec.ResponseWriter = w
	mux.ServeHTTP(rec, r)
	status := rec.status
	*rec = statusRecorder{}
	recorderPool.Put(rec)
	route := r.Pattern
	if route == "" {
		route = "unmatched" // e.g. the mux's own redirects
	}
	if status == 0 {
		status = http.StatusOK
	}
	rm := m.route(route)
	rm.count(m, route, status).Inc()
	rm.latency.Observe(time.Since(start).Seconds())
}

// recorderPool: handlers never keep the ResponseWriter past their return,
// so a recorder is free again once the mux has served.
var recorderPool = sync.Pool{New: func() any { return new(statusRecorder) }}

// routeMetrics are one route's children of the request metrics, looked up
// once per route and status rather than hashed from labels per request.
type routeMetrics struct {
	latency prometheus.Observer
	codes   [len(statusLabels)]atomic.Pointer[prometheus.Counter]
}

// route returns the metrics of a route pattern. The patterns are the
// mux's, a fixed few, so the copy-on-write map stays small.
func (m *Metrics) route(route string) *routeMetrics {
	if rm := (*m.routes.Load())[route]; rm != nil {
		return rm
	}
	m.routesMu.Lock()
	defer m.routesMu.Unlock()
	old := *m.routes.Load()
	if rm := old[route]; rm != nil {
		return rm
	}
	next := make(map[string]*routeMetrics, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	rm := &routeMetrics{latency: m.latency.WithLabelValues(route)}
	next[route] = rm
	m.routes.Store(&next)
	return rm
}

// count returns the request counter of this route and status.
func (rm *routeMetrics) count(m *Metrics, route string, status int) prometheus.Counter {
	if status < 0 || status >= len(rm.codes) {
		return m.requests.WithLabelValues(route, statusLabel(status))
	}
	if c := rm.codes[status].Load(); c != nil {
		return *c
	}
	c := m.requests.WithLabelValues(route, statusLabels[status])
	rm.codes[status].Store(&c)
	return c
}

// statusLabels are the code labels of every valid status, made once so
// that labelling a request allocates nothing.
var statusLabels = func() (l [600]string) {
	for i := range l {
		l[i] = strconv.Itoa(i)
	}
	return l
}()

func statusLabel(code int) string {
	if code >= 0 && code < len(statusLabels) {
		return statusLabels[code]
	}
	return strconv.Itoa(code)
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// engineCollector reads engine.Stats once per scrape.
type engineCollector struct{ m *Metrics }

var (
	descLocksHeld = prometheus.NewDesc("latch_locks_held",
		"Locks that have a holder.", nil, nil)
	descWaiters = prometheus.NewDesc("latch_lock_waiters",
		"Requests queued on held locks.", nil, nil)
	descWatchers = prometheus.NewDesc("latch_watchers",
		"Parked watches.", nil, nil)
	descLastHandle = prometheus.NewDesc("latch_lock_last_handle",
		"The highest lock handle (fencing token) issued so far.", nil, nil)
	descWALSize = prometheus.NewDesc("latch_wal_size_bytes",
		"Bytes in the log's segment files.", nil, nil)
	descShardBusy = prometheus.NewDesc("latch_shard_busy_seconds_total",
		"Time each shard's event loop spent handling inputs; rate() is its saturation (1 = always busy).", []string{"shard"}, nil)
	descSnapAge = prometheus.NewDesc("latch_snapshot_age_seconds",
		"Seconds since the cut of the newest successful snapshot (one restored at start counts). Absent while there is none.", nil, nil)
	descSnapTime = prometheus.NewDesc("latch_snapshot_last_success_timestamp_seconds",
		"Unix time of the newest successful snapshot's cut; 0 if there is none.", nil, nil)
	descSnapTook = prometheus.NewDesc("latch_snapshot_last_duration_seconds",
		"How long the newest snapshot this process took lasted, publish and log truncation included; 0 if none yet.", nil, nil)
	descSnapsTaken = prometheus.NewDesc("latch_snapshots_total",
		"Snapshots published into the data directory by this process.", nil, nil)
	descSnapsFailed = prometheus.NewDesc("latch_snapshot_failures_total",
		"Snapshot attempts that failed.", nil, nil)
)

func (c engineCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLocksHeld, descWaiters, descWatchers, descLastHandle, descWALSize,
		descShardBusy, descSnapAge, descSnapTime, descSnapTook, descSnapsTaken, descSnapsFailed} {
		ch <- d
	}
}

func (c engineCollector) Collect(ch chan<- prometheus.Metric) {
	eng := c.m.eng.Load()
	if eng == nil {
		return // still recovering
	}
	st := eng.Stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge(descLocksHeld, float64(st.LocksHeld))
	gauge(descWaiters, float64(st.Waiters))
	gauge(descWatchers, float64(st.Watchers))
	gauge(descLastHandle, float64(st.LastHandle))
	gauge(descWALSize, float64(st.WALBytes))
	for i, busy := range st.ShardBusy {
		counter(descShardBusy, busy.Seconds(), strconv.Itoa(i))
	}
	if !st.LastSnapshot.IsZero() {
		gauge(descSnapAge, time.Since(st.LastSnapshot).Seconds())
		gauge(descSnapTime, float64(st.LastSnapshot.UnixNano())/1e9)
	} else {
		gauge(descSnapTime, 0)
	}
	gauge(descSnapTook, st.LastSnapshotTook.Seconds())
	counter(descSnapsTaken, float64(st.SnapshotsTaken))
	counter(descSnapsFailed, float64(st.SnapshotsFailed))
}
