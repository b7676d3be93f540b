package main

import (
	"fmt"
	"os"
)

// loadtest is filled in by the load-test harness (loadtest package).
func loadtest(args []string) int {
	fmt.Fprintln(os.Stderr, "latch loadtest: not built yet")
	return 2
}
