package main

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDockerfileBinary checks what the image in ../../Dockerfile relies
// on, since these machines have no Docker engine to build it: the build
// line, taken from the Dockerfile itself, makes a static binary (the
// distroless static image has no libc); run as the image's USER with its
// ENV and ENTRYPOINT, the server refuses 0.0.0.0 without an auth file and,
// given one, serves from a data directory owned by that user.
func TestDockerfileBinary(t *testing.T) {
	t.Parallel() // mostly a go build
	df, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	find := func(re string) []string {
		t.Helper()
		m := regexp.MustCompile(re).FindStringSubmatch(string(df))
		if m == nil {
			t.Fatalf("the Dockerfile has no line matching %s", re)
		}
		return m
	}
	build := find(`(?m)^RUN CGO_ENABLED=0 go build (.+) -o /out/latch \./cmd/latch`)[1]
	user := find(`(?m)^USER (\d+):(\d+)$`)
	find(`(?m)^ENTRYPOINT \["/usr/local/bin/latch", "serve"\]$`)
	imageEnv := strings.Fields(find(`(?m)^ENV (.+)$`)[1])

	dir := t.TempDir()
	bin := filepath.Join(dir, "latch")
	args := append([]string{"build"}, shellWords(t, strings.ReplaceAll(build, "${VERSION}", "dockerfile-test"))...)
	cmd := exec.Command("go", append(args, "-o", bin, "./cmd/latch")...)
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Fatalf("the image's binary is dynamically linked (%v); distroless/static has no libc", p.Type)
		}
	}
	f.Close()
	if out, err := exec.Command(bin, "version").CombinedOutput(); err != nil || !strings.Contains(string(out), "dockerfile-test") {
		t.Fatalf("latch version: %v %q, want the -X main.version of the build line", err, out)
	}

	if os.Geteuid() != 0 {
		t.Skip("running as the image's user needs root; the static-binary checks above passed")
	}
	uid, _ := strconv.Atoi(user[1])
	gid, _ := strconv.Atoi(user[2])
	data := filepath.Join(dir, "data")
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil { // t.TempDir makes 0700 directories
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(data, uid, gid); err != nil { // COPY --chown in the Dockerfile
		t.Fatal(err)
	}
	auth := filepath.Join(dir, "auth")
	// Readable by the image's user as a mounted file would be: tokens
	// stored hashed, so mode 0644 is allowed.
	sum := sha256.Sum256([]byte(strings.Repeat("a", 40)))
	if err := os.WriteFile(auth, []byte("admin sha256:"+hex.EncodeToString(sum[:])+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	run := func(extra ...string) (*exec.Cmd, *bytes.Buffer) {
		c := exec.Command(bin, append([]string{"serve"}, extra...)...)
		var env []string
		for _, kv := range imageEnv {
			if strings.HasPrefix(kv, "LATCH_DATA_DIR=") {
				kv = "LATCH_DATA_DIR=" + data
			}
			if strings.HasPrefix(kv, "LATCH_ADDR=") {
				host, _, _ := net.SplitHostPort(strings.TrimPrefix(kv, "LATCH_ADDR="))
				kv = "LATCH_ADDR=" + net.JoinHostPort(host, strconv.Itoa(port))
			}
			env = append(env, kv)
		}
		c.Env = childEnv(env...)
		c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		var stderr bytes.Buffer
		c.Stderr = &stderr
		return c, &stderr
	}

	// docker run latch (no --auth-file): refused, saying what to do.
	c, stderr := run()
	if err := c.Run(); c.ProcessState == nil || c.ProcessState.ExitCode() != 2 || !strings.Contains(stderr.String(), "--auth-file") {
		t.Fatalf("the image's command without an auth file: %v, want exit 2 naming --auth-file; stderr:\n%s", err, stderr)
	}
	// docker run latch --auth-file ...: serves as the image's user.
	c, stderr = run("--auth-file", auth)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		c.Process.Signal(syscall.SIGTERM) //nolint:errcheck
		c.Wait()                          //nolint:errcheck
	}()
	url := "http://127.0.0.1:" + strconv.Itoa(port) + "/readyz"
	deadline := time.Now().Add(hangGuard)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the image's command with an auth file never became ready (%v); stderr:\n%s", err, stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(data, "wal"), &st); err != nil || int(st.Uid) != uid {
		t.Fatalf("data written as uid %d (%v), want the image's user %d", st.Uid, err, uid)
	}
}
