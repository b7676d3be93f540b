package main

// The client verbs of the latch binary: lock, get, set, del, watch, incr,
// seq and locks. They talk to a running server with the Go client.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/latchkv/latch/client"
)

// Exit codes of the client verbs; `latch help` and the README list them.
const (
	exitOK          = 0
	exitError       = 1
	exitUsage       = 2
	exitLockTimeout = 3 // the lock was not acquired (lock_timeout)
	exitNotFound    = 4 // latch get of a missing key
	exitLockLost    = 5 // the lock was lost while latch lock ran its command
)

const clientUsage = `
Client verbs (talk to a running server):
  latch lock NAME [--ttl 30s] [--wait 1m] [--kill-after 10s] [--] CMD [ARGS...]
                            run CMD while holding lock NAME (kept alive; the
                            handle is exported as LATCH_FENCING_TOKEN)
  latch get KEY             print a key's value (JSON)
  latch set KEY VALUE [--string]
                            write a key; VALUE is JSON if it parses, else a string
  latch del KEY             delete a key
  latch watch KEY [--version N]
                            print one JSON line per change of KEY until Ctrl-C
                            (changes after version N; default: the current one)
  latch incr KEY [--by N]   add N (default 1) to a counter, print the new value
  latch seq KEY [--count N] take N (default 1) ids from a sequence, print them
  latch locks [--ns NAME]   list held locks: handle, until when, waiters (admin)

Every client verb takes:
  --addr URL     server (env LATCH_ADDR; default http://127.0.0.1:7070; a bare
                 host:port gets http://, so the LATCH_ADDR of latch serve works)
  --ns NAME      namespace (env LATCH_NAMESPACE; default "default")
  --token T      bearer token (env LATCH_TOKEN)
  --ca-cert FILE PEM certificate(s) to trust for an https:// server, besides
                 the system's roots, e.g. the server's own self-signed
                 certificate (env LATCH_CA_CERT)
  -o text|json   output (default text, whether or not stdout is a terminal, so
                 scripts see what you see; use -o json for one JSON object per
                 result). latch watch always prints JSON lines.
Flags may come before or after the positional arguments; "--" ends them.

Exit codes of the client verbs:
  0  ok
  1  error (server unreachable, refused request, ...)
  2  usage error
  3  lock not acquired (lock_timeout)
  4  key not found (latch get of a missing key)
  5  lock lost while latch lock ran its command
  otherwise latch lock exits with its command's code (128+N if a signal N ended it)
`

// clientFlags are the settings every client verb shares.
type clientFlags struct {
	fs     *flag.FlagSet
	caCert string
	addr   string
	ns     string
	token  string
	output string
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

func newClientFlags(verb string) *clientFlags {
	cf := &clientFlags{fs: flag.NewFlagSet("latch "+verb, flag.ContinueOnError)}
	cf.fs.StringVar(&cf.addr, "addr", envOr("LATCH_ADDR", client.DefaultAddr), "server URL (env LATCH_ADDR)")
	cf.fs.StringVar(&cf.ns, "ns", envOr("LATCH_NAMESPACE", client.DefaultNamespace), "namespace (env LATCH_NAMESPACE)")
	cf.fs.StringVar(&cf.token, "token", os.Getenv("LATCH_TOKEN"), "bearer token (env LATCH_TOKEN)")
	cf.fs.StringVar(&cf.caCert, "ca-cert", os.Getenv("LATCH_CA_CERT"), "PEM file of certificates to trust for https://, besides the system roots (env LATCH_CA_CERT)")
	cf.fs.StringVar(&cf.output, "o", "text", "output: text or json")
	cf.fs.Usage = func() {
		fmt.Fprintf(cf.fs.Output(), "Usage: see latch help. Flags of latch %s:\n", verb)
		cf.fs.PrintDefaults()
	}
	return cf
}

// parse parses flags placed anywhere among the first n positional
// arguments. Flag parsing stops after the n-th positional or at "--";
// what follows is returned as rest.
func (cf *clientFlags) parse(args []string, n int) (pos, rest []string, err error) {
	for {
		before := len(args)
		if err := cf.fs.Parse(args); err != nil {
			return nil, nil, err
		}
		left := cf.fs.Args()
		if used := before - len(left); used > 0 && args[used-1] == "--" {
			return pos, left, nil
		}
		if len(left) == 0 || len(pos) == n {
			return pos, left, nil
		}
		pos = append(pos, left[0])
		args = left[1:]
	}
}

// positional parses args for a verb that takes exactly want positional
// arguments ("--" may precede one that starts with a dash).
func (cf *clientFlags) positional(args []string, want int) ([]string, error) {
	pos, rest, err := cf.parse(args, want)
	if err != nil {
		return nil, err
	}
	pos = append(pos, rest...)
	if len(pos) != want {
		return nil, fmt.Errorf("want %d argument(s), got %d: %q (see latch help)", want, len(pos), pos)
	}
	if cf.output != "text" && cf.output != "json" {
		return nil, fmt.Errorf("-o %q: want text or json", cf.output)
	}
	return pos, nil
}

func (cf *clientFlags) client() (*client.Client, error) {
	opts := []client.Option{client.WithNamespace(cf.ns), client.WithToken(cf.token)}
	if cf.caCert != "" {
		cfg, err := trustCA(cf.caCert)
		if err != nil {
			return nil, err
		}
		opts = append(opts, client.WithTLSConfig(cfg))
	}
	return client.New(cf.addr, opts...)
}

// trustCA is a TLS client configuration that trusts the system's roots
// and the certificates in the PEM file path (--ca-cert).
func trustCA(path string) (*tls.Config, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--ca-cert: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--ca-cert %s: no PEM certificate in it", path)
	}
	return &tls.Config{RootCAs: pool}, nil
}

// usageError prints err for a bad command line and returns exit code 2
// (0 for -h).
func usageError(verb string, err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	fmt.Fprintf(os.Stderr, "latch %s: %v\n", verb, err)
	return exitUsage
}

// fail prints err and returns the exit code its kind maps to.
func fail(verb string, err error) int {
	fmt.Fprintf(os.Stderr, "latch %s: %s\n", verb, strings.TrimPrefix(err.Error(), "latch: "))
	switch {
	case errors.Is(err, client.ErrLockTimeout):
		return exitLockTimeout
	case errors.Is(err, client.ErrNotFound):
		return exitNotFound
	}
	return exitError
}

// printJSON writes v as one line of JSON.
func printJSON(w io.Writer, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only our own plain structs reach here
	}
	fmt.Fprintf(w, "%s\n", b)
}

// signalContext is canceled by SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
}

// clientCmd runs one client verb.
func clientCmd(verb string, args []string) int {
	switch verb {
	case "lock":
		return lockCmd(args)
	case "get":
		return getCmd(args)
	case "set":
		return setCmd(args)
	case "del":
		return delCmd(args)
	case "watch":
		return watchCmd(args)
	case "incr":
		return incrCmd(args)
	case "seq":
		return seqCmd(args)
	case "locks":
		return locksCmd(args)
	}
	fmt.Fprintf(os.Stderr, "latch: unknown client verb %q\n", verb)
	return exitUsage
}

// isClientVerb reports whether main should hand verb to clientCmd.
func isClientVerb(verb string) bool {
	return strings.Contains(" lock get set del watch incr seq locks ", " "+verb+" ")
}
