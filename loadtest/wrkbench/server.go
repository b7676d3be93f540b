package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// target is one server the rows run against: the bare handler, the latch
// binary under test, or a base latch binary to compare it with.
type target struct {
	name string
	bin  string
	bare bool
}

// server is one running target, on loopback, with a fresh data directory.
type server struct {
	target
	addr string
	dir  string
	cmd  *exec.Cmd
	log  *os.File
}

// startServer starts t on a free loopback port with its data under a new
// directory in tmp and waits until it answers. extra goes to latch serve.
func startServer(t target, tmp string, extra ...string) (*server, error) {
	dir, err := os.MkdirTemp(tmp, "wrkbench-"+t.name+"-")
	if err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	args := []string{"--addr", addr}
	if !t.bare {
		args = append([]string{"serve", "--addr", addr, "--data-dir", filepath.Join(dir, "data"), "--log-level", "warn"}, extra...)
	}
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	cmd := exec.Command(t.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = serverEnv()
	if err := cmd.Start(); err != nil {
		logf.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	s := &server{target: t, addr: addr, dir: dir, cmd: cmd, log: logf}
	if err := s.waitReady(30 * time.Second); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// serverEnv is this environment without LATCH_* variables, which would
// change latch's flags between the runs being compared.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LATCH_") {
			env = append(env, kv)
		}
	}
	return env
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func (s *server) url() string { return "http://" + s.addr }

func (s *server) waitReady(d time.Duration) error {
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		resp, err := c.Get(s.url() + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer GET /readyz with 200 within %s (log: %s)", s.name, d, s.tail())
}

// stop ends the server with SIGTERM (so a --cpu-profile is finished),
// SIGKILL after 15 s, and removes its directory.
func (s *server) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
	s.log.Close()
	os.RemoveAll(s.dir)
}

// tail is the end of the server's log, for error messages.
func (s *server) tail() string {
	b, _ := os.ReadFile(s.log.Name())
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// clockTick is the unit of utime and stime in /proc/PID/stat: USER_HZ,
// which is 100 on every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// cpuTime is the CPU the server has used so far, user plus system.
func (s *server) cpuTime() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// The command name in parentheses may hold spaces: count fields
	// after its closing parenthesis, where field 3 (state) is index 0.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, errors.New("no ) in /proc/PID/stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("short /proc/PID/stat")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// rssMiB is the server's resident set (VmRSS) now, in MiB.
func (s *server) rssMiB() (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024, err
		}
	}
	return 0, errors.New("no VmRSS in /proc/PID/status")
}
