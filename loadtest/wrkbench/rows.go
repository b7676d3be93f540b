package main

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// metrics are one run's figures by name ("rate", "cpu_us", "rss", ...).
type metrics map[string]float64

// row is one line of the table: what loads the server, and which
// figures to print. primary is the figure the ratio columns divide.
type row struct {
	name, title string
	bare        bool   // also runs against the bare handler, for the ÷bare column
	script      string // the wrk script, for wrk rows
	primary     string
	cols        []col
	run         func(cfg *config, t target, extra []string) (metrics, error)
}

type col struct{ key, head, format string }

var (
	colRate  = col{"rate", "req/s", "%.0f"}
	colCPU   = col{"cpu_us", "CPU µs/req", "%.1f"}
	colP99   = col{"p99_ms", "p99 ms", "%.1f"}
	colRSS   = col{"rss", "RSS MiB", "%.0f"}
	colIdle  = col{"idle_rss", "idle RSS MiB", "%.0f"}
	wrkCols  = []col{colRate, colCPU, colP99, colRSS}
	nsKeys   = []string{"1000", "1000"}
	allConns = func(cfg *config) int { return cfg.conns }
)

func rows(cfg *config) []row {
	c := fmt.Sprintf("wrk -t1 -c%d", cfg.conns)
	return []row{
		{name: "kv64", title: "64 B KV writes, " + c + ", 1000 namespaces x 1000 keys", bare: true, script: "kv.lua",
			primary: "rate", cols: wrkCols, run: wrkRun("kv.lua", allConns, append([]string{"64"}, nsKeys...)...)},
		{name: "lock", title: "lock then unlock (two requests) over 1000 namespaces x 1000 locks, " + c, bare: true, script: "lock.lua",
			primary: "rate", cols: wrkCols, run: wrkRun("lock.lua", allConns, nsKeys...)},
		{name: "counter", title: "counter adds, " + c + ", 1000 namespaces x 1000 counters", bare: true, script: "counter.lua",
			primary: "rate", cols: wrkCols, run: wrkRun("counter.lua", allConns, nsKeys...)},
		{name: "kv10k", title: "10 KB KV writes, " + c + ", 1000 namespaces x 1000 keys", bare: true, script: "kv.lua",
			primary: "rate", cols: wrkCols, run: wrkRun("kv.lua", allConns, append([]string{"10240"}, nsKeys...)...)},
		{name: "handoff", title: fmt.Sprintf("lock hand-off on one lock, wrk -t1 -c%d; ceiling = 1/(fsync + round trip), both measured in the same run", cfg.handoffClients), script: "handoff.lua",
			primary: "rate", run: runHandoff, cols: []col{{"rate", "hand-offs/s", "%.0f"}, {"fsync_us", "fsync µs", "%.0f"},
				{"rtt_us", "RTT µs", "%.0f"}, {"ceiling", "ceiling/s", "%.0f"}, {"of_ceiling", "÷ceiling", "%.2f"}, {"cpu_us", "CPU µs/hand-off", "%.1f"}}},
		{name: "fanout-h1", title: fmt.Sprintf("watch fan-out, %d watchers of one key over HTTP/1.1: from the write's ack to the last watcher's reply", cfg.watchers),
			primary: "ms", run: fanout(false), cols: []col{{"ms", "ms from ack", "%.0f"}, {"ms_send", "ms from send", "%.0f"}, colRSS}},
		{name: "fanout-h2c", title: fmt.Sprintf("watch fan-out, %d watchers of one key over h2c: from the write's ack to the last watcher's reply", cfg.watchers),
			primary: "ms", run: fanout(true), cols: []col{{"ms", "ms from ack", "%.0f"}, {"ms_send", "ms from send", "%.0f"}, colRSS}},
		{name: "memory-per-key", title: fmt.Sprintf("RSS after %d keys x 64 B in %d namespaces (written %d keys a request)", cfg.keys, cfg.keyNamespaces, cfg.fillBatch),
			primary: "rss", run: runMemoryPerKey, cols: []col{colRSS, colIdle, {"fill_s", "fill s", "%.1f"}}},
		{name: "idle-waiters", title: fmt.Sprintf("RSS with %d idle lock waiters over HTTP/1.1", cfg.waiters),
			primary: "rss", run: runIdleWaiters, cols: []col{colRSS, colIdle, {"park_s", "park s", "%.1f"}}},
	}
}

func rowNames() []string {
	var names []string
	for _, r := range rows(&config{}) {
		names = append(names, r.name)
	}
	return names
}

func selectRows(cfg *config, spec string) ([]row, error) {
	all := rows(cfg)
	if spec == "all" {
		return all, nil
	}
	var out []row
	for _, name := range strings.Split(spec, ",") {
		i := slices.IndexFunc(all, func(r row) bool { return r.name == strings.TrimSpace(name) })
		if i < 0 {
			return nil, fmt.Errorf("no row %q; the rows are %s", name, strings.Join(rowNames(), ", "))
		}
		out = append(out, all[i])
	}
	return out, nil
}

func fanout(h2c bool) func(*config, target, []string) (metrics, error) {
	return func(cfg *config, t target, extra []string) (metrics, error) { return runFanout(cfg, t, h2c, extra) }
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// wrkRun loads a fresh server with wrk and measures its CPU per request.
func wrkRun(script string, conns func(*config) int, args ...string) func(*config, target, []string) (metrics, error) {
	return func(cfg *config, t target, extra []string) (metrics, error) {
		s, err := startServer(t, cfg.tmp, extra...)
		if err != nil {
			return nil, err
		}
		defer s.stop()
		return measureWrk(cfg, s, script, conns(cfg), args...)
	}
}

func measureWrk(cfg *config, s *server, script string, conns int, args ...string) (metrics, error) {
	cpu0, err := s.cpuTime()
	if err != nil {
		return nil, err
	}
	res, err := runWrk(cfg, s.url(), script, conns, args...)
	if err != nil {
		return nil, err
	}
	cpu1, err := s.cpuTime()
	if err != nil {
		return nil, err
	}
	if res.Requests == 0 {
		return nil, fmt.Errorf("wrk completed no request")
	}
	rss, _ := s.rssMiB()
	return metrics{
		"rate": res.Requests / res.Duration.Seconds(), "requests": res.Requests, "grants": res.Grants,
		"cpu_us": float64(cpu1-cpu0) / 1e3 / res.Requests, "cpu_s": (cpu1 - cpu0).Seconds(),
		"p50_ms": ms(res.P50), "p99_ms": ms(res.P99), "rss": rss,
		"non2xx": res.Non2xx, "socket_errors": res.SocketErrors, "seconds": res.Duration.Seconds(),
	}, nil
}

// runHandoff measures fsync and a trivial round trip on the server's own
// disk and connection, then the hand-off rate, on one fresh server.
func runHandoff(cfg *config, t target, extra []string) (metrics, error) {
	s, err := startServer(t, cfg.tmp, extra...)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	// The probes run before and after the load, and their medians are
	// averaged: a shared disk's fsync time drifts within a run.
	var fsync, rtt time.Duration
	probe := func() error {
		f, err := probeFsync(s.dir)
		if err != nil {
			return err
		}
		r, err := probeRTT(s.url(), 500)
		fsync, rtt = fsync+f/2, rtt+r/2
		return err
	}
	if err := probe(); err != nil {
		return nil, err
	}
	m, err := measureWrk(cfg, s, "handoff.lua", cfg.handoffClients)
	if err != nil {
		return nil, err
	}
	if err := probe(); err != nil {
		return nil, err
	}
	if m["grants"] == 0 {
		return nil, fmt.Errorf("no lock was granted")
	}
	m["rate"] = m["grants"] / m["seconds"]
	m["cpu_us"] = m["cpu_s"] * 1e6 / m["grants"]
	m["fsync_us"] = float64(fsync) / 1e3
	m["rtt_us"] = float64(rtt) / 1e3
	m["ceiling"] = 1 / (fsync + rtt).Seconds()
	m["of_ceiling"] = m["rate"] / m["ceiling"]
	return m, nil
}
