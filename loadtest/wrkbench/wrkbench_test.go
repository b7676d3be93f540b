package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

var (
	binsOnce          sync.Once
	binsDir           string
	latchBin, bareBin string
	binsErr           error
)

// buildBins builds latch and the bare handler once for the package's tests.
func buildBins(t *testing.T) (latch, bare string) {
	t.Helper()
	binsOnce.Do(func() {
		if binsDir, binsErr = os.MkdirTemp("", "wrkbench-bins-"); binsErr != nil {
			return
		}
		latchBin, bareBin = filepath.Join(binsDir, "latch"), filepath.Join(binsDir, "barehttp")
		for bin, pkg := range map[string]string{latchBin: "../../cmd/latch", bareBin: "../barehttp"} {
			if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
				binsErr = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
				return
			}
		}
	})
	if binsErr != nil {
		t.Fatal(binsErr)
	}
	return latchBin, bareBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binsDir != "" {
		os.RemoveAll(binsDir)
	}
	os.Exit(code)
}

func smallConfig(t *testing.T) *config {
	return &config{
		wrk: "wrk", scripts: "../wrk", tmp: t.TempDir(), duration: time.Second, rounds: 1,
		conns: 20, handoffClients: 5, watchers: 50, fanoutRounds: 1, waiters: 50,
		keys: 1000, keyNamespaces: 10, fillBatch: 100,
	}
}

// TestWrkScriptsAcceptedByLatch runs every wrk row's script for a second
// against the real latch binary: every request the scripts make must get
// a 2xx reply (a wrong field, a wrong handle in an unlock, two requests
// for one lock at once would be 4xx), and the lock scripts must see grants
// (their unlocks are built from the replies).
func TestWrkScriptsAcceptedByLatch(t *testing.T) {
	if _, err := exec.LookPath("wrk"); err != nil {
		t.Skip("wrk is not installed (Debian: apt-get install wrk; `make wrk`)")
	}
	latch, bare := buildBins(t)
	cfg := smallConfig(t)
	for _, r := range rows(cfg) {
		if r.script == "" {
			continue
		}
		for _, tg := range []target{{name: "latch", bin: latch}, {name: "bare", bin: bare, bare: true}} {
			if tg.bare && !r.bare {
				continue
			}
			m, err := r.run(cfg, tg, nil)
			if err != nil {
				t.Errorf("%s on %s: %v", r.name, tg.name, err)
				continue
			}
			if m["requests"] == 0 || m["non2xx"] != 0 || m["socket_errors"] != 0 {
				t.Errorf("%s on %s: %v requests, %v non-2xx, %v socket errors; want some, none, none", r.name, tg.name, m["requests"], m["non2xx"], m["socket_errors"])
			}
			if (r.name == "lock" || r.name == "handoff") && tg.name == "latch" && (m["grants"] == 0 || m["requests"] < 2*m["grants"]-float64(cfg.conns)) {
				t.Errorf("%s: %v grants in %v requests: want grants, each followed by its unlock", r.name, m["grants"], m["requests"])
			}
		}
	}
}

// TestGoRowsOnLatch runs the rows the driver loads itself (watch fan-out
// over HTTP/1.1, memory per key, idle waiters) small, against the real
// binary: each must complete its checks (every watcher saw the write,
// every write and waiter was accepted) and read an RSS.
func TestGoRowsOnLatch(t *testing.T) {
	latch, _ := buildBins(t)
	cfg := smallConfig(t)
	for _, name := range []string{"fanout-h1", "memory-per-key", "idle-waiters"} {
		rs, err := selectRows(cfg, name)
		if err != nil {
			t.Fatal(err)
		}
		m, err := rs[0].run(cfg, target{name: "latch", bin: latch}, nil)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if m["rss"] <= 0 {
			t.Errorf("%s: RSS %v MiB", name, m["rss"])
		}
	}
}

func TestParseWrk(t *testing.T) {
	got, err := parseWrk("Running 1s test\nWRKBENCH requests=10 duration_us=2000000 non2xx=1 connect_errors=0 read_errors=2 write_errors=0 timeouts=1 p50_us=500 p99_us=1500 grants=4\n")
	if err != nil {
		t.Fatal(err)
	}
	want := wrkResult{Requests: 10, Non2xx: 1, SocketErrors: 3, Grants: 4, Duration: 2 * time.Second, P50: 500 * time.Microsecond, P99: 1500 * time.Microsecond}
	if got != want {
		t.Errorf("parseWrk = %+v, want %+v", got, want)
	}
	if _, err := parseWrk("wrk: no such script\n"); err == nil {
		t.Error("parseWrk of output without a WRKBENCH line: no error")
	}
}
