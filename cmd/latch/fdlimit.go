package main

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strconv"
	"sync/atomic"
	"syscall"

	"github.com/latchkv/latch/httpapi"
)

// File descriptors the process needs besides client connections. Every
// client connection is one fd; when fds run out the log cannot open its
// next segment and the server stops (fail stop), so connections are
// bounded to what is left after these.
const (
	// stdin, stdout, stderr, and the Go runtime's netpoller (epoll and
	// its wakeup fd).
	fdsProcess = 8
	// The API listener and --debug-addr's.
	fdsListeners = 2
	// The LOCK file, the log's open segment and the next one while a batch
	// crosses into it, a directory fsync, and at start a torn segment
	// with the copy set aside.
	fdsLog = 8
	// A snapshot being written and its directory fsync, one read at start,
	// and the log truncation after a snapshot.
	fdsSnapshots = 8
	// --cpu-profile, the auth file and TLS pair re-read on SIGHUP, name
	// lookups, and /proc reads for the process metrics.
	fdsMisc = 16
	// Connections to --debug-addr (pprof); more wait in the kernel's queue.
	fdsDebugConns = 16
	// fdReserve is what client connections may not take. The connections
	// over the limit held to be answered 503 too_many_connections take
	// their own fds, httpapi.RefusalSlots of them.
	fdReserve = fdsProcess + fdsListeners + fdsLog + fdsSnapshots + fdsMisc + fdsDebugConns + httpapi.RefusalSlots
)

// connLimit is --max-connections: a number of connections, or auto (0)
// for as many as the open-file limit allows.
type connLimit int

func (c *connLimit) String() string {
	if *c <= 0 {
		return "auto"
	}
	return strconv.Itoa(int(*c))
}

func (c *connLimit) Set(s string) error {
	if s == "auto" {
		*c = 0
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return errors.New("want a number of connections, or auto")
	}
	*c = connLimit(n)
	return nil
}

// raiseFDLimit raises the soft open-file limit to the hard one (Go's
// runtime does so at start on Linux too; this also covers systems where
// it does not) and returns both as they are afterwards.
func raiseFDLimit(log *slog.Logger) (soft, hard uint64, err error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, 0, err
	}
	if lim.Cur < lim.Max {
		raised := lim
		raised.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
			log.Warn("cannot raise the open-file limit to its hard limit; keeping it", "soft", lim.Cur, "hard", lim.Max, "err", err)
		} else if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, 0, err
		}
	}
	return lim.Cur, lim.Max, nil
}

// sizeConnections decides the connection limit from --max-connections
// (0: auto) and the soft open-file limit: at most what the fds left after
// fdReserve allow. An explicit flag above that is lowered, with a warning
// that says how to allow it.
func sizeConnections(flagged connLimit, soft uint64, log *slog.Logger) (int, error) {
	fit := int64(min(soft, math.MaxInt32)) - fdReserve
	if fit < 1 {
		return 0, fmt.Errorf("the open-file limit is %d and latch keeps %d fds for its log, snapshots, listeners and connections over the limit, "+
			"which leaves none for clients: raise it (ulimit -n, or LimitNOFILE= in the systemd unit) well above %d; each connection takes one more", soft, fdReserve, fdReserve)
	}
	if flagged <= 0 {
		return int(fit), nil
	}
	if int64(flagged) > fit {
		log.Warn(fmt.Sprintf("--max-connections %d is more than the open-file limit allows; serving at most %d connections. "+
			"Raise the limit (ulimit -n, or LimitNOFILE= in the systemd unit) to at least %d to allow %d",
			flagged, fit, int64(flagged)+fdReserve, flagged),
			"max_connections_flag", int(flagged), "max_connections", fit, "fd_limit", soft, "fd_reserve", fdReserve)
		return int(fit), nil
	}
	return int(flagged), nil
}

// capListener closes a connection at once when max are open, so that
// --debug-addr cannot take the fds the log needs.
type capListener struct {
	net.Listener
	open atomic.Int64
	max  int64
}

func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) <= l.max {
			return &cappedConn{Conn: c, l: l}, nil
		}
		l.open.Add(-1)
		c.Close()
	}
}

type cappedConn struct {
	net.Conn
	l      *capListener
	closed atomic.Bool
}

func (c *cappedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.l.open.Add(-1)
	}
	return c.Conn.Close()
}
