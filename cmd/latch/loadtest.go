package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	lt "github.com/latchkv/latch/loadtest"
)

// loadtest runs load scenarios against a running server over HTTP and
// prints one line per scenario; it exits 1 if any check was violated.
func loadtest(args []string) int {
	fs := flag.NewFlagSet("latch loadtest", flag.ContinueOnError)
	addr := fs.String("addr", "http://127.0.0.1:7070", "server URL (a bare host:port means http://)")
	scenario := fs.String("scenario", "all", "scenario name, a comma-separated list, or all")
	clients := fs.Int("clients", 0, "concurrent clients (0: each scenario's default, 400 or 50 for lock-handoff)")
	duration := fs.Duration("duration", lt.DefaultDuration, "how long each scenario runs")
	seed := fs.Uint64("seed", 0, "random seed for key choice (0: random)")
	list := fs.Bool("list", false, "list the scenarios and exit")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: latch loadtest [flags]\n\nRuns load scenarios against a latch server over HTTP. Flags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	all := lt.Scenarios()
	if *list {
		for _, s := range all {
			fmt.Printf("%-18s %s (%d clients)\n", s.Name, s.Title, s.DefaultClients)
		}
		return 0
	}
	var run []lt.Scenario
	if *scenario == "all" {
		run = all
	} else {
		for _, name := range strings.Split(*scenario, ",") {
			s, ok := lt.Lookup(strings.TrimSpace(name))
			if !ok {
				fmt.Fprintf(os.Stderr, "latch loadtest: unknown scenario %q (latch loadtest --list shows them)\n", name)
				return 2
			}
			run = append(run, s)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	conns := *clients
	for _, s := range run {
		conns = max(conns, s.DefaultClients)
	}
	c := lt.NewClient(*addr, conns)
	defer c.Close()
	code := 0
	for _, s := range run {
		if ctx.Err() != nil {
			break
		}
		fmt.Fprintf(os.Stderr, "running %s for %s...\n", s.Name, *duration)
		res := s.Run(ctx, c, lt.Options{Clients: *clients, Duration: *duration, Seed: *seed})
		fmt.Println(res.String())
		if len(res.Violations) > 0 {
			code = 1
		}
	}
	return code
}
