// Command wrkbench is the wrk harness of the performance rows: it starts
// each server (the bare net/http handler of loadtest/barehttp, the latch
// binary under test and optionally a base latch binary) on loopback with
// a fresh data directory, loads it, reads its CPU time and RSS from /proc,
// and stops it; rounds interleave the servers so that drift in a shared
// machine's load hits all of them alike. It prints the median of the
// rounds for each server and the ratios between them. `make bench-wrk`
// runs it; see BENCHMARKS.md.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

type config struct {
	wrk, scripts, tmp, profileDir, goTool   string
	duration                                time.Duration
	rounds, conns, handoffClients, watchers int
	fanoutRounds, waiters, keys             int
	keyNamespaces, fillBatch                int
	rows                                    []row
	targets                                 []target // the bare handler (if any rows need it) first
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	cfg := &config{}
	fs := flag.NewFlagSet("wrkbench", flag.ContinueOnError)
	latch := fs.String("latch", "bin/latch", "the latch binary under test")
	base := fs.String("base", "", "a second latch binary to compare with, interleaved (empty: none)")
	bare := fs.String("bare", "bin/barehttp", "the bare handler binary (loadtest/barehttp)")
	rows := fs.String("rows", "all", "rows to run, comma-separated: "+strings.Join(rowNames(), ",")+", or all")
	fs.StringVar(&cfg.wrk, "wrk", "wrk", "the wrk binary")
	fs.StringVar(&cfg.scripts, "scripts", "loadtest/wrk", "directory of the Lua scripts")
	fs.StringVar(&cfg.tmp, "tmp", os.TempDir(), "where the servers' data directories go (the disk whose fsync is measured)")
	fs.StringVar(&cfg.profileDir, "profile-dir", "", "if set: after each wrk row, one more run of the latch under test with --cpu-profile into this directory, and pprof's top 25")
	fs.StringVar(&cfg.goTool, "go", "go", "the go command, for go tool pprof")
	fs.DurationVar(&cfg.duration, "duration", 5*time.Second, "length of each wrk run (whole seconds)")
	fs.IntVar(&cfg.rounds, "rounds", 3, "interleaved rounds; every figure is the median of the rounds")
	fs.IntVar(&cfg.conns, "connections", 400, "wrk connections of the KV, lock and counter rows")
	fs.IntVar(&cfg.handoffClients, "handoff-clients", 50, "wrk connections of the lock hand-off row")
	fs.IntVar(&cfg.watchers, "watchers", 10000, "watchers of the fan-out rows")
	fs.IntVar(&cfg.fanoutRounds, "fanout-rounds", 3, "timed writes per fan-out run (after one untimed), median taken")
	fs.IntVar(&cfg.waiters, "waiters", 10000, "parked lock waiters of the idle-waiters row")
	fs.IntVar(&cfg.keys, "keys", 1_000_000, "keys of the memory-per-key row")
	fs.IntVar(&cfg.keyNamespaces, "key-namespaces", 10, "namespaces the memory-per-key row spreads its keys over")
	fs.IntVar(&cfg.fillBatch, "fill-batch", 100, "keys per request when the memory-per-key row writes them")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var err error
	if cfg.rows, err = selectRows(cfg, *rows); err != nil {
		fmt.Fprintln(os.Stderr, "wrkbench:", err)
		return 2
	}
	if cfg.rounds < 1 || cfg.keyNamespaces < 1 || cfg.fillBatch < 1 || cfg.keys < cfg.keyNamespaces {
		fmt.Fprintln(os.Stderr, "wrkbench: --rounds, --key-namespaces and --fill-batch must be at least 1, --keys at least --key-namespaces")
		return 2
	}
	cfg.targets = []target{{name: "latch", bin: *latch}}
	if *base != "" {
		cfg.targets = append(cfg.targets, target{name: "base", bin: *base})
	}
	if slices.ContainsFunc(cfg.rows, func(r row) bool { return r.bare }) {
		cfg.targets = append([]target{{name: "bare", bin: *bare, bare: true}}, cfg.targets...)
	}
	for _, t := range cfg.targets {
		if _, err := exec.LookPath(t.bin); err != nil {
			fmt.Fprintf(os.Stderr, "wrkbench: %s binary: %v\n", t.name, err)
			return 2
		}
	}
	if slices.ContainsFunc(cfg.rows, func(r row) bool { return r.script != "" }) {
		if _, err := exec.LookPath(cfg.wrk); err != nil {
			fmt.Fprintf(os.Stderr, "wrkbench: %v (Debian: apt-get install wrk; `make bench-wrk` does)\n", err)
			return 2
		}
	}
	fmt.Printf("wrkbench: %d rounds, wrk runs of %s, data in %s, %s\n", cfg.rounds, wrkDuration(cfg.duration), cfg.tmp, time.Now().Format(time.DateTime))
	failed := false
	for _, r := range cfg.rows {
		if !runRow(cfg, r) {
			failed = true
		}
	}
	if failed {
		return 1
	}
	return 0
}

// runRow runs r's rounds, prints its table (and profile), and reports
// whether every run succeeded.
func runRow(cfg *config, r row) bool {
	fmt.Printf("\n== %s: %s\n", r.name, r.title)
	runs := map[string][]metrics{} // target -> one per round (nil: that run failed)
	ok := true
	unsupported := map[string]bool{}
	for round := 1; round <= cfg.rounds; round++ {
		for _, t := range cfg.targets {
			if t.bare && !r.bare || unsupported[t.name] {
				continue
			}
			m, err := r.run(cfg, t, nil)
			if errors.Is(err, errNoH2C) {
				fmt.Printf("   %s: %v\n", t.name, err)
				unsupported[t.name] = true
				runs[t.name] = append(runs[t.name], nil)
				ok = false
				continue
			}
			if err != nil {
				fmt.Printf("   round %d %s: FAILED: %v\n", round, t.name, err)
				ok = false
			} else if m["non2xx"] > 0 || m["socket_errors"] > 0 {
				fmt.Printf("   round %d %s: %.0f non-2xx replies, %.0f socket errors\n", round, t.name, m["non2xx"], m["socket_errors"])
				ok = false
			}
			runs[t.name] = append(runs[t.name], m)
		}
	}
	printTable(cfg, r, runs)
	if cfg.profileDir != "" && r.script != "" {
		profile(cfg, r)
	}
	return ok
}

// profile runs the latch under test once more with --cpu-profile and
// prints the profile's top entries.
func profile(cfg *config, r row) {
	t := cfg.targets[slices.IndexFunc(cfg.targets, func(t target) bool { return t.name == "latch" })]
	if err := os.MkdirAll(cfg.profileDir, 0o755); err != nil {
		fmt.Println("   profile:", err)
		return
	}
	file, err := filepath.Abs(filepath.Join(cfg.profileDir, r.name+".pprof"))
	if err != nil {
		fmt.Println("   profile:", err)
		return
	}
	if _, err := r.run(cfg, t, []string{"--cpu-profile", file}); err != nil {
		fmt.Println("   profile run FAILED:", err)
		return
	}
	out, err := exec.Command(cfg.goTool, "tool", "pprof", "-top", "-nodecount=25", t.bin, file).CombinedOutput()
	fmt.Printf("   CPU profile of latch (one extra run), %s:\n", file)
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		fmt.Println("   " + line)
	}
	if err != nil {
		fmt.Println("   go tool pprof:", err)
	}
}
