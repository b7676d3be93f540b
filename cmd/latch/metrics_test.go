package main

// Process tests of the observability surface of `latch serve`: health
// endpoints across recovery and drain, /metrics and /version of the real
// binary, pprof only on --debug-addr, and JSON logs when stderr is a pipe.

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// httpGet does a GET with the hang guard and returns status and body.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: hangGuard}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// status is the "Status" (health) or "Code" (error) field of a JSON body.
func status(t *testing.T, body string) string {
	t.Helper()
	var v struct{ Status, Code string }
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	return v.Status + v.Code
}

// metricValue is the value of one series in a /metrics text, or -1.
func metricValue(text, series string) float64 {
	for _, l := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(l, series+" "); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

func TestServeMetricsVersionAndPprof(t *testing.T) {
	s := startServer(t, t.TempDir(), nil, "--debug-addr", "127.0.0.1:0")
	line, ok := s.waitLine("debug_addr=", 1, hangGuard)
	if !ok {
		t.Fatalf("no debug server line:\n%s", s.Stderr())
	}
	debugURL := "http://" + regexp.MustCompile(`debug_addr=(\S+)`).FindStringSubmatch(line)[1]

	for i := 0; i < 3; i++ {
		s.mustDB("obs", map[string]any{"KVSet": []any{map[string]any{"Key": "k", "Value": i}}}, 200)
	}
	code, text := httpGet(t, s.URL+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	if v := metricValue(text, `latch_http_requests_total{code="200",route="/db/{env}"}`); v != 3 {
		t.Errorf("requests to /db/{env} with 200: %v, want 3", v)
	}
	if v := metricValue(text, "latch_wal_commit_records_sum"); v != 3 {
		t.Errorf("records committed: %v, want 3", v)
	}
	if v := metricValue(text, "latch_wal_fsync_duration_seconds_count"); v < 1 {
		t.Errorf("fsyncs observed: %v, want at least 1", v)
	}
	if v := metricValue(text, "go_goroutines"); v < 1 {
		t.Errorf("go_goroutines: %v", v)
	}
	if strings.Contains(text, "obs") {
		t.Errorf("/metrics mentions the namespace")
	}

	code, body := httpGet(t, s.URL+"/version")
	var v struct {
		Version, GoVersion, Commit string
		Modified                   bool
	}
	if err := json.Unmarshal([]byte(body), &v); code != 200 || err != nil || v.Version == "" || !strings.HasPrefix(v.GoVersion, "go") {
		t.Errorf("/version: %d %s (%v)", code, body, err)
	}

	// pprof: never on the API address, only on --debug-addr.
	if code, body := httpGet(t, s.URL+"/debug/pprof/"); code != 404 {
		t.Errorf("/debug/pprof/ on the API address: %d %.200s, want 404", code, body)
	}
	if code, body := httpGet(t, debugURL+"/debug/pprof/"); code != 200 || !strings.Contains(body, "goroutine") {
		t.Errorf("/debug/pprof/ on the debug address: %d %.200s", code, body)
	}
	if code, _ := httpGet(t, debugURL+"/debug/pprof/goroutine?debug=1"); code != 200 {
		t.Errorf("goroutine profile on the debug address: %d", code)
	}
	s.stop()
}

// TestServeReadyzDrain: after SIGTERM with --drain-delay the server stays
// alive and serving, /readyz says 503 draining; a second SIGTERM ends the
// delay and the server exits cleanly.
func TestServeReadyzDrain(t *testing.T) {
	s := startServer(t, t.TempDir(), nil, "--drain-delay", "10m")
	if code, body := httpGet(t, s.URL+"/readyz"); code != 200 || status(t, body) != "ready" {
		t.Fatalf("/readyz before SIGTERM: %d %s", code, body)
	}
	s.Term()
	if _, ok := s.waitLine("msg=\"shutting down\"", 1, hangGuard); !ok {
		t.Fatalf("no shutting down line:\n%s", s.Stderr())
	}
	code, body := httpGet(t, s.URL+"/readyz")
	if code != 503 || status(t, body) != "draining" {
		t.Errorf("/readyz while draining: %d %s, want 503 draining", code, body)
	}
	if code, body := httpGet(t, s.URL+"/livez"); code != 200 {
		t.Errorf("/livez while draining: %d %s", code, body)
	}
	s.mustDB("drain", map[string]any{"KVSet": []any{map[string]any{"Key": "k", "Value": 1}}}, 200)
	s.Term()
	if st := s.Wait(hangGuard); st.ExitCode() != 0 {
		t.Errorf("exit after the second SIGTERM: %v\n%s", st, s.tail(10))
	}
}

// TestServeReadyzRecovering holds recovery (a test-only gate file) and
// checks that the server already answers: alive, not ready, API refused
// with 503 recovering; then lets it finish.
func TestServeReadyzRecovering(t *testing.T) {
	dir := t.TempDir()
	gate := filepath.Join(t.TempDir(), "go")
	p := startProc(t, "latch serve (gated)", []string{"LATCH_TEST_RECOVERY_GATE=" + gate},
		"serve", "--addr", "127.0.0.1:0", "--data-dir", dir, "--shards", "2")
	line, ok := p.waitLine("health checks answer meanwhile", 1, hangGuard)
	if !ok {
		t.Fatalf("no early listening line:\n%s", p.Stderr())
	}
	url := "http://" + regexp.MustCompile(`addr=(\S+)`).FindStringSubmatch(line)[1]
	if _, ok := p.waitLine("LATCH_TEST_RECOVERY_GATE", 1, hangGuard); !ok {
		t.Fatalf("the gate was not announced:\n%s", p.Stderr())
	}
	if code, body := httpGet(t, url+"/readyz"); code != 503 || status(t, body) != "recovering" {
		t.Errorf("/readyz while recovering: %d %s, want 503 recovering", code, body)
	}
	if code, body := httpGet(t, url+"/livez"); code != 200 {
		t.Errorf("/livez while recovering: %d %s", code, body)
	}
	resp, err := http.Post(url+"/db/x", "application/json", strings.NewReader(`{"KVGet":["k"]}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || status(t, string(b)) != "recovering" {
		t.Errorf("POST /db/x while recovering: %d %s, want 503 recovering", resp.StatusCode, b)
	}
	if p.count("msg=listening") != 0 {
		t.Errorf("the API-ready line came before recovery finished")
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, ok := p.waitLine("msg=listening", 1, hangGuard); !ok {
		t.Fatalf("never became ready:\n%s", p.Stderr())
	}
	if code, body := httpGet(t, url+"/readyz"); code != 200 || status(t, body) != "ready" {
		t.Errorf("/readyz after recovery: %d %s", code, body)
	}
}

// TestServeJSONLogs: with stderr a pipe, --log-format auto writes one JSON
// object per line; the listening line carries the address.
func TestServeJSONLogs(t *testing.T) {
	p := startProc(t, "latch serve (json)", []string{"LATCH_LOG_FORMAT=auto"},
		"serve", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--shards", "2")
	line, ok := p.waitLine(`"msg":"listening"`, 1, hangGuard)
	if !ok {
		t.Fatalf("no JSON listening line:\n%s", p.Stderr())
	}
	var rec struct{ Level, Msg, Addr string }
	if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Level != "INFO" || !strings.HasPrefix(rec.Addr, "127.0.0.1:") {
		t.Errorf("listening line %q: %+v %v", line, rec, err)
	}
	p.Term()
	if st := p.Wait(hangGuard); st.ExitCode() != 0 {
		t.Errorf("exit: %v", st)
	}
	for _, l := range strings.Split(p.Stderr(), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil || m["msg"] == nil || m["time"] == nil {
			t.Errorf("not a JSON log record: %q", l)
		}
	}

	// Bad values are refused with the flag's name.
	for _, args := range [][]string{{"--log-format", "xml"}, {"--log-level", "loud"}} {
		code, _, stderr := runLatch(t, nil, append([]string{"serve", "--data-dir", t.TempDir()}, args...)...)
		if code != 2 || !strings.Contains(stderr, args[0]) {
			t.Errorf("latch serve %v: exit %d, stderr %q; want 2 naming the flag", args, code, stderr)
		}
	}
}

// TestServeLogLevel: --log-level warn keeps warnings and hides every
// info line (the listening line included, so the test finds the server by
// a port it chose).
func TestServeLogLevel(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	p := startProc(t, "latch serve (warn)", []string{"LATCH_TEST_FAULT=fsync:1000000000"},
		"serve", "--addr", addr, "--data-dir", t.TempDir(), "--log-level", "warn")
	if _, ok := p.waitLine("fault injection is on", 1, hangGuard); !ok {
		t.Fatalf("no warning:\n%s", p.Stderr())
	}
	c := &http.Client{Timeout: hangGuard}
	deadline := time.Now().Add(hangGuard)
	for {
		resp, err := c.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) || p.Exited() {
			t.Fatalf("the server never became ready on %s (%v):\n%s", addr, err, p.Stderr())
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.Term()
	if st := p.Wait(hangGuard); st.ExitCode() != 0 {
		t.Errorf("exit: %v", st)
	}
	if n := p.count("level=INFO"); n != 0 {
		t.Errorf("--log-level warn wrote %d info lines:\n%s", n, p.Stderr())
	}
}
