package main

// Tests of the client verbs: the real binary against a real `latch serve`
// on loopback (helpers in proc_helpers_test.go).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// cliEnv points the client verbs at s, in namespace ns.
func cliEnv(s *server, ns string) []string {
	return []string{"LATCH_ADDR=" + s.URL, "LATCH_NAMESPACE=" + ns}
}

// mustLatch runs a verb and requires exit code want.
func mustLatch(t *testing.T, env []string, want int, args ...string) string {
	t.Helper()
	code, out, errOut := runLatch(t, env, args...)
	if code != want {
		t.Fatalf("latch %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, want, out, errOut)
	}
	return out
}

// cliProc is a running client verb with its stdout delivered line by line.
type cliProc struct {
	cmd    *exec.Cmd
	lines  chan string
	stderr *lockedBuffer
	done   chan struct{}
}

// lockedBuffer is a child's stderr, read by the test while the child may
// still write it (a hang guard's message, for one).
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func startCLI(t *testing.T, env []string, args ...string) *cliProc {
	t.Helper()
	p := &cliProc{cmd: exec.Command(latchBin, args...), lines: make(chan string, 100), stderr: new(lockedBuffer), done: make(chan struct{})}
	p.cmd.Env = childEnv(env...)
	p.cmd.Stderr = p.stderr
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		io.Copy(io.Discard, out) //nolint:errcheck
		p.cmd.Wait()             //nolint:errcheck // the state is inspected instead
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill() //nolint:errcheck
		<-p.done
	})
	return p
}

func (p *cliProc) line(t *testing.T) string {
	t.Helper()
	select {
	case l := <-p.lines:
		return l
	case <-time.After(hangGuard):
		t.Fatalf("no output line within %s (hang guard); stderr: %s", hangGuard, p.stderr)
		return ""
	}
}

func (p *cliProc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(hangGuard):
		t.Fatalf("%v did not exit within %s (hang guard); stderr: %s", p.cmd.Args, hangGuard, p.stderr)
	}
	return p.cmd.ProcessState.ExitCode()
}

// waitFile waits until path exists and returns its content.
func waitFile(t *testing.T, path string) string {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			return strings.TrimSpace(string(b))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared", path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCLIKeyValue(t *testing.T) {
	s := startServer(t, t.TempDir(), nil)
	env := cliEnv(s, "cli")

	mustLatch(t, env, 0, "set", "k", `{"a": [1, 2]}`)
	if out := mustLatch(t, env, 0, "get", "k"); out != "{\"a\": [1, 2]}\n" {
		t.Fatalf("get prints the stored JSON byte-exact: %q", out)
	}
	var got struct {
		Key     string
		Value   json.RawMessage
		Version uint64
	}
	if err := json.Unmarshal([]byte(mustLatch(t, env, 0, "get", "-o", "json", "k")), &got); err != nil || got.Key != "k" || got.Version != 1 {
		t.Fatalf("get -o json: %+v %v", got, err)
	}
	// Not JSON: a string. --string forces one. Flags after positionals work.
	mustLatch(t, env, 0, "set", "s", "hello world")
	if out := mustLatch(t, env, 0, "get", "s"); out != "\"hello world\"\n" {
		t.Fatalf("a non-JSON value is stored as a string: %q", out)
	}
	mustLatch(t, env, 0, "set", "n", "42", "--string")
	if out := mustLatch(t, env, 0, "get", "n"); out != "\"42\"\n" {
		t.Fatalf("--string: %q", out)
	}
	if out := mustLatch(t, env, 0, "set", "-o", "json", "--", "neg", "-5"); !strings.Contains(out, `"Version":4`) {
		t.Fatalf("set -o json after three writes: %q", out)
	}
	if out := mustLatch(t, env, 0, "get", "neg"); out != "-5\n" {
		t.Fatalf("a value after --: %q", out)
	}
	// --ns and LATCH_NAMESPACE select the namespace.
	mustLatch(t, env, 4, "get", "--ns", "elsewhere", "k")
	mustLatch(t, env, 0, "del", "k")
	_, _, errOut := runLatch(t, env, "get", "k")
	mustLatch(t, env, 4, "get", "k")
	if !strings.Contains(errOut, "not found") {
		t.Fatalf("get of a missing key says so: %q", errOut)
	}

	if out := mustLatch(t, env, 0, "incr", "c"); out != "1\n" {
		t.Fatalf("incr: %q", out)
	}
	if out := mustLatch(t, env, 0, "incr", "c", "--by", "-11", "-o", "json"); out != "{\"Key\":\"c\",\"Value\":-10}\n" {
		t.Fatalf("incr --by -11 -o json: %q", out)
	}
	if out := mustLatch(t, env, 0, "seq", "ids"); out != "1\n" {
		t.Fatalf("seq: %q", out)
	}
	if out := mustLatch(t, env, 0, "seq", "ids", "--count", "5"); out != "2 6\n" {
		t.Fatalf("seq --count 5: %q", out)
	}
	if out := mustLatch(t, env, 0, "seq", "-o", "json", "ids"); out != "{\"Key\":\"ids\",\"First\":7,\"Last\":7}\n" {
		t.Fatalf("seq -o json: %q", out)
	}

	// Usage errors exit 2; an unreachable server exits 1.
	mustLatch(t, env, 2, "get")
	mustLatch(t, env, 2, "set", "only-key")
	mustLatch(t, env, 2, "get", "k", "-o", "yaml")
	mustLatch(t, env, 2, "incr", "c", "--by", "x")
	mustLatch(t, []string{"LATCH_ADDR=http://127.0.0.1:1"}, 1, "get", "k")
	if out := mustLatch(t, nil, 0, "help"); !strings.Contains(out, "5  lock lost") {
		t.Fatalf("help lists the exit codes: %q", out)
	}
}

func TestCLIWatch(t *testing.T) {
	s := startServer(t, t.TempDir(), nil)
	env := cliEnv(s, "cliw")
	mustLatch(t, env, 0, "set", "k", `"before"`)
	// --version 1 (the state set above): the first write below is
	// reported even if it lands before the watch process has started.
	// Each later write is made after the previous line arrived.
	w := startCLI(t, env, "watch", "k", "--version", "1")
	for i, v := range []string{`"one"`, `{"two":2}`} {
		mustLatch(t, env, 0, "set", "k", v)
		var got struct {
			Key     string
			Value   json.RawMessage
			Version uint64
		}
		line := w.line(t)
		if err := json.Unmarshal([]byte(line), &got); err != nil || string(got.Value) != v || got.Key != "k" || got.Version != uint64(i+2) {
			t.Fatalf("watch line %d: %q (%v), want value %s", i, line, err, v)
		}
	}
	mustLatch(t, env, 0, "del", "k")
	if line := w.line(t); !strings.Contains(line, `"Value":null,"Version":0`) {
		t.Fatalf("a delete is reported as version 0: %q", line)
	}
	w.cmd.Process.Signal(syscall.SIGINT) //nolint:errcheck
	if code := w.wait(t); code != 0 {
		t.Fatalf("watch after Ctrl-C: exit %d, want 0; stderr: %s", code, w.stderr)
	}
}

func TestCLILock(t *testing.T) {
	s := startServer(t, t.TempDir(), nil)
	env := cliEnv(s, "clil")

	// The command sees the handle and its exit code passes through.
	out := mustLatch(t, env, 7, "lock", "L", "--ttl", "10s", "--", "sh", "-c", `echo "token=$LATCH_FENCING_TOKEN"; exit 7`)
	h, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimSpace(out), "token="), 10, 64)
	if err != nil || h == 0 {
		t.Fatalf("LATCH_FENCING_TOKEN: %q", out)
	}
	// It was released at exit: taking it again works at once, with a
	// higher handle; the command's own arguments are not parsed as flags.
	out = mustLatch(t, env, 0, "lock", "L", "--wait", "0", "sh", "-c", `echo $LATCH_FENCING_TOKEN`)
	if h2, _ := strconv.ParseUint(strings.TrimSpace(out), 10, 64); h2 <= h {
		t.Fatalf("second handle %q, want above %d", out, h)
	}

	// Held elsewhere: exit 3, and the command does not run.
	held := s.mustDB("clil", map[string]any{"LockID": "L", "LockDur": 60}, 200)
	marker := filepath.Join(t.TempDir(), "ran")
	code, _, errOut := runLatch(t, env, "lock", "L", "--wait", "0", "--", "touch", marker)
	if code != 3 || !strings.Contains(errOut, "held by another client") {
		t.Fatalf("lock held elsewhere: exit %d (%s), want 3", code, errOut)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the command ran without the lock")
	}
	// With --wait, it runs once the holder releases.
	p := startCLI(t, env, "lock", "L", "--wait", "1m", "--", "sh", "-c", "echo got-it")
	s.mustDB("clil", map[string]any{"UnlockID": "L", "Unlock": held.Lock}, 200)
	if l := p.line(t); l != "got-it" {
		t.Fatalf("waiting latch lock printed %q", l)
	}
	if code := p.wait(t); code != 0 {
		t.Fatalf("exit %d; stderr %s", code, p.stderr)
	}
	// A command that cannot start: exit 1, lock released.
	mustLatch(t, env, 1, "lock", "L", "--", filepath.Join(t.TempDir(), "no-such-command"))
	mustLatch(t, env, 2, "lock", "L")
	s.mustDB("clil", map[string]any{"LockID": "L", "LockDur": 1}, 200)
}

// The child script: it records the first signal it gets and exits 7;
// `sleep & wait` keeps the shell able to run its trap at once.
const trapScript = `trap 'echo "$1" > "$2"; kill $! 2>/dev/null; exit 7' INT TERM
grep SigIgn /proc/$$/status > "$3.sigign" 2>/dev/null
echo "$LATCH_FENCING_TOKEN" > "$3"
sleep 120 & wait`

func TestCLILockCtrlC(t *testing.T) {
	s := startServer(t, t.TempDir(), nil)
	env := cliEnv(s, "clic")
	dir := t.TempDir()
	got, ready := filepath.Join(dir, "got"), filepath.Join(dir, "ready")
	p := startCLI(t, env, "lock", "L", "--ttl", "1m", "--", "sh", "-c", trapScript, "sh", "signal", got, ready)
	waitFile(t, ready)
	if sigintIgnored(t, ready+".sigign") {
		// A shell cannot trap a signal that was ignored when it started:
		// the test runs under a job started with & by a non-interactive
		// shell, and SIGINT stays ignored down to latch lock's child.
		p.cmd.Process.Kill() //nolint:errcheck
		t.Skip("the command's shell started with SIGINT ignored (this test was run in the background?), so it cannot trap the forwarded Ctrl-C; run it in the foreground")
	}
	p.cmd.Process.Signal(syscall.SIGINT) //nolint:errcheck
	if code := p.wait(t); code != 7 {
		t.Fatalf("latch lock after SIGINT: exit %d, want the child's 7; stderr: %s", code, p.stderr)
	}
	if g := waitFile(t, got); g != "signal" {
		t.Fatalf("child marker %q", g)
	}
	// Released: another client takes it at once (LockWait 0).
	s.mustDB("clic", map[string]any{"LockID": "L", "LockDur": 10}, 200)
}

// Ctrl-C while `latch lock` is still waiting leaves the line: the command
// never runs, latch exits 1, and the lock is never granted to it (the
// next client takes it at once when the holder unlocks).
func TestCLILockCtrlCWhileWaiting(t *testing.T) {
	s := startServer(t, t.TempDir(), nil)
	env := cliEnv(s, "cliw")
	held := s.mustDB("cliw", map[string]any{"LockID": "L", "LockDur": 60}, 200)
	marker := filepath.Join(t.TempDir(), "ran")
	p := startCLI(t, env, "lock", "L", "--wait", "1m", "--", "touch", marker)
	waitLockWaiters(t, env, "cliw", 1)
	p.cmd.Process.Signal(syscall.SIGINT) //nolint:errcheck
	if code := p.wait(t); code != 1 {
		t.Fatalf("latch lock interrupted while waiting: exit %d, want 1; stderr: %s", code, p.stderr)
	}
	if !strings.Contains(p.stderr.String(), "while waiting for lock") {
		t.Fatalf("no message for the interrupted wait: %s", p.stderr)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the command ran after Ctrl-C")
	}
	// The waiter left the line: no waiters remain, and after the holder
	// unlocks, a client with LockWait 0 gets the lock.
	waitLockWaiters(t, env, "cliw", 0)
	s.mustDB("cliw", map[string]any{"UnlockID": "L", "Unlock": held.Lock}, 200)
	s.mustDB("cliw", map[string]any{"LockID": "L", "LockDur": 10}, 200)
}

// waitLockWaiters polls `latch locks --ns NS -o json` until the one held
// lock there has n waiters, and returns that listing's entry.
func waitLockWaiters(t *testing.T, env []string, ns string, n int) lockListEntry {
	t.Helper()
	var list struct{ Locks []lockListEntry }
	deadline := time.Now().Add(hangGuard)
	for {
		out := mustLatch(t, env, 0, "locks", "--ns", ns, "-o", "json")
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatalf("locks -o json: %q: %v", out, err)
		}
		if len(list.Locks) == 1 && list.Locks[0].Waiters == n {
			return list.Locks[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("locks --ns %s: %q, want one lock with %d waiters", ns, out, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type lockListEntry struct {
	Namespace, Key string
	Handle         uint64
	TillMs         int64
	Waiters        int
}

// If the lock is lost mid-run (here: the server dies and the deadline
// passes with no extension), the child gets SIGTERM and latch exits 5.
func TestCLILockLost(t *testing.T) {
	s := startServer(t, t.TempDir(), nil)
	env := cliEnv(s, "clilost")
	dir := t.TempDir()
	got, ready := filepath.Join(dir, "got"), filepath.Join(dir, "ready")
	p := startCLI(t, env, "lock", "L", "--ttl", "1s", "--", "sh", "-c", trapScript, "sh", "term", got, ready)
	waitFile(t, ready)
	s.crash()
	if code := p.wait(t); code != 5 {
		t.Fatalf("latch lock after losing the lock: exit %d, want 5; stderr: %s", code, p.stderr)
	}
	if g := waitFile(t, got); g != "term" {
		t.Fatalf("child marker %q", g)
	}
	if !strings.Contains(p.stderr.String(), "lock_lost") {
		t.Fatalf("no loss message: %s", p.stderr)
	}
}

// latch locks lists held locks from GET /admin/locks.
func TestCLILocks(t *testing.T) {
	s := startServer(t, t.TempDir(), nil)
	env := cliEnv(s, "ignored")
	held := s.mustDB("clia", map[string]any{"LockID": "L", "LockDur": 60}, 200)
	s.mustDB("other", map[string]any{"LockID": "M", "LockDur": 60}, 200)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.db(ctx, "clia", map[string]any{"LockID": "L", "LockDur": 60, "LockWait": 60}) //nolint:errcheck // a waiter

	l := waitLockWaiters(t, env, "clia", 1)
	if l.Namespace != "clia" || l.Key != "L" || l.Handle != held.Lock || l.TillMs != held.TillMs {
		t.Fatalf("locks: %+v, want handle %d till %d", l, held.Lock, held.TillMs)
	}
	out := mustLatch(t, env, 0, "locks")
	if !strings.Contains(out, "HANDLE") || !strings.Contains(out, "clia") || !strings.Contains(out, "other") {
		t.Fatalf("locks (text, every namespace): %q", out)
	}
}

// shellWords splits a command line of the README or the Dockerfile: words
// separated by spaces, single- or double-quoted text taken literally (no
// escapes or expansions), a "  #" starting a comment.
func shellWords(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	var cur strings.Builder
	inWord := false
	var quote byte // the open quote, or 0
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case quote != 0 && ch == quote:
			quote = 0
		case quote != 0:
			cur.WriteByte(ch)
		case ch == '\'' || ch == '"':
			quote, inWord = ch, true
		case ch == '#' && !inWord:
			i = len(line)
		case ch == ' ':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	if quote != 0 {
		t.Fatalf("unterminated quote in %q", line)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

var exitNote = regexp.MustCompile(`^# \(exit code (\d+)`)

// TestReadmeShell runs the README's "From the shell" session, in order, on
// a fresh server, and checks every output written under a command.
func TestReadmeShell(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)## From the shell\n.*?```sh\n(.*?)```").FindSubmatch(readme)
	if m == nil {
		t.Fatal(`README.md: no "From the shell" section with a sh block`)
	}
	s := startServer(t, t.TempDir(), nil)
	env := []string{"LATCH_ADDR=" + s.URL}
	lines := strings.Split(string(m[1]), "\n")
	ran := 0
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		switch {
		case strings.HasPrefix(line, "export "):
			for _, kv := range shellWords(t, strings.TrimPrefix(line, "export ")) {
				if !strings.HasPrefix(kv, "PATH=") {
					env = append(env, kv)
				}
			}
			continue
		case !strings.HasPrefix(line, "latch "):
			continue
		}
		args := shellWords(t, line)[1:]
		wantCode, want := 0, ""
		for i+1 < len(lines) && strings.HasPrefix(lines[i+1], "# ") {
			i++
			if n := exitNote.FindStringSubmatch(lines[i]); n != nil {
				wantCode, _ = strconv.Atoi(n[1])
				continue
			}
			exp := strings.TrimPrefix(lines[i], "# ")
			if note := strings.Index(exp, "  # "); note >= 0 {
				exp = exp[:note]
			}
			want += exp + "\n"
		}
		code, out, errOut := runLatch(t, env, args...)
		if code != wantCode || (wantCode == 0 && out != want) {
			t.Fatalf("README.md %q: exit %d, stdout %q, want exit %d, stdout %q; stderr: %s", line, code, out, wantCode, want, errOut)
		}
		ran++
	}
	if ran < 5 {
		t.Fatalf("only %d commands found in the README's shell session", ran)
	}
}

// sigintIgnored reports whether a SigIgn line of /proc/PID/status, saved
// in file, has SIGINT ignored.
func sigintIgnored(t *testing.T, file string) bool {
	b, err := os.ReadFile(file)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if mask, ok := strings.CutPrefix(line, "SigIgn:"); ok {
			m, err := strconv.ParseUint(strings.TrimSpace(mask), 16, 64)
			if err != nil {
				t.Fatalf("SigIgn %q: %v", mask, err)
			}
			return m&(1<<(int(syscall.SIGINT)-1)) != 0
		}
	}
	return false
}
