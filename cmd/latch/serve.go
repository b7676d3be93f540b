package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	httppprof "net/http/pprof" // its init also registers on http.DefaultServeMux, which latch never serves
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/latchkv/latch/engine"
	"github.com/latchkv/latch/httpapi"
	"github.com/latchkv/latch/wal"
)

func serve(args []string) int {
	fs := flag.NewFlagSet("latch serve", flag.ContinueOnError)
	lim := httpapi.DefaultLimits()
	addr := fs.String("addr", "127.0.0.1:7070", "listen address (host:port)")
	dataDir := fs.String("data-dir", "./latch-data", "data directory (created if missing)")
	shards := fs.Int("shards", runtime.GOMAXPROCS(0), "number of shard event loops")
	idemTTL := fs.Duration("idempotency-ttl", engine.DefaultIdempotencyTTL, "how long an idempotency id is remembered (a request may ask for less with IdempotencyTTL)")
	maxWaiters := fs.Int("max-waiters-per-lock", engine.DefaultMaxWaitersPerLock, "waiters allowed on one lock")
	maxLockWaiters := fs.Int("max-lock-waiters", engine.DefaultMaxLockWaiters, "lock waiters parked in the whole server")
	shutdownTimeout := fs.Duration("shutdown-timeout", 30*time.Second, "how long SIGTERM waits for in-flight requests")
	snapRecords := fs.Int("snapshot-every-records", engine.DefaultSnapshotEveryRecords, "take a snapshot after this many log records (negative: never automatically)")
	snapEvery := fs.Duration("snapshot-every", engine.DefaultSnapshotEvery, "take a snapshot this often if anything was written")
	snapKeep := fs.Int("snapshot-keep", engine.DefaultSnapshotKeep, "snapshots to keep; the log is kept back to the oldest")
	segSize := fs.Int("segment-size", wal.DefaultSegmentSize, fmt.Sprintf("target size of one log segment file in bytes (%d to %d)", minSegmentSize, maxSegmentSize))
	cpuProfile := fs.String("cpu-profile", "", "write a Go CPU profile (go tool pprof) of the whole run to this file, finished at shutdown")
	logFormat := fs.String("log-format", "auto", "log format: json, text, or auto (text when stderr is a terminal, json otherwise)")
	logLevel := fs.String("log-level", "info", "least severe log level written: debug, info, warn or error")
	debugAddr := fs.String("debug-addr", "", "serve Go's pprof profiles at /debug/pprof/ on this separate address (host:port; empty: off); never expose it")
	releaseIdle := fs.Bool("release-idle-memory", true, "return the free heap to the OS once the server is idle after a burst (false: keep it mapped, as Go's runtime does by default, up to the next GC goal)")
	drainDelay := fs.Duration("drain-delay", 0, "after SIGTERM, keep serving this long with /readyz answering 503 (so load balancers stop sending traffic) before shutting down")
	fs.Int64Var(&lim.MaxBodyBytes, "max-body-bytes", lim.MaxBodyBytes, "largest request body")
	fs.IntVar(&lim.MaxOps, "max-ops", lim.MaxOps, "ops allowed in one request")
	fs.IntVar(&lim.MaxKeyBytes, "max-key-bytes", lim.MaxKeyBytes, "longest key, lock id or idempotency id")
	fs.DurationVar(&lim.MaxLockDur, "max-lock-dur", lim.MaxLockDur, "longest LockDur")
	fs.DurationVar(&lim.MaxLockWait, "max-lock-wait", lim.MaxLockWait, "longest LockWait")
	fs.DurationVar(&lim.MaxWatchTimeout, "max-watch-timeout", lim.MaxWatchTimeout, "longest watch Timeout (longer ones are capped)")
	fs.DurationVar(&lim.DefaultWatchTimeout, "watch-timeout", lim.DefaultWatchTimeout, "watch Timeout when the request gives none")
	// Security and transport (docs/SECURITY.md).
	hc := httpapi.DefaultHTTPConfig()
	authFile := fs.String("auth-file", "", "bearer tokens, one grant a line (docs/SECURITY.md); SIGHUP reloads it. Without it nothing is checked")
	insecureNoAuth := fs.Bool("insecure-no-auth", false, "allow a non-loopback --addr without --auth-file (every client may do everything)")
	fs.StringVar(&hc.TLSCertFile, "tls-cert", "", "serve HTTPS with this PEM certificate (chain); needs --tls-key; SIGHUP reloads both")
	fs.StringVar(&hc.TLSKeyFile, "tls-key", "", "PEM private key of --tls-cert")
	fs.IntVar(&lim.MaxValueBytes, "max-value-bytes", lim.MaxValueBytes, "longest KVSet Value, as JSON text")
	fs.IntVar(&lim.MaxReplyBytes, "max-reply-bytes", lim.MaxReplyBytes, "most bytes of keys and values one request's KVGet may read; over it: 400 reply_too_large (0: no bound)")
	fs.IntVar(&lim.MaxNamespaceBytes, "max-namespace-bytes", lim.MaxNamespaceBytes, "longest namespace ({env} of the URL)")
	maxWatchersPerKey := fs.Int("max-watchers-per-key", engine.DefaultMaxWatchersPerKey, "watches parked on one key")
	maxWatchers := fs.Int("max-watchers", engine.DefaultMaxWatchers, "watches in flight in the whole server")
	var maxConns connLimit // auto
	fs.Var(&maxConns, "max-connections", fmt.Sprintf("open connections, a `number` or auto; one over it gets 503 too_many_connections and is closed. auto (the default, or 0): as many as the open-file limit (ulimit -n) allows after %d fds kept for the log, snapshots and admin; a number above that is lowered to it, with a warning", fdReserve))
	fs.DurationVar(&hc.ReadHeaderTimeout, "read-header-timeout", hc.ReadHeaderTimeout, "time a client has to send its request headers")
	fs.DurationVar(&hc.BodyReadTimeout, "body-read-timeout", hc.BodyReadTimeout, "time a client has to send a request body, after its headers")
	fs.DurationVar(&hc.IdleTimeout, "idle-timeout", hc.IdleTimeout, "close a keep-alive connection idle this long")
	fs.IntVar(&hc.MaxHeaderBytes, "max-header-bytes", hc.MaxHeaderBytes, "largest request line and headers (over it: 431)")
	fs.BoolVar(&hc.H2C, "h2c", hc.H2C, "serve HTTP/2 without TLS to clients that speak it by prior knowledge (gRPC- and etcd-style), beside HTTP/1.1 on the same port")
	fs.IntVar(&hc.MaxStreamsPerConnection, "max-streams-per-connection", hc.MaxStreamsPerConnection, "requests one HTTP/2 connection (h2c or TLS) may have open at once; a client needing more opens another connection")
	if err := parseWithEnv(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "latch serve:", err)
		return 2
	}
	if *idemTTL > 0 {
		lim.MaxIdempotencyTTL = *idemTTL
	}
	if err := checkReplyLimit(lim); err != nil {
		fmt.Fprintln(os.Stderr, "latch serve:", err)
		return 2
	}
	if hc.MaxStreamsPerConnection < 1 || hc.MaxStreamsPerConnection > maxStreamsPerConnection {
		fmt.Fprintf(os.Stderr, "latch serve: --max-streams-per-connection %d: want 1 to %d\n", hc.MaxStreamsPerConnection, maxStreamsPerConnection)
		return 2
	}
	if *segSize < minSegmentSize || *segSize > maxSegmentSize {
		fmt.Fprintf(os.Stderr, "latch serve: --segment-size %d: want %d (4 KiB) to %d (1 GiB) bytes\n", *segSize, minSegmentSize, maxSegmentSize)
		return 2
	}
	log, err := newLogger(*logFormat, *logLevel, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "latch serve:", err)
		return 2
	}
	slog.SetDefault(log)      // httpapi logs admin actions through the default logger
	httpapi.Version = version // reported by GET /admin/stats
	fdSoft, fdHard, err := raiseFDLimit(log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "latch serve: reading the open-file limit:", err)
		return 1
	}
	if hc.MaxConnections, err = sizeConnections(maxConns, fdSoft, log); err != nil {
		fmt.Fprintln(os.Stderr, "latch serve:", err)
		return 2
	}
	log.Info("open-file limit", "fd_limit", fdSoft, "fd_hard_limit", fdHard, "fd_reserve", fdReserve, "max_connections", hc.MaxConnections)
	// Auth and TLS are checked before the log is replayed, so a mistake
	// there fails at once.
	if *authFile != "" {
		table, err := httpapi.LoadAuthFile(*authFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "latch serve:", err)
			return 2
		}
		hc.Auth = httpapi.NewAuth(table)
		log.Info("auth is on", "auth_file", *authFile, "tokens", table.Tokens())
	} else if err := checkNoAuthAddr(*addr, *insecureNoAuth, log); err != nil {
		fmt.Fprintln(os.Stderr, "latch serve:", err)
		return 2
	}
	// Until the engine is open the server answers only /livez, /readyz
	// (503 recovering), /version; health.Serve(api) then adds the API.
	health := httpapi.NewHealth(httpapi.BuildVersion(version))
	metrics := httpapi.NewMetrics(httpapi.BuildVersion(version))
	srv, err := httpapi.NewHTTPServer(hc, health)
	if err != nil {
		fmt.Fprintln(os.Stderr, "latch serve:", err)
		return 2
	}
	srv.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn) // net/http's own complaints, in the same format
	if srv.TLS() {
		log.Info("TLS is on", "cert", hc.TLSCertFile)
	} else if *authFile != "" && !isLoopbackAddr(*addr) {
		log.Warn("auth is on but TLS is off: tokens and data cross the network in clear text; give --tls-cert and --tls-key or put a TLS proxy in front (docs/SECURITY.md)")
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "latch serve: --cpu-profile:", err)
			return 2
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}

	if *releaseIdle {
		ctx, stop := context.WithCancel(context.Background())
		defer stop()
		go releaseIdleMemory(ctx)
	}

	fatal := make(chan error, 1)
	cfg := engine.Config{
		Dir: *dataDir, Shards: *shards, IdempotencyTTL: *idemTTL, MaxWaitersPerLock: *maxWaiters, MaxLockWaiters: *maxLockWaiters,
		SnapshotEveryRecords: *snapRecords, SnapshotEvery: *snapEvery, SnapshotKeep: *snapKeep,
		SegmentSize:       *segSize,
		MaxWatchersPerKey: *maxWatchersPerKey, MaxWatchers: *maxWatchers,
		OnSnapshot: func(info engine.SnapshotInfo, err error) {
			metrics.ObserveSnapshot(info, err)
			if errors.Is(err, engine.ErrStorageFailed) {
				log.Error("snapshot failed after it was renamed into place; the server stops", "err", err)
				return
			}
			if err != nil {
				log.Error("snapshot failed; the log still holds everything and the next attempt comes later", "err", err)
				return
			}
			log.Info("snapshot", "path", info.Path, "cut", info.Cut, "bytes", info.Bytes, "entries", info.Entries,
				"pause", info.Pause, "took", info.Took, "removed", len(info.Removed))
		},
		OnLogNoRoom: func(segment string, err error) {
			log.Warn("could not reserve a log segment's room on disk; the log works on, but a full disk can now fail an append inside a segment",
				"segment", segment, "err", err)
		},
		OnFatal: func(err error) {
			select {
			case fatal <- err:
			default:
			}
		},
	}
	if spec := os.Getenv("LATCH_TEST_FAULT"); spec != "" {
		hook, err := faultHook(spec)
		if err != nil {
			fmt.Fprintln(os.Stderr, "latch serve:", err)
			return 2
		}
		cfg.FaultHook = hook
		log.Warn("fault injection is on (LATCH_TEST_FAULT); this is for tests only", "spec", spec)
	}
	if step := os.Getenv("LATCH_TEST_SNAPSHOT_KILL"); step != "" {
		// Crash tests: SIGKILL ourselves at one step of taking a snapshot.
		log.Warn("the server kills itself during a snapshot (LATCH_TEST_SNAPSHOT_KILL); this is for tests only", "step", step)
		cfg.SnapshotHook = func(s string) {
			if s == step {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {} // the signal is on its way
			}
		}
	}
	// Listen before recovery, so /livez and /readyz (503 recovering)
	// answer while the log replays; the API comes once the engine is open.
	cfg.OnCommit = metrics.ObserveCommit
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Error("cannot listen", "addr", *addr, "err", err)
		return 1
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer srv.Close()
	log.Info("recovering; health checks answer meanwhile", "addr", ln.Addr().String())
	if *debugAddr != "" {
		dsrv, daddr, err := serveDebug(*debugAddr)
		if err != nil {
			log.Error("cannot listen on --debug-addr", "addr", *debugAddr, "err", err)
			return 1
		}
		defer dsrv.Close()
		log.Warn("pprof debug server on; keep it private", "debug_addr", daddr)
	}
	if gate := os.Getenv("LATCH_TEST_RECOVERY_GATE"); gate != "" {
		// Tests of /readyz during recovery: hold recovery until the file exists.
		log.Warn("recovery waits for a file (LATCH_TEST_RECOVERY_GATE); this is for tests only", "file", gate)
		for _, err := os.Stat(gate); err != nil; _, err = os.Stat(gate) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	eng, err := engine.Open(cfg)
	if err != nil {
		log.Error("cannot open the data directory", "dir", *dataDir, "err", err)
		return 1
	}
	rec := eng.Recovered()
	attrs := []any{"dir", *dataDir, "snapshot", rec.Snapshot, "snapshot_cut", rec.SnapshotCut, "records_replayed", rec.Records, "namespaces", rec.Namespaces, "held_locks", rec.HeldLocks, "last_handle", eng.LastHandle(), "took", rec.Took}
	if rec.HandleFloor > 0 {
		attrs = append(attrs, "handle_floor", rec.HandleFloor)
	}
	if rec.Repair != nil {
		attrs = append(attrs, "repaired_segment", rec.Repair.Segment, "cut_at_offset", rec.Repair.Offset, "lost_unacknowledged_bytes", rec.Repair.LostBytes, "cut_bytes_kept_as", rec.Repair.KeptAs)
		if rec.Repair.NotKept != "" {
			log.Warn("the bytes cut off the torn tail could not be kept aside; they were never acknowledged, and the log is repaired",
				"segment", rec.Repair.Segment, "cut_at_offset", rec.Repair.Offset, "err", rec.Repair.NotKept)
		}
	}
	for _, b := range rec.BrokenSnapshots {
		log.Warn("a damaged snapshot was set aside; an older one was used", "snapshot", b)
	}
	if n := len(rec.UnfinishedRemoved); n > 0 {
		log.Info("removed snapshots a crash left unfinished", "files", rec.UnfinishedRemoved)
	}
	log.Info("recovered", attrs...)

	// Signals are caught before the listening line, so a script that
	// signals as soon as it sees that line is never too early.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	hups := make(chan os.Signal, 1)
	signal.Notify(hups, syscall.SIGHUP)
	go func() {
		for range hups {
			reload(log, srv, hc.Auth, *authFile)
		}
	}()
	api := httpapi.New(eng, lim)
	api.Observe(health, metrics)
	health.Serve(api)
	// The address line is parsed by tests and scripts: keep its shape. It
	// means the API is ready (the socket was bound before recovery).
	log.Info("listening", "addr", ln.Addr().String(), "shards", *shards, "tls", srv.TLS(), "auth", hc.Auth != nil, "max_connections", hc.MaxConnections, "h2c", hc.H2C && !srv.TLS())
	select {
	case sig := <-sigs:
		health.Drain() // before the line: tests read /readyz once they see it
		log.Info("shutting down", "signal", sig.String(), "drain_delay", *drainDelay)
		if *drainDelay > 0 {
			select {
			case <-time.After(*drainDelay):
			case <-sigs: // a second signal skips the rest of the delay
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- srv.Shutdown(ctx) }()
		eng.Drain() // parked waiters and watchers get 503 shutting_down
		if err := <-done; err != nil {
			log.Warn("in-flight requests did not finish in time", "err", err)
		}
		if err := eng.Close(); err != nil {
			log.Error("final fsync failed", "err", err)
			return 1
		}
		log.Info("stopped cleanly")
		return 0
	case err := <-fatal:
		// Fail stop (DESIGN I2): acknowledge nothing more. Pending requests
		// already got 503 storage_failed; give them a moment to be written.
		health.Fail()
		log.Error("storage failed: stopping without acknowledging anything more", "err", err)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		go eng.Drain()
		srv.Shutdown(ctx) //nolint:errcheck
		eng.Close()
		return 1
	case err := <-served:
		log.Error("server stopped", "err", err)
		eng.Close()
		return 1
	}
}

// reload re-reads the auth file and the TLS pair on SIGHUP. A file that
// fails its checks leaves the old one in force.
func reload(log *slog.Logger, srv *httpapi.HTTPServer, auth *httpapi.Auth, authFile string) {
	if auth != nil {
		if table, err := httpapi.LoadAuthFile(authFile); err != nil {
			log.Error("SIGHUP: the auth file was not reloaded; the previous tokens stay in force", "err", err)
		} else {
			auth.Store(table)
			log.Info("SIGHUP: auth file reloaded", "auth_file", authFile, "tokens", table.Tokens())
		}
	}
	if srv.TLS() {
		if err := srv.ReloadTLS(); err != nil {
			log.Error("SIGHUP: the TLS certificate was not reloaded; the previous one stays in use", "err", err)
		} else {
			log.Info("SIGHUP: TLS certificate reloaded")
		}
	}
}

// checkNoAuthAddr decides whether to serve without auth. On loopback it
// warns; elsewhere it refuses unless --insecure-no-auth, as Redis's
// protected mode refuses outside clients when no password is set: an
// --addr :7070 typed without thinking must not publish every lock and key
// to the network. With the flag it warns loudly.
func checkNoAuthAddr(addr string, insecure bool, log *slog.Logger) error {
	if isLoopbackAddr(addr) {
		log.Warn("auth is off (no --auth-file): any local process may read and write every namespace; see docs/SECURITY.md")
		return nil
	}
	if !insecure {
		return fmt.Errorf("--addr %s is not a loopback address and there is no --auth-file: anyone who can reach it could take every lock and read every key. "+
			"Give --auth-file (docs/SECURITY.md), bind 127.0.0.1, or pass --insecure-no-auth if a firewall or proxy guards it", addr)
	}
	log.Warn("AUTH IS OFF ON A NETWORK ADDRESS (--insecure-no-auth): every client that can reach "+addr+" may read, write and unlock everything", "addr", addr)
	return nil
}

// isLoopbackAddr reports whether host:port names only loopback addresses
// (127.0.0.0/8, ::1, or a name that resolves only to them).
func isLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback()
	}
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return false
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return false
		}
	}
	return true
}

// Limits of --segment-size: below a page every batch would open a file;
// above 1 GiB a torn tail takes long to scan and copy aside.
const (
	minSegmentSize = 4 << 10
	maxSegmentSize = 1 << 30
)

// maxStreamsPerConnection caps --max-streams-per-connection: a few
// connections already carry every watch and lock waiter the server allows
// (--max-watchers, --max-lock-waiters) at this many streams each.
const maxStreamsPerConnection = 1_000_000

// faultSteps are the persistence steps LATCH_TEST_FAULT can fail: the
// log's (write, fsync, dirsync, create, tail), a snapshot's publish and the
// truncation after it (see docs/OPERATIONS.md for what each failure does).
var faultSteps = []string{"write", "fsync", "dirsync", "create", "tail",
	"snapshot-write", "snapshot-fsync", "snapshot-rename", "snapshot-dirsync", "truncate"}

// newLogger builds the server's structured logger on w: JSON for log
// collectors, text for people, auto choosing text only for a terminal.
func newLogger(format, level string, w *os.File) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	if format == "auto" {
		format = "json"
		if fi, err := w.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			format = "text"
		}
	}
	switch format {
	case "json":
		// slog writes a time.Duration as bare nanoseconds; "1.15ms" says
		// its unit, and Go's time.ParseDuration reads it back.
		opts.ReplaceAttr = func(_ []string, a slog.Attr) slog.Attr {
			if a.Value.Kind() == slog.KindDuration {
				a.Value = slog.StringValue(a.Value.Duration().String())
			}
			return a
		}
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want auto, json or text", format)
}

// serveDebug serves net/http/pprof on its own listener and mux, so that
// profiles are never reachable on the API address.
func serveDebug(addr string) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", err
	}
	ln = &capListener{Listener: ln, max: fdsDebugConns}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", httppprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", httppprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", httppprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", httppprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", httppprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // ends with Close at shutdown
	return srv, ln.Addr().String(), nil
}

// faultHook parses LATCH_TEST_FAULT=step:n (step is one of faultSteps):
// the step fails on its n-th call. Only tests set it.
func faultHook(spec string) (func(string) error, error) {
	step, nStr, ok := strings.Cut(spec, ":")
	n, err := strconv.Atoi(nStr)
	if !ok || err != nil || n < 1 || !slices.Contains(faultSteps, step) {
		return nil, fmt.Errorf("LATCH_TEST_FAULT=%q: want STEP:N with N >= 1 and STEP one of %s", spec, strings.Join(faultSteps, ", "))
	}
	var calls atomic.Int64
	return func(s string) error {
		if s == step && calls.Add(1) == int64(n) {
			return fmt.Errorf("injected %s failure (LATCH_TEST_FAULT)", s)
		}
		return nil
	}, nil
}

// checkReplyLimit refuses a --max-reply-bytes under what one key of the
// largest allowed value takes, since such a key could be stored but never
// read back.
func checkReplyLimit(lim httpapi.Limits) error {
	if lim.MaxReplyBytes < 0 {
		return fmt.Errorf("--max-reply-bytes %d: want 0 (no bound) or more", lim.MaxReplyBytes)
	}
	if lim.MaxReplyBytes == 0 || lim.MaxValueBytes <= 0 {
		return nil
	}
	if need := engine.ReplyItemBytes("", nil) + lim.MaxKeyBytes + lim.MaxValueBytes; lim.MaxReplyBytes < need {
		return fmt.Errorf("--max-reply-bytes %d is below the %d bytes one key of --max-value-bytes %d takes, so such a key could not be read; raise it, or 0 for no bound", lim.MaxReplyBytes, need, lim.MaxValueBytes)
	}
	return nil
}
