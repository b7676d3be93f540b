// Command latch is the latch server and its tools in one binary.
//
//	latch serve [flags]      run the server (see latch serve -h)
//	latch loadtest [flags]   load-test a running server over HTTP
//	latch snapshot ...       save, restore and inspect snapshots
//	latch recover            start again from a damaged or shortened log
//	latch version
//	latch lock|get|set|del|watch|incr|seq|locks   client verbs (cli_*.go)
package main

import (
	"fmt"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `latch: a single-node lock, KV and counter server.

Usage:
  latch serve [flags]       run the server (latch serve -h for flags)
  latch loadtest [flags]    load-test a running server (latch loadtest -h)
  latch snapshot save|restore|inspect
                            back up, restore and examine snapshots
  latch recover --data-dir DIR
                            when the server refuses a log that is damaged or
                            ends early: set aside what it cannot use, never
                            reissuing a lock handle (latch recover -h)
  latch version             print the version
  latch lock|get|set|del|watch|incr|seq|locks ...
                            client verbs: see latch help

Every flag can also be set from the environment: --data-dir is LATCH_DATA_DIR.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var code int
	switch os.Args[1] {
	case "serve":
		code = serve(os.Args[2:])
	case "loadtest":
		code = loadtest(os.Args[2:])
	case "snapshot":
		code = snapshotCmd(os.Args[2:])
	case "recover":
		code = recoverCmd(os.Args[2:])
	case "version", "--version":
		fmt.Println("latch", version)
	case "help", "-h", "--help":
		fmt.Print(usage)
		fmt.Print(clientUsage)
	default:
		if isClientVerb(os.Args[1]) {
			code = clientCmd(os.Args[1], os.Args[2:])
			break
		}
		fmt.Fprintf(os.Stderr, "latch: unknown command %q\n\n%s", os.Args[1], usage)
		code = 2
	}
	os.Exit(code)
}
