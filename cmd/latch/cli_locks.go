package main

import (
	"flag"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/latchkv/latch/client"
)

// locksCmd lists held locks through GET /admin/locks. --ns filters by
// namespace; without it every namespace is listed (LATCH_NAMESPACE is not
// applied here, since this is an admin view).
func locksCmd(args []string) int {
	cf := newClientFlags("locks")
	if _, err := cf.positional(args, 0); err != nil {
		return usageError("locks", err)
	}
	ns := ""
	cf.fs.Visit(func(f *flag.Flag) {
		if f.Name == "ns" {
			ns = cf.ns
		}
	})
	c, err := cf.client()
	if err != nil {
		return usageError("locks", err)
	}
	ctx, stop := signalContext()
	defer stop()
	locks, err := c.AdminLocks(ctx, ns)
	if err != nil {
		return fail("locks", err)
	}
	if cf.output == "json" {
		if locks == nil {
			locks = []client.HeldLock{}
		}
		printJSON(os.Stdout, struct{ Locks []client.HeldLock }{locks})
		return exitOK
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tLOCK\tHANDLE\tUNTIL\tWAITERS")
	now := time.Now()
	for _, l := range locks {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s (in %s)\t%d\n", l.Namespace, l.Key, l.Handle,
			l.Till().Local().Format(time.RFC3339), l.Till().Sub(now).Round(time.Second), l.Waiters)
	}
	tw.Flush()
	return exitOK
}
