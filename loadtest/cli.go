package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// CLI is the parsed command line of `latch loadtest`.
type CLI struct {
	Addr     string
	Scenario string
	Output   string // text, json (one array at the end) or jsonl (one object per line)
	Report   string // HTML report file, "" for none
	Target   string // latch, redis or etcd
	Progress bool   // force the progress line on stderr
	List     bool
	Wait     time.Duration // how long to wait for the server to answer at all
	Options  Options
	// Scenarios are those Scenario names, resolved.
	Scenarios []Scenario
}

// ParseCLI parses the flags of `latch loadtest`. It returns flag.ErrHelp
// after printing usage for -h.
func ParseCLI(args []string, stderr io.Writer) (*CLI, error) {
	c := &CLI{}
	fs := flag.NewFlagSet("latch loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Addr, "addr", "http://127.0.0.1:7070", "server URL (a bare host:port means http://; for --target redis, host:port)")
	fs.StringVar(&c.Target, "target", "latch", "what --addr is: latch, redis (RESP over TCP) or etcd (its v3 JSON gateway), for comparisons")
	fs.StringVar(&c.Scenario, "scenario", "all", "scenario `name`s, comma-separated (a trailing * matches a prefix: kv64-*), or all")
	clients := fs.Int("clients", 400, "concurrent clients; when not given each scenario uses its own default: 400, but 50 for lock-handoff\n(the watch rows use them as writers, the idle-waiters row ignores them)")
	fs.DurationVar(&c.Options.Duration, "duration", DefaultDuration, "how long each scenario runs (default 5s, or no limit when --ops is given)")
	fs.Int64Var(&c.Options.Ops, "ops", 0, "stop each scenario after `N` operations in total (0: no limit)")
	fs.DurationVar(&c.Options.Latency, "latency", 0, "simulated network round trip: every request sleeps half before and half after, as the original did (e.g. 1ms, 10ms)")
	fs.Float64Var(&c.Options.Rate, "rate", 0, "open-loop pacing: start `req/s` operations per second across all clients, latency counted from each one's\nscheduled start (corrects for coordinated omission); 0: closed loop, as fast as replies come")
	fs.Uint64Var(&c.Options.Seed, "seed", 0, "random seed for key choice (0: random)")
	fs.Float64Var(&c.Options.Scale, "scale", 1, "multiply the number of watchers and idle waiters of the watch and idle-waiters rows")
	fs.DurationVar(&c.Options.Hold, "hold", 0, "how long lock scenarios hold each lock before releasing it")
	fs.StringVar(&c.Output, "o", "text", "output: text (one line per scenario), json (one JSON array at the end) or jsonl (one JSON object per scenario, as each ends)")
	fs.StringVar(&c.Report, "report", "", "also write a self-contained HTML report with charts to `FILE`")
	fs.BoolVar(&c.Progress, "progress", false, "show a live progress line on stderr even when it is not a terminal")
	fs.DurationVar(&c.Wait, "wait", 0, "wait up to this long for the server to start answering (for scripts that have just started it)")
	fs.BoolVar(&c.List, "list", false, "list the scenarios and exit")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: latch loadtest [flags]\n\nRuns the benchmark table's scenarios against a latch server over HTTP, checking\ncorrectness as it goes; exits 1 if a check was violated. Flags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["clients"] {
		if *clients < 1 {
			return nil, fmt.Errorf("--clients %d: want at least 1", *clients)
		}
		c.Options.Clients = *clients
	}
	if c.Wait < 0 {
		return nil, fmt.Errorf("--wait %s: want 0 or more", c.Wait)
	}
	if c.Options.Ops > 0 && !set["duration"] {
		c.Options.Duration = 0
	}
	switch {
	case c.Options.Duration < 0 || (c.Options.Duration == 0 && c.Options.Ops <= 0):
		return nil, fmt.Errorf("--duration %s: want a positive duration, or --ops", c.Options.Duration)
	case c.Options.Ops < 0:
		return nil, fmt.Errorf("--ops %d: want 0 or more", c.Options.Ops)
	case c.Options.Rate < 0:
		return nil, fmt.Errorf("--rate %g: want 0 or more", c.Options.Rate)
	case c.Options.Latency < 0:
		return nil, fmt.Errorf("--latency %s: want 0 or more", c.Options.Latency)
	case c.Options.Scale <= 0:
		return nil, fmt.Errorf("--scale %g: want more than 0", c.Options.Scale)
	}
	switch c.Output {
	case "text", "json", "jsonl":
	default:
		return nil, fmt.Errorf("-o %q: want text, json or jsonl", c.Output)
	}
	var err error
	if c.Scenarios, err = Select(c.Scenario); err != nil {
		return nil, fmt.Errorf("--scenario: %v (latch loadtest --list shows them)", err)
	}
	return c, nil
}

// Main runs `latch loadtest` with args, writing results to stdout and
// messages to stderr, and returns the exit code: 0, 1 if a check was
// violated or a scenario failed outright, 2 for a bad command line.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, err := ParseCLI(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "latch loadtest: %v\n", err)
		return 2
	}
	if c.List {
		for _, s := range c.Scenarios {
			fmt.Fprintf(stdout, "%-20s %s\n", s.Name, s.Title)
		}
		return 0
	}
	if c.Progress || isTerminal(stderr) {
		c.Options.Progress = stderr
	}
	conns := 400
	if c.Options.Clients > 0 {
		conns = c.Options.Clients
	}
	var target Target
	var ping func() error
	switch c.Target {
	case "latch":
		lc := NewClient(c.Addr, conns)
		defer lc.Close()
		target = lc
		ping = func() error {
			_, err := lc.Post(ctx, "/db/loadtest-ping", []byte("{}"), nil)
			return err
		}
	case "redis":
		rt := &RedisTarget{Addr: strings.TrimPrefix(c.Addr, "redis://")}
		target = rt
		ping = func() error { _, err := rt.Conn().(*redisConn).do(ctx, []byte("PING")); return err }
	case "etcd":
		et := NewEtcdTarget(c.Addr, conns)
		target = et
		ping = func() error { _, _, err := et.Conn().GetKV(ctx, "loadtest", "ping"); return err }
	default:
		fmt.Fprintf(stderr, "latch loadtest: --target %q: want latch, redis or etcd\n", c.Target)
		return 2
	}
	// Fail fast, and clearly, when there is no server.
	deadline := time.Now().Add(c.Wait)
	for {
		err := ping()
		var apiErr *APIError
		if err == nil || errors.As(err, &apiErr) {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			fmt.Fprintf(stderr, "latch loadtest: cannot reach %s: %v\n", c.Addr, err)
			return 1
		}
		time.Sleep(100 * time.Millisecond)
	}
	info := ReportInfo{Target: target.Name() + " at " + c.Addr, Options: strings.Join(args, " "), Started: time.Now()}
	var results []*Result
	failed := 0
	for _, s := range c.Scenarios {
		if ctx.Err() != nil {
			break
		}
		if c.Options.Progress == nil && c.Output == "text" {
			fmt.Fprintf(stderr, "running %s...\n", s.Name)
		}
		res := s.Run(ctx, target, c.Options)
		if ctx.Err() != nil && res.Ops == 0 {
			break // interrupted before it measured anything
		}
		results = append(results, res)
		if res.Failed() {
			failed++
		}
		switch c.Output {
		case "text":
			fmt.Fprintln(stdout, res.String())
		case "jsonl":
			b, _ := json.Marshal(res)
			fmt.Fprintf(stdout, "%s\n", b)
		}
	}
	if c.Output == "json" {
		b, _ := json.MarshalIndent(results, "", "  ")
		fmt.Fprintf(stdout, "%s\n", b)
	}
	if c.Report != "" {
		if err := writeReportFile(c.Report, info, results); err != nil {
			fmt.Fprintf(stderr, "latch loadtest: %v\n", err)
			return 1
		}
		fmt.Fprintf(stderr, "report written to %s\n", c.Report)
	}
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "latch loadtest: interrupted")
		return 1
	}
	if failed > 0 {
		fmt.Fprintf(stderr, "latch loadtest: %d of %d scenarios FAILED their checks:\n", failed, len(results))
		for _, r := range results {
			if r.Failed() {
				why := strings.Join(r.Violations, "; ")
				if why == "" {
					why = "no operation succeeded: errors " + r.errorList()
				}
				fmt.Fprintf(stderr, "  %s: %s\n", r.Scenario, why)
			}
		}
		return 1
	}
	return 0
}

func writeReportFile(path string, info ReportInfo, results []*Result) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := WriteReport(f, info, results); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
