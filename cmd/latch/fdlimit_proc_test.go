package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// lowFDLimit is the open-file limit the fd tests give the server: low
// enough to exhaust with a few hundred connections, high enough for
// latch's reserve.
const lowFDLimit = 256

// withLowFDLimit returns the command that starts latch with a soft
// open-file limit below lowFDLimit and a hard one at it, so the server
// also has to raise its soft limit. It skips the test without prlimit.
func withLowFDLimit(t *testing.T, soft, hard int) []string {
	t.Helper()
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("needs prlimit (util-linux) to start the server with a low open-file limit")
	}
	return []string{prlimit, fmt.Sprintf("--nofile=%d:%d", soft, hard), "--"}
}

var maxConnsRE = regexp.MustCompile(`max_connections=(\d+)`)

// rawRequest sends a GET of path on c and reads the reply. err is set
// when no reply came: the server closed the connection, or the hang
// guard passed.
func rawRequest(c net.Conn, path string) (int, string, error) {
	c.SetDeadline(time.Now().Add(hangGuard)) //nolint:errcheck
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: latch\r\n\r\n", path); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b), err
}

// lastSegment is the newest log segment file's first sequence number.
func lastSegment(t *testing.T, dir string) int {
	segs := segments(t, dir)
	n, err := strconv.Atoi(filepath.Base(segs[len(segs)-1]))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestIdleConnectionsCannotExhaustFDs: with a low open-file limit, idle
// and silent connections cannot take the fds the log needs. Connections
// beyond what the limit allows get 503 too_many_connections (or, past the
// few held to be answered, are closed at once); meanwhile writes that
// open new log segments succeed and the server stays up.
func TestIdleConnectionsCannotExhaustFDs(t *testing.T) {
	dir := t.TempDir()
	s := startServerVia(t, dir, nil, withLowFDLimit(t, 128, lowFDLimit),
		"--segment-size", "4096", "--snapshot-every-records", "-1")
	limit := -1
	if line, _ := s.waitLine("msg=listening", 1, hangGuard); maxConnsRE.MatchString(line) {
		limit, _ = strconv.Atoi(maxConnsRE.FindStringSubmatch(line)[1])
	} else {
		t.Errorf("the listening line does not name max_connections: %s", line)
	}
	value := strings.Repeat("v", 1000)
	write := func(i int) bool {
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		defer cancel()
		st, r, err := s.db(ctx, "fd", map[string]any{"KVSet": []map[string]any{{"Key": fmt.Sprint("k", i), "Value": value}}})
		if err != nil || st != http.StatusOK {
			t.Errorf("write %d with the connections held: status %d %s %q %v; server exited: %v", i, st, r.Code, r.Message, err, s.Exited())
			return false
		}
		return true
	}
	write(0) // the client's pooled connection, opened before the others

	// Idle keep-alive connections, each after one request, up to more
	// than the process has fds.
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	over := 0
	addr := strings.TrimPrefix(s.URL, "http://")
	for i := 0; i < lowFDLimit; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		st, body, err := rawRequest(c, "/livez")
		switch {
		case err != nil:
			c.Close()
			t.Errorf("idle connection %d (after %d held, %d refused) got no reply: %v", i, len(held), over, err)
		case st == http.StatusOK && over == 0:
			held = append(held, c)
			continue
		case st == http.StatusServiceUnavailable && strings.Contains(body, "too_many_connections"):
			over++
			c.Close()
			continue
		default:
			c.Close()
			t.Errorf("idle connection %d: %d %s", i, st, body)
		}
		break
	}
	t.Logf("%d idle connections held, %d refused with 503 too_many_connections, max_connections %d", len(held), over, limit)
	if over == 0 {
		t.Errorf("%d connections with an open-file limit of %d: none got 503 too_many_connections", len(held)+1, lowFDLimit)
	}
	if limit >= 0 && len(held)+1 != limit {
		t.Errorf("%d idle connections plus the writer's were served, want max_connections %d", len(held), limit)
	}

	// Silent connections (no request at all), as many again.
	var silent []net.Conn
	for i := 0; i < lowFDLimit && !t.Failed(); i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("silent dial %d: %v", i, err)
		}
		silent = append(silent, c)
	}

	// Writes that open new log segments while all of them are held.
	newSegments, last := 0, lastSegment(t, dir)
	for i := 1; i < 200 && newSegments < 3 && write(i); i++ {
		if seg := lastSegment(t, dir); seg != last {
			newSegments, last = newSegments+1, seg
		}
	}
	if newSegments < 3 && !t.Failed() {
		t.Errorf("only %d new log segments after the writes", newSegments)
	}
	if s.Exited() || strings.Contains(s.Stderr(), "storage failed") {
		t.Fatalf("the server stopped while connections were held; exit %v", s.state)
	}
	for _, c := range silent {
		c.Close()
	}

	// Once the silent ones are gone, a new connection is answered 503;
	// once the idle ones are gone, it is served.
	probe := func(want int) {
		deadline := time.Now().Add(hangGuard)
		for {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			st, body, err := rawRequest(c, "/livez")
			c.Close()
			if err == nil && st == want && (want == http.StatusOK || strings.Contains(body, "too_many_connections")) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("a new connection: %d %s %v; want %d", st, body, err, want)
			}
			time.Sleep(20 * time.Millisecond) // the server has yet to see the closed ones
		}
	}
	probe(http.StatusServiceUnavailable)
	for _, c := range held {
		c.Close()
	}
	held = nil
	probe(http.StatusOK)
	write(1000)
	s.stop()
}

// TestMaxConnectionsFromFDLimit: --max-connections is sized from the
// open-file limit: auto takes what is left after the reserve, a larger
// number is lowered with a warning that says how to allow it, a smaller
// one is kept, and a limit too low for any connection refuses to start.
func TestMaxConnectionsFromFDLimit(t *testing.T) {
	t.Parallel()
	wrap := withLowFDLimit(t, lowFDLimit, lowFDLimit)
	fit := lowFDLimit - fdReserve
	for _, tc := range []struct {
		env  []string
		args []string
		want int
		warn bool
	}{
		{nil, nil, fit, false},
		{nil, []string{"--max-connections", "auto"}, fit, false},
		{nil, []string{"--max-connections", "0"}, fit, false},
		{nil, []string{"--max-connections", "100000"}, fit, true},
		{[]string{"LATCH_MAX_CONNECTIONS=50"}, nil, 50, false},
	} {
		s := startServerVia(t, t.TempDir(), tc.env, wrap, tc.args...)
		line, _ := s.waitLine("msg=listening", 1, hangGuard)
		if m := maxConnsRE.FindStringSubmatch(line); m == nil || m[1] != strconv.Itoa(tc.want) {
			t.Errorf("%v %v: listening line %q, want max_connections=%d", tc.env, tc.args, line, tc.want)
		}
		warned := s.count("--max-connections 100000 is more than the open-file limit allows; serving at most "+strconv.Itoa(fit)) == 1 &&
			s.count("ulimit -n") == 1 && s.count("at least "+strconv.Itoa(100000+fdReserve)) == 1
		if warned != tc.warn {
			t.Errorf("%v %v: warned %v, want %v:\n%s", tc.env, tc.args, warned, tc.warn, s.Stderr())
		}
		s.stop()
	}
	for _, tc := range []struct {
		wrap []string
		args []string
		want string
	}{
		{withLowFDLimit(t, fdReserve, fdReserve), nil, "ulimit -n"},
		{wrap, []string{"--max-connections", "many"}, "want a number of connections, or auto"},
		{wrap, []string{"--max-connections", "-1"}, "want a number of connections, or auto"},
	} {
		p := startProcVia(t, "latch serve", nil, tc.wrap, append([]string{"serve", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir()}, tc.args...)...)
		if st := p.Wait(hangGuard); st.ExitCode() != 2 || !strings.Contains(p.Stderr(), tc.want) {
			t.Errorf("%v %v: exit %v, stderr %q; want exit 2 saying %q", tc.wrap, tc.args, st, p.Stderr(), tc.want)
		}
	}
}
