package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	lt "github.com/latchkv/latch/loadtest"
)

// loadtest runs the benchmark table's scenarios against a running server
// over HTTP (see lt.ParseCLI for the flags) and prints one line per
// scenario, or JSON; it exits 1 if any check was violated.
func loadtest(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return lt.Main(ctx, args, os.Stdout, os.Stderr)
}
