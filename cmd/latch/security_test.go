package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/latchkv/latch/internal/testcert"
)

// Security flags of `latch serve`, on the real binary (docs/SECURITY.md).

const (
	procAdminToken = "admin-proc-0123456789abcdef"
	procDevToken   = "dev-proc-0123456789abcdef00"
	procNewToken   = "rotated-proc-0123456789abcdef"
)

// writeFile writes text to dir/name with mode and returns the path.
func writeFile(t *testing.T, dir, name, text string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// do sends one request with an optional bearer token and returns the
// status and body.
func do(t *testing.T, c *http.Client, method, url, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

// wantStatus checks a status and, if code is given, the error code.
func wantStatus(t *testing.T, what string, status int, body string, want int, code string) {
	t.Helper()
	if status != want || (code != "" && !strings.Contains(body, `"Code":"`+code+`"`)) {
		t.Fatalf("%s: got %d %s; want %d %s", what, status, strings.TrimSpace(body), want, code)
	}
}

// TestServeNoAuthOnNetworkAddress: without --auth-file a non-loopback
// --addr is refused before anything is opened, unless --insecure-no-auth;
// on loopback the server starts and warns.
func TestServeNoAuthOnNetworkAddress(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	p := startProc(t, "serve 0.0.0.0", nil, "serve", "--addr", "0.0.0.0:0", "--data-dir", data)
	if st := p.Wait(hangGuard); st.ExitCode() != 2 {
		t.Fatalf("want exit 2, got %v", st)
	}
	if e := p.Stderr(); !strings.Contains(e, "not a loopback address") || !strings.Contains(e, "--insecure-no-auth") || !strings.Contains(e, "--auth-file") {
		t.Fatalf("the refusal should say why and how to fix it:\n%s", e)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Fatalf("the data directory was created before the refusal: %v", err)
	}

	p = startProc(t, "serve insecure", nil, "serve", "--addr", "0.0.0.0:0", "--data-dir", data, "--insecure-no-auth")
	if _, ok := p.waitLine("msg=listening", 1, hangGuard); !ok {
		t.Fatalf("--insecure-no-auth did not start:\n%s", p.Stderr())
	}
	if p.count("AUTH IS OFF ON A NETWORK ADDRESS") != 1 {
		t.Fatalf("no loud warning:\n%s", p.Stderr())
	}
	p.Term()
	if st := p.Wait(hangGuard); st.ExitCode() != 0 {
		t.Fatalf("SIGTERM: %v", st)
	}

	s := startServer(t, filepath.Join(dir, "loop"), nil)
	if s.count("auth is off") != 1 || !strings.Contains(s.Stderr(), "auth=false") {
		t.Fatalf("a loopback server without auth should warn once:\n%s", s.Stderr())
	}
	s.stop()
}

// TestServeAuthFile: tokens from --auth-file (given as LATCH_AUTH_FILE),
// 401 and 403, SIGHUP rotation, a broken file on SIGHUP kept out, and no
// token ever written to the log.
func TestServeAuthFile(t *testing.T) {
	dir := t.TempDir()
	authFile := writeFile(t, dir, "tokens", "admin "+procAdminToken+"\nns dev "+procDevToken+"\n", 0o600)
	s := startServer(t, filepath.Join(dir, "data"), []string{"LATCH_AUTH_FILE=" + authFile})
	if !strings.Contains(s.Stderr(), "auth=true") || s.count("tokens=2") != 1 {
		t.Fatalf("the start log should say auth is on with 2 tokens:\n%s", s.Stderr())
	}
	st, body := do(t, s.client, "POST", s.URL+"/db/dev", "", `{}`)
	wantStatus(t, "no token", st, body, 401, "unauthorized")
	st, body = do(t, s.client, "POST", s.URL+"/db/dev", procDevToken, `{"KVSet":[{"Key":"k","Value":1}]}`)
	wantStatus(t, "dev token on dev", st, body, 200, "")
	st, body = do(t, s.client, "POST", s.URL+"/db/prod", procDevToken, `{}`)
	wantStatus(t, "dev token on prod", st, body, 403, "forbidden")
	st, body = do(t, s.client, "GET", s.URL+"/admin/snapshot", procDevToken, "")
	wantStatus(t, "dev token on /admin", st, body, 403, "forbidden")
	st, body = do(t, s.client, "GET", s.URL+"/admin/snapshot", procAdminToken, "")
	wantStatus(t, "admin token on /admin", st, body, 200, "")

	// latch snapshot save sends the admin token from --token or LATCH_TOKEN.
	snapFile := filepath.Join(dir, "backup.snap")
	code, _, stderr := runLatch(t, nil, "snapshot", "save", "--addr", s.URL, "--out", snapFile)
	if code == 0 || !strings.Contains(stderr, "401") || !strings.Contains(stderr, "unauthorized") {
		t.Fatalf("snapshot save without a token: exit %d, %s", code, stderr)
	}
	if _, err := os.Stat(snapFile); !os.IsNotExist(err) {
		t.Fatalf("a refused save left a file: %v", err)
	}
	if code, _, stderr := runLatch(t, []string{"LATCH_TOKEN=" + procAdminToken}, "snapshot", "save", "--addr", s.URL, "--out", snapFile); code != 0 {
		t.Fatalf("snapshot save with LATCH_TOKEN: exit %d, %s", code, stderr)
	}
	if code, _, stderr := runLatch(t, nil, "snapshot", "inspect", snapFile); code != 0 || strings.Contains(stderr, procAdminToken) {
		t.Fatalf("inspect the saved snapshot: exit %d, %s", code, stderr)
	}

	// Rotate: the new file replaces the dev token; SIGHUP applies it.
	writeFile(t, dir, "tokens", "admin "+procAdminToken+"\nns dev "+procNewToken+"\n", 0o600)
	s.cmd.Process.Signal(syscall.SIGHUP) //nolint:errcheck
	if _, ok := s.waitLine("auth file reloaded", 1, hangGuard); !ok {
		t.Fatalf("no reload after SIGHUP:\n%s", s.Stderr())
	}
	st, body = do(t, s.client, "POST", s.URL+"/db/dev", procDevToken, `{}`)
	wantStatus(t, "rotated-out token", st, body, 401, "unauthorized")
	st, body = do(t, s.client, "POST", s.URL+"/db/dev", procNewToken, `{"KVGet":["k"]}`)
	wantStatus(t, "new token", st, body, 200, "")

	// A broken file on SIGHUP is refused and the tokens in force stay.
	writeFile(t, dir, "tokens", "admin "+procAdminToken+"\nns dev\n", 0o600)
	s.cmd.Process.Signal(syscall.SIGHUP) //nolint:errcheck
	if _, ok := s.waitLine("was not reloaded", 1, hangGuard); !ok {
		t.Fatalf("a broken file on SIGHUP was not reported:\n%s", s.Stderr())
	}
	if !strings.Contains(s.Stderr(), "line 2") {
		t.Fatalf("the reload error should name the line:\n%s", s.Stderr())
	}
	st, body = do(t, s.client, "POST", s.URL+"/db/dev", procNewToken, `{}`)
	wantStatus(t, "token after a failed reload", st, body, 200, "")
	s.stop()
	for _, tok := range []string{procAdminToken, procDevToken, procNewToken} {
		if strings.Contains(s.Stderr(), tok) {
			t.Fatalf("a token is in the server's log:\n%s", s.Stderr())
		}
	}
}

// TestServeBadAuthFile: a bad file stops the start with exit 2 and a
// message naming the file and line.
func TestServeBadAuthFile(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name, text string
		mode       os.FileMode
		want       string
	}{
		{"badline", "admin " + procAdminToken + "\nns dev " + procDevToken + " trailing\n", 0o600, "line 2: want `ns <namespace> <token>`"},
		{"short", "ns dev tiny\n", 0o600, "line 1: the token is 4 bytes"},
		{"open", "admin " + procAdminToken + "\n", 0o644, "chmod 600"},
		{"empty", "# nothing\n", 0o600, "holds no tokens"},
	} {
		f := writeFile(t, dir, c.name, c.text, c.mode)
		p := startProc(t, "serve "+c.name, nil, "serve", "--addr", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data"), "--auth-file", f)
		if st := p.Wait(hangGuard); st.ExitCode() != 2 {
			t.Fatalf("%s: want exit 2, got %v", c.name, st)
		}
		if e := p.Stderr(); !strings.Contains(e, c.want) || !strings.Contains(e, f) {
			t.Fatalf("%s: stderr should name %s and say %q:\n%s", c.name, f, c.want, e)
		}
		if strings.Contains(p.Stderr(), procAdminToken) || strings.Contains(p.Stderr(), procDevToken) {
			t.Fatalf("%s: a token is in the error:\n%s", c.name, p.Stderr())
		}
	}
	p := startProc(t, "serve missing", nil, "serve", "--addr", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data"), "--auth-file", filepath.Join(dir, "nope"))
	if st := p.Wait(hangGuard); st.ExitCode() != 2 || !strings.Contains(p.Stderr(), "no such file") {
		t.Fatalf("missing auth file: %v\n%s", st, p.Stderr())
	}
}

// TestServeSmallReplyBound: a --max-reply-bytes too small to read back one
// value of --max-value-bytes stops the start.
func TestServeSmallReplyBound(t *testing.T) {
	p := startProc(t, "serve small reply", nil, "serve", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--max-reply-bytes", "1000")
	if st := p.Wait(hangGuard); st.ExitCode() != 2 || !strings.Contains(p.Stderr(), "--max-reply-bytes 1000 is below") {
		t.Fatalf("--max-reply-bytes under one value: %v\n%s", st, p.Stderr())
	}
}

// procCert writes a self-signed certificate for 127.0.0.1 into dir.
func procCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	certFile, keyFile, cert, err := testcert.Write(dir, "proc", 7)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestServeTLS: --tls-cert and --tls-key serve HTTPS; plain HTTP to it is
// refused; one of the two alone, or a bad file, stops the start.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := procCert(t, dir)
	s := startServer(t, filepath.Join(dir, "data"), nil, "--tls-cert", certFile, "--tls-key", keyFile)
	if !strings.Contains(s.Stderr(), "tls=true") {
		t.Fatalf("the listening line should say tls=true:\n%s", s.Stderr())
	}
	httpsURL := "https://" + strings.TrimPrefix(s.URL, "http://")
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer tr.CloseIdleConnections()
	st, body := do(t, &http.Client{Transport: tr, Timeout: hangGuard}, "POST", httpsURL+"/db/tls", "", `{"KVSet":[{"Key":"k","Value":1}]}`)
	wantStatus(t, "HTTPS", st, body, 200, "")
	st, body = do(t, s.client, "POST", s.URL+"/db/tls", "", `{}`)
	if st != 400 || !strings.Contains(body, "HTTPS") {
		t.Fatalf("plain HTTP to the TLS port: %d %q", st, body)
	}
	s.stop()

	for _, args := range [][]string{
		{"--tls-cert", certFile},
		{"--tls-key", keyFile},
		{"--tls-cert", keyFile, "--tls-key", certFile},
	} {
		p := startProc(t, "serve bad tls", nil, append([]string{"serve", "--addr", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data")}, args...)...)
		if st := p.Wait(hangGuard); st.ExitCode() != 2 || !strings.Contains(p.Stderr(), "--tls-") {
			t.Fatalf("%v: want exit 2 naming the TLS flags, got %v:\n%s", args, st, p.Stderr())
		}
	}
}

// TestCLIOverTLS: the client verbs and snapshot save reach an https://
// server whose self-signed certificate they are given with --ca-cert or
// LATCH_CA_CERT, and refuse it (without retrying) when they are not.
func TestCLIOverTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := procCert(t, dir)
	s := startServer(t, filepath.Join(dir, "data"), nil, "--tls-cert", certFile, "--tls-key", keyFile)
	env := []string{"LATCH_ADDR=https://" + strings.TrimPrefix(s.URL, "http://"), "LATCH_NAMESPACE=tls"}
	code, _, stderr := runLatch(t, env, "set", "k", "1")
	if code != 1 || !strings.Contains(stderr, "certificate") {
		t.Fatalf("set without the CA: exit %d, want 1 naming the certificate; stderr: %s", code, stderr)
	}
	mustLatch(t, append(env, "LATCH_CA_CERT="+certFile), 0, "set", "k", "1")
	if out := mustLatch(t, env, 0, "get", "k", "--ca-cert", certFile); strings.TrimSpace(out) != "1" {
		t.Fatalf("get over TLS: %q", out)
	}
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{notPEM, filepath.Join(dir, "missing.pem")} {
		if code, _, stderr := runLatch(t, env, "get", "k", "--ca-cert", bad); code != 2 || !strings.Contains(stderr, "--ca-cert") {
			t.Fatalf("--ca-cert %s: exit %d, want 2 naming the flag; stderr: %s", bad, code, stderr)
		}
	}
	snapFile := filepath.Join(dir, "tls.snap")
	if code, _, stderr := runLatch(t, []string{"LATCH_CA_CERT=" + certFile}, "snapshot", "save", "--addr", env[0][len("LATCH_ADDR="):], "--out", snapFile); code != 0 {
		t.Fatalf("snapshot save over TLS: exit %d: %s", code, stderr)
	}
	if code, _, stderr := runLatch(t, nil, "snapshot", "save", "--addr", env[0][len("LATCH_ADDR="):], "--out", snapFile+"2"); code == 0 || !strings.Contains(stderr, "certificate") {
		t.Fatalf("snapshot save over TLS without the CA: exit %d: %s", code, stderr)
	}
}

// TestServeLimitFlags: the new limit flags reach the server.
func TestServeLimitFlags(t *testing.T) {
	s := startServer(t, t.TempDir(), []string{"LATCH_MAX_VALUE_BYTES=8", "LATCH_MAX_LOCK_WAITERS=1"},
		"--max-namespace-bytes", "3", "--max-watchers", "1", "--max-connections", "3", "--max-reply-bytes", "2000")
	st, body := do(t, s.client, "POST", s.URL+"/db/abc", "", `{"KVSet":[{"Key":"k","Value":123456789}]}`)
	wantStatus(t, "value over --max-value-bytes", st, body, 400, "value_too_long")
	// 40 reads of a 7-byte value are 40 * (55 + 1 + 7) bytes by the
	// reply's count: over 2000.
	st, body = do(t, s.client, "POST", s.URL+"/db/abc", "", `{"KVSet":[{"Key":"r","Value":1234567}]}`)
	wantStatus(t, "set", st, body, 200, "")
	st, body = do(t, s.client, "POST", s.URL+"/db/abc", "", `{"KVGet":[`+strings.TrimSuffix(strings.Repeat(`"r",`, 40), ",")+`]}`)
	wantStatus(t, "KVGet over --max-reply-bytes", st, body, 400, "reply_too_large")
	st, body = do(t, s.client, "POST", s.URL+"/db/abcd", "", `{}`)
	wantStatus(t, "namespace over --max-namespace-bytes", st, body, 400, "invalid_namespace")

	// One watch parked; probes with a 1 ms timeout get 429 once it is
	// counted (before that they just time out). A probe may take the slot
	// first and the long watch get the 429: then it is sent again.
	parkWatch := func() chan int {
		done := make(chan int, 1)
		go func() {
			req, _ := http.NewRequest("POST", s.URL+"/watch/abc", strings.NewReader(`{"ID":"w","Timeout":60}`))
			resp, err := s.client.Do(req)
			if err != nil {
				done <- 0
				return
			}
			resp.Body.Close()
			done <- resp.StatusCode
		}()
		return done
	}
	parked := parkWatch()
	deadline := time.Now().Add(hangGuard)
	for {
		if time.Now().After(deadline) {
			t.Fatal("no probe watch got 429 while a watch was parked")
		}
		select {
		case st := <-parked:
			if st != 429 {
				t.Fatalf("the parked watch returned %d", st)
			}
			parked = parkWatch()
			continue
		default:
		}
		st, body = do(t, s.client, "POST", s.URL+"/watch/abc", "", `{"ID":"probe","TimeoutMs":1}`)
		if st == 429 {
			wantStatus(t, "watch over --max-watchers", st, body, 429, "too_many_watchers")
			break
		}
		wantStatus(t, "probe watch", st, body, 200, "")
	}
	st, body = do(t, s.client, "POST", s.URL+"/db/abc", "", `{"KVSet":[{"Key":"w","Value":1}]}`)
	wantStatus(t, "set", st, body, 200, "")
	if st := <-parked; st != 200 {
		t.Fatalf("the parked watch: %d", st)
	}

	// LATCH_MAX_LOCK_WAITERS=1: with one lock waiter parked, a waiter on
	// another lock gets 429; probes with a 1 ms LockWait time out until
	// the first is counted. A probe may take the slot first and the long
	// waiter get the 429: then it is sent again.
	for _, ns := range []string{"la", "lb"} {
		st, body = do(t, s.client, "POST", s.URL+"/db/"+ns, "", `{"LockID":"L","LockDur":60}`)
		wantStatus(t, "lock "+ns, st, body, 200, "")
	}
	parkWaiter := func() chan int {
		done := make(chan int, 1)
		go func() {
			req, _ := http.NewRequest("POST", s.URL+"/db/la", strings.NewReader(`{"LockID":"L","LockDur":60,"LockWait":60}`))
			resp, err := s.client.Do(req)
			if err != nil {
				done <- 0
				return
			}
			resp.Body.Close()
			done <- resp.StatusCode
		}()
		return done
	}
	waiter := parkWaiter()
	for {
		if time.Now().After(deadline) {
			t.Fatal("no lock waiter got 429 while one was parked")
		}
		select {
		case st := <-waiter:
			if st != 429 {
				t.Fatalf("the parked lock waiter returned %d", st)
			}
			waiter = parkWaiter()
			continue
		default:
		}
		st, body = do(t, s.client, "POST", s.URL+"/db/lb", "", `{"LockID":"L","LockDur":60,"LockWaitMs":1}`)
		if st == 429 {
			wantStatus(t, "lock waiter over --max-lock-waiters", st, body, 429, "too_many_waiters")
			break
		}
		wantStatus(t, "probe lock waiter", st, body, 409, "lock_timeout")
	}
	st, body = do(t, s.client, "POST", s.URL+"/admin/locks/release", "", `{"Namespace":"la","Key":"L"}`)
	wantStatus(t, "force release", st, body, 200, "")
	if st := <-waiter; st != 200 {
		t.Fatalf("the parked lock waiter: %d", st)
	}

	// --max-connections 3: the client's pooled connections count; hold
	// three raw ones and the next is refused.
	s.tr.CloseIdleConnections()
	addr := strings.TrimPrefix(s.URL, "http://")
	request := func(c net.Conn) string {
		c.SetDeadline(time.Now().Add(hangGuard)) //nolint:errcheck
		fmt.Fprintf(c, "POST /db/abc HTTP/1.1\r\nHost: latch\r\nContent-Length: 2\r\n\r\n{}")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("raw request: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return fmt.Sprintf("%d %s", resp.StatusCode, b)
	}
	var held []net.Conn
	for len(held) < 4 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
		got := request(c)
		if len(held) <= 3 && !strings.HasPrefix(got, "200 ") {
			// A pooled connection of the client may not be counted out
			// yet; give the server a moment to see it closed.
			c.Close()
			held = held[:len(held)-1]
			if time.Now().After(deadline) {
				t.Fatalf("connection %d within the limit: %s", len(held)+1, got)
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if len(held) == 4 && (!strings.HasPrefix(got, "503 ") || !strings.Contains(got, "too_many_connections")) {
			t.Fatalf("connection over --max-connections: %s", got)
		}
	}
	s.stop()
}

// TestSecurityDocLimitsTable: every limit and timeout flag of latch serve
// is in docs/SECURITY.md's limits table with its LATCH_* variable, and
// every flag the table names exists.
func TestSecurityDocLimitsTable(t *testing.T) {
	src, err := os.ReadFile("../../docs/SECURITY.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, _ := strings.Cut(string(src), "## Limits")
	table, _, _ = strings.Cut(table, "Notes on the choices")
	_, _, help := runLatch(t, nil, "serve", "-h")
	flagRE := regexp.MustCompile(`(?m)^  -([a-z-]+)`)
	var serveFlags []string
	for _, m := range flagRE.FindAllStringSubmatch(help, -1) {
		serveFlags = append(serveFlags, m[1])
	}
	if len(serveFlags) < 10 {
		t.Fatalf("could not read the flags of latch serve -h:\n%s", help)
	}
	for _, f := range serveFlags {
		if !strings.HasPrefix(f, "max-") && !strings.HasSuffix(f, "-timeout") && f != "idempotency-ttl" {
			continue
		}
		if f == "shutdown-timeout" {
			continue // not a limit on clients
		}
		if !strings.Contains(table, "`--"+f+"`") || !strings.Contains(table, envName(f)) {
			t.Errorf("--%s (%s) is missing from the limits table of docs/SECURITY.md", f, envName(f))
		}
	}
	for _, m := range regexp.MustCompile("`--([a-z-]+)`").FindAllStringSubmatch(table, -1) {
		if !slices.Contains(serveFlags, m[1]) {
			t.Errorf("docs/SECURITY.md names --%s, which latch serve does not have", m[1])
		}
	}
}
