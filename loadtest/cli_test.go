package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseCLI(t *testing.T) {
	c, err := ParseCLI([]string{"--addr", "127.0.0.1:1", "-o", "json", "--scenario", "kv64-1x1,watch-*", "--ops", "100",
		"--latency", "1ms", "--rate", "500", "--seed", "7", "--scale", "0.5", "--report", "r.html"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	o := c.Options
	if c.Output != "json" || c.Report != "r.html" || o.Ops != 100 || o.Duration != 0 || o.Latency != time.Millisecond ||
		o.Rate != 500 || o.Seed != 7 || o.Scale != 0.5 || o.Clients != 0 || len(c.Scenarios) != 6 {
		t.Errorf("parsed %+v, %d scenarios", c, len(c.Scenarios))
	}
	c, err = ParseCLI([]string{"--clients", "400"}, io.Discard)
	if err != nil || c.Options.Clients != 400 || c.Options.Duration != DefaultDuration || c.Output != "text" || len(c.Scenarios) != len(Scenarios()) {
		t.Errorf("defaults: %+v %v", c, err)
	}
	for _, bad := range [][]string{{"-o", "xml"}, {"--scenario", "nope"}, {"--clients", "0"}, {"--duration", "0s"},
		{"--rate", "-1"}, {"--scale", "0"}, {"extra"}} {
		if _, err := ParseCLI(bad, io.Discard); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if _, err := ParseCLI([]string{"-h"}, io.Discard); err != flag.ErrHelp {
		t.Errorf("-h: %v", err)
	}
}

// TestMainJSONAndReport runs `latch loadtest -o json --report` against an
// in-process server: the output is a JSON array of results that passed,
// and the report is one self-contained HTML file.
func TestMainJSONAndReport(t *testing.T) {
	url := startLatch(t, t.TempDir())
	report := filepath.Join(t.TempDir(), "report.html")
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), []string{"--addr", url, "-o", "json", "--clients", "4", "--duration", "100ms",
		"--scale", "0.01", "--scenario", "kv64-1x1,atomic-1x1000,watch-1x1,lock-handoff", "--report", report}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var out []map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("%v: %s", err, stdout.String())
	}
	if len(out) != 4 || out[0]["scenario"] != "watch-1x1" || out[0]["ok"] != true {
		t.Errorf("output %v", out)
	}
	for _, r := range out {
		if _, ok := r["latency_ms"].(map[string]any)["p99"]; !ok || r["ok"] != true {
			t.Errorf("result %v", r)
		}
	}
	html, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<svg", "kv64-1x1", "lock-handoff", "No correctness violations"} {
		if !bytes.Contains(html, []byte(want)) {
			t.Errorf("report lacks %q", want)
		}
	}
	for _, external := range []string{"<script", "src=", "href=", "@import"} {
		if bytes.Contains(html, []byte(external)) {
			t.Errorf("report is not self-contained: has %q", external)
		}
	}

	// Results come in table order, not command-line order.
	// Text output, one line per scenario; a dead server exits 1.
	stdout.Reset()
	if code := Main(context.Background(), []string{"--addr", url, "--ops", "20", "--scenario", "kv64-1x1"}, &stdout, io.Discard); code != 0 ||
		!strings.HasPrefix(stdout.String(), "64byte write KV for 1 account and 1 key: ") {
		t.Errorf("exit %d, text output %q", code, stdout.String())
	}
	if code := Main(context.Background(), []string{"--addr", "127.0.0.1:1", "--scenario", "kv64-1x1"}, io.Discard, io.Discard); code != 1 {
		t.Errorf("dead server: exit %d", code)
	}
}

// TestMainExitsOneOnViolation: a broken server makes `latch loadtest`
// exit 1 and name the violation.
func TestMainExitsOneOnViolation(t *testing.T) {
	url := serveHandler(t, brokenLockHandler())
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), []string{"--addr", url, "--clients", "4", "--duration", "100ms", "--scenario", "lock-handoff"}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stdout.String(), "VIOLATION") || !strings.Contains(stderr.String(), "FAILED") {
		t.Errorf("exit %d\nstdout %s\nstderr %s", code, stdout.String(), stderr.String())
	}
}
