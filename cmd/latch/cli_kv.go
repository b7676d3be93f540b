package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/latchkv/latch/client"
)

// kvLine is a key's state as latch get -o json and latch watch print it.
type kvLine struct {
	Key     string
	Value   json.RawMessage
	Version uint64
}

func getCmd(args []string) int {
	cf := newClientFlags("get")
	pos, err := cf.positional(args, 1)
	if err != nil {
		return usageError("get", err)
	}
	c, err := cf.client()
	if err != nil {
		return usageError("get", err)
	}
	ctx, stop := signalContext()
	defer stop()
	kv, err := c.Get(ctx, pos[0])
	if err != nil {
		return fail("get", err)
	}
	if cf.output == "json" {
		printJSON(os.Stdout, kvLine(kv))
	} else {
		fmt.Printf("%s\n", kv.Value)
	}
	return exitOK
}

// parseValue reads VALUE as JSON if it parses, else as a string.
func parseValue(s string, forceString bool) json.RawMessage {
	if !forceString && json.Valid([]byte(s)) {
		return json.RawMessage(s)
	}
	b, _ := json.Marshal(s) // a string always marshals
	return b
}

func setCmd(args []string) int {
	cf := newClientFlags("set")
	asString := cf.fs.Bool("string", false, "store VALUE as a JSON string even if it parses as JSON")
	pos, err := cf.positional(args, 2)
	if err != nil {
		return usageError("set", err)
	}
	return writeKey("set", cf, client.KVSet{Key: pos[0], Value: parseValue(pos[1], *asString)})
}

func delCmd(args []string) int {
	cf := newClientFlags("del")
	pos, err := cf.positional(args, 1)
	if err != nil {
		return usageError("del", err)
	}
	return writeKey("del", cf, client.KVSet{Key: pos[0], Delete: true})
}

// writeKey applies one KVSet and reads the key back in the same request,
// to print the version it got. Text output prints nothing.
func writeKey(verb string, cf *clientFlags, set client.KVSet) int {
	c, err := cf.client()
	if err != nil {
		return usageError(verb, err)
	}
	ctx, stop := signalContext()
	defer stop()
	r, err := c.Do(ctx, cf.ns, client.Request{KVSet: []client.KVSet{set}, KVGet: []string{set.Key}})
	var version uint64
	switch {
	case errors.Is(err, client.ErrReplyLost):
		// It applied; only the version the reply carried is unknown.
		fmt.Fprintf(os.Stderr, "latch %s: applied, but the reply was lost and retried; the new version is unknown\n", verb)
	case err != nil:
		return fail(verb, err)
	case len(r.KV) == 1:
		version = r.KV[0].Version
	}
	if cf.output == "json" {
		if set.Delete {
			printJSON(os.Stdout, struct {
				Key     string
				Deleted bool
			}{set.Key, true})
		} else {
			printJSON(os.Stdout, struct {
				Key     string
				Version uint64
			}{set.Key, version})
		}
	}
	return exitOK
}

func incrCmd(args []string) int {
	cf := newClientFlags("incr")
	by := cf.fs.Int64("by", 1, "amount to add (negative to subtract)")
	pos, err := cf.positional(args, 1)
	if err != nil {
		return usageError("incr", err)
	}
	c, err := cf.client()
	if err != nil {
		return usageError("incr", err)
	}
	ctx, stop := signalContext()
	defer stop()
	v, err := c.Add(ctx, pos[0], *by)
	if err != nil {
		return fail("incr", err)
	}
	if cf.output == "json" {
		printJSON(os.Stdout, client.Counter{Key: pos[0], Value: v})
	} else {
		fmt.Println(v)
	}
	return exitOK
}

func seqCmd(args []string) int {
	cf := newClientFlags("seq")
	count := cf.fs.Uint64("count", 1, "how many ids to take")
	pos, err := cf.positional(args, 1)
	if err != nil {
		return usageError("seq", err)
	}
	if *count == 0 {
		return usageError("seq", errors.New("--count must be at least 1"))
	}
	c, err := cf.client()
	if err != nil {
		return usageError("seq", err)
	}
	ctx, stop := signalContext()
	defer stop()
	first, last, err := c.NextSeq(ctx, pos[0], *count)
	if err != nil {
		return fail("seq", err)
	}
	switch {
	case cf.output == "json":
		printJSON(os.Stdout, client.SeqRange{Key: pos[0], First: first, Last: last})
	case first == last:
		fmt.Println(first)
	default:
		fmt.Println(strconv.FormatUint(first, 10), strconv.FormatUint(last, 10))
	}
	return exitOK
}

// watchCmd prints one JSON line per change of the key, from its state
// when the watch starts (or from --version), until Ctrl-C (exit 0).
func watchCmd(args []string) int {
	cf := newClientFlags("watch")
	from := cf.fs.Int64("version", -1, "report changes from this version on (0: from \"missing\", so an existing key is printed at once); default: the key's version when the watch starts")
	pos, err := cf.positional(args, 1)
	if err != nil {
		return usageError("watch", err)
	}
	c, err := cf.client()
	if err != nil {
		return usageError("watch", err)
	}
	ctx, stop := signalContext()
	defer stop()
	version := uint64(*from)
	if *from < 0 {
		cur, err := c.Get(ctx, pos[0])
		if err != nil && !errors.Is(err, client.ErrNotFound) {
			return fail("watch", err)
		}
		version = cur.Version
	}
	w := c.Changes(ctx, pos[0], version)
	for kv := range w.C() {
		printJSON(os.Stdout, kvLine(kv))
	}
	if ctx.Err() != nil {
		return exitOK // Ctrl-C
	}
	return fail("watch", w.Err())
}
