package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/latchkv/latch/engine"
)

const recoverUsage = `Usage:
  latch recover --data-dir DIR
      for a stopped server whose log is damaged or ends early: set aside (never
      delete) what the log cannot use, raise the handle floor so no lock handle
      is ever issued twice, and leave a directory latch serve starts from.
      Writes after the log's new end are lost; see docs/OPERATIONS.md.
`

func recoverCmd(args []string) int {
	fs := flag.NewFlagSet("latch recover", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), recoverUsage)
		fs.PrintDefaults()
	}
	dataDir := fs.String("data-dir", "", "data directory of the stopped server")
	if err := parseWithEnv(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "latch recover:", err)
		return 2
	}
	if *dataDir == "" || fs.NArg() > 0 {
		fmt.Fprint(os.Stderr, "latch recover: give --data-dir DIR and nothing else\n\n"+recoverUsage)
		return 2
	}
	r, err := engine.Recover(*dataDir, time.Now())
	if err != nil {
		fmt.Fprintln(os.Stderr, "latch recover:", err)
		return 1
	}
	printRecovered(*dataDir, r)
	return 0
}

func printRecovered(dir string, r engine.Recovered) {
	fmt.Printf("handle floor  %d: every lock handle from now on is above it\n", r.HandleFloor)
	if r.Snapshot != "" {
		fmt.Printf("snapshot      %s (records up to %d)\n", r.Snapshot, r.SnapshotCut)
	} else {
		fmt.Printf("snapshot      none\n")
	}
	if r.Last >= r.First {
		fmt.Printf("log           records %d to %d\n", r.First, r.Last)
	} else {
		from := "empty"
		if r.Snapshot != "" {
			from = "from the snapshot"
		}
		fmt.Printf("log           empty: the server starts %s, its next record is %d\n", from, r.First)
	}
	end := max(r.Last, r.SnapshotCut)
	if len(r.SetAside) > 0 {
		fmt.Printf("set aside     %s into %s\n", strings.Join(r.SetAside, ", "), r.Aside)
		if r.Cut != "" {
			fmt.Printf("              %s cut at byte %d, its last valid record (its full copy is set aside)\n", r.Cut, r.CutAt)
		}
		for _, w := range r.Why {
			fmt.Printf("              because %s\n", w)
		}
	}
	switch {
	case r.EndedEarly:
		fmt.Printf("lost          every record from %d on: the log had reached a segment starting at record %d, which is missing; "+
			"writes acknowledged and locks granted from then on are gone\n", end+1, r.Marked)
	case r.Lost:
		fmt.Printf("lost          every record from %d on: writes acknowledged and locks granted from then on are gone\n", end+1)
	case len(r.SetAside) > 0:
		fmt.Printf("lost          nothing: the snapshot holds every record set aside\n")
	default:
		fmt.Printf("lost          nothing found missing; if files were removed by hand, any record after %d is gone\n", end)
	}
	fmt.Printf("next          latch serve --data-dir %s\n", dir)
}
