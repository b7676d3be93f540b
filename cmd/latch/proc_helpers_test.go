package main

// Helpers for the process tests: they build the real binary once, run it as
// a child process on loopback, talk to it over HTTP and kill it for real.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// latchBin is the binary built by TestMain (without -race, to keep it fast).
var latchBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "latch-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "process tests:", err)
		os.Exit(1)
	}
	latchBin = filepath.Join(dir, "latch")
	goTool := "go"
	if p, err := exec.LookPath("go"); err == nil {
		goTool = p
	} else if root := os.Getenv("GOROOT"); root != "" {
		goTool = filepath.Join(root, "bin", "go")
	}
	cmd := exec.Command(goTool, "build", "-o", latchBin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "process tests: building the latch binary: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// hangGuard bounds every wait in these tests. It is never a performance
// assertion: reaching it means something hangs.
const hangGuard = 30 * time.Second

// childEnv is the test process's environment without any LATCH_* variable
// (they would change the server's flags), plus text logs (the tests parse
// them; stderr is a pipe, so auto would pick JSON), plus extra, which wins.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LATCH_") {
			env = append(env, kv)
		}
	}
	env = append(env, "LATCH_LOG_FORMAT=text")
	return append(env, extra...)
}

// proc is one running latch process with its stderr captured line by line.
type proc struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	mu     sync.Mutex
	lines  []string
	notify chan struct{} // closed and replaced when a line arrives or the process exits
	exited chan struct{}
	state  *os.ProcessState
}

// startProc runs the latch binary with args and extra environment.
func startProc(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	return startProcVia(t, name, env, nil, args...)
}

// startProcVia runs the latch binary through wrap, a command that ends by
// exec-ing its arguments (prlimit, for one), so that the process signalled
// and waited for is latch itself.
func startProcVia(t *testing.T, name string, env, wrap []string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, notify: make(chan struct{}), exited: make(chan struct{})}
	argv := append(append(slices.Clone(wrap), latchBin), args...)
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Env = childEnv(env...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			close(p.notify)
			p.notify = make(chan struct{})
			p.mu.Unlock()
		}
		io.Copy(io.Discard, stderr) //nolint:errcheck // drain after an over-long line
		p.cmd.Wait()                //nolint:errcheck // the state is inspected instead
		p.mu.Lock()
		p.state = p.cmd.ProcessState
		close(p.notify)
		p.notify = make(chan struct{})
		p.mu.Unlock()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.Kill()
		select {
		case <-p.exited:
		case <-time.After(hangGuard):
			t.Errorf("%s: not reaped after SIGKILL", name)
		}
		if t.Failed() {
			t.Logf("last stderr lines of %s:\n%s", name, p.tail(12))
		}
	})
	return p
}

// Kill sends SIGKILL (a no-op once the process is gone).
func (p *proc) Kill() { p.cmd.Process.Signal(syscall.SIGKILL) } //nolint:errcheck

// Term sends SIGTERM.
func (p *proc) Term() { p.cmd.Process.Signal(syscall.SIGTERM) } //nolint:errcheck

// Exited reports whether the process has exited.
func (p *proc) Exited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// Wait waits for the process to exit, at most d; it fails the test and
// kills the process if it does not.
func (p *proc) Wait(d time.Duration) *os.ProcessState {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(d):
		p.t.Errorf("%s did not exit within %s (hang guard); killing it", p.name, d)
		p.Kill()
		<-p.exited
	}
	return p.state
}

// Stderr is everything the process wrote to stderr so far.
func (p *proc) Stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines, "\n")
}

func (p *proc) tail(n int) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.lines[max(0, len(p.lines)-n):], "\n")
}

// count is how many stderr lines contain sub.
func (p *proc) count(sub string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, l := range p.lines {
		if strings.Contains(l, sub) {
			n++
		}
	}
	return n
}

// waitLine waits for the n-th (1-based) stderr line containing sub. It
// returns false if the process exited first or d passed.
func (p *proc) waitLine(sub string, n int, d time.Duration) (string, bool) {
	return p.waitNth(func(l string) bool { return strings.Contains(l, sub) }, n, d)
}

// waitMatch waits for the first stderr line matching re; false if the
// process exited first or d passed.
func (p *proc) waitMatch(re *regexp.Regexp, d time.Duration) (string, bool) {
	return p.waitNth(re.MatchString, 1, d)
}

// waitNth waits for the n-th stderr line that match accepts.
func (p *proc) waitNth(match func(string) bool, n int, d time.Duration) (string, bool) {
	deadline := time.After(d)
	for {
		p.mu.Lock()
		seen := 0
		for _, l := range p.lines {
			if match(l) {
				if seen++; seen == n {
					p.mu.Unlock()
					return l, true
				}
			}
		}
		ch, gone := p.notify, p.state != nil
		p.mu.Unlock()
		if gone {
			return "", false
		}
		select {
		case <-ch:
		case <-deadline:
			return "", false
		}
	}
}

// killedBySIGKILL reports whether st is the state of a process that SIGKILL ended.
func killedBySIGKILL(st *os.ProcessState) bool {
	ws, ok := st.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// server is a `latch serve` process that is listening.
type server struct {
	*proc
	dir    string
	URL    string
	tr     *http.Transport
	client *http.Client
}

var listenRE = regexp.MustCompile(`msg=listening addr=(\S+)`)

// startServer runs `latch serve --addr 127.0.0.1:0 --data-dir dir --shards 2
// args...` and waits for its listening line.
func startServer(t *testing.T, dir string, env []string, args ...string) *server {
	t.Helper()
	return startServerVia(t, dir, env, nil, args...)
}

// startServerVia is startServer run through wrap (see startProcVia).
func startServerVia(t *testing.T, dir string, env, wrap []string, args ...string) *server {
	t.Helper()
	argv := append([]string{"serve", "--addr", "127.0.0.1:0", "--data-dir", dir, "--shards", "2"}, args...)
	p := startProcVia(t, "latch serve "+filepath.Base(dir), env, wrap, argv...)
	line, ok := p.waitLine("msg=listening", 1, hangGuard)
	if !ok {
		p.Kill()
		<-p.exited
		t.Fatalf("latch serve on %s did not start listening; exit %v; stderr:\n%s", dir, p.state, p.Stderr())
	}
	m := listenRE.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("cannot parse the listening address from %q", line)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	s := &server{proc: p, dir: dir, URL: "http://" + m[1], tr: tr, client: &http.Client{Transport: tr, Timeout: hangGuard}}
	t.Cleanup(tr.CloseIdleConnections)
	return s
}

// stop sends SIGTERM and requires a clean exit 0.
func (s *server) stop() {
	s.t.Helper()
	s.Term()
	if st := s.Wait(hangGuard); st.ExitCode() != 0 {
		s.t.Errorf("SIGTERM: want exit 0, got %v; stderr:\n%s", st, s.tail(10))
	}
	s.tr.CloseIdleConnections()
}

// crash sends SIGKILL and waits for the process to be gone.
func (s *server) crash() {
	s.t.Helper()
	s.Kill()
	s.Wait(hangGuard)
	s.tr.CloseIdleConnections()
}

// The reply of POST /db/{env}, errors included.
type dbResp struct {
	Lock   uint64
	Till   int64
	TillMs int64
	KV     []struct {
		Key     string
		Value   json.RawMessage
		Version uint64
	}
	Atomic []struct {
		Key   string
		Value int64
	}
	Seq []struct {
		Key         string
		First, Last uint64
	}
	Code    string
	Message string
}

// errNoReply marks a request that got no complete HTTP reply.
var errNoReply = errors.New("no reply")

// db posts body to /db/{ns}. err is non-nil (wrapping errNoReply) when no
// complete, decodable reply arrived; the request may or may not have applied.
func (s *server) db(ctx context.Context, ns string, body any) (int, dbResp, error) {
	b, err := json.Marshal(body)
	if err != nil {
		panic(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/db/"+ns, bytes.NewReader(b))
	if err != nil {
		panic(err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, dbResp{}, fmt.Errorf("%w: %v", errNoReply, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, dbResp{}, fmt.Errorf("%w: reading the body: %v", errNoReply, err)
	}
	var r dbResp
	if err := json.Unmarshal(data, &r); err != nil {
		return resp.StatusCode, dbResp{}, fmt.Errorf("%w: status %d, undecodable body %q: %v", errNoReply, resp.StatusCode, data, err)
	}
	return resp.StatusCode, r, nil
}

// mustDB posts and requires status want.
func (s *server) mustDB(ns string, body any, want int) dbResp {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	st, r, err := s.db(ctx, ns, body)
	if err != nil {
		s.t.Fatalf("POST /db/%s %v: %v", ns, body, err)
	}
	if st != want {
		s.t.Fatalf("POST /db/%s %v: status %d (%s: %s), want %d", ns, body, st, r.Code, r.Message, want)
	}
	return r
}

// runLatch runs a latch command to completion (hang guard included) and
// returns its exit code, stdout and stderr.
func runLatch(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*hangGuard)
	defer cancel()
	cmd := exec.CommandContext(ctx, latchBin, args...)
	cmd.Env = childEnv(env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("latch %s: did not finish within %s (hang guard)", strings.Join(args, " "), 2*hangGuard)
	}
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("latch %s: %v", strings.Join(args, " "), err)
		}
		code = ee.ExitCode()
	}
	return code, stdout.String(), stderr.String()
}
