package loadtest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeRedis is a RESP server on loopback with the five commands the Redis
// target sends, over a map. It checks the target's protocol code against
// a real socket; BENCHMARKS.md's numbers come from a real Redis. lose
// makes INCRBY acknowledge without adding, to show the counter check
// catches a lost write.
type fakeRedis struct {
	mu   sync.Mutex
	kv   map[string]string
	lose bool
}

func startFakeRedis(t *testing.T, lose bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRedis{kv: map[string]string{}, lose: lose}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(c)
		}
	}()
	return ln.Addr().String()
}

func (f *fakeRedis) serve(c net.Conn) {
	defer c.Close()
	r, w := bufio.NewReader(c), bufio.NewWriter(c)
	for {
		args, err := readCommand(r)
		if err != nil {
			return
		}
		f.mu.Lock()
		switch strings.ToUpper(args[0]) {
		case "PING":
			w.WriteString("+PONG\r\n")
		case "SET":
			f.kv[args[1]] = args[2]
			w.WriteString("+OK\r\n")
		case "GET":
			writeBulk(w, f.kv[args[1]], f.has(args[1]))
		case "INCRBY":
			n, _ := strconv.ParseInt(f.kv[args[1]], 10, 64)
			d, _ := strconv.ParseInt(args[2], 10, 64)
			if !f.lose {
				f.kv[args[1]] = strconv.FormatInt(n+d, 10)
			}
			fmt.Fprintf(w, ":%d\r\n", n+d)
		case "MGET":
			fmt.Fprintf(w, "*%d\r\n", len(args)-1)
			for _, k := range args[1:] {
				writeBulk(w, f.kv[k], f.has(k))
			}
		default:
			w.WriteString("-ERR unknown command\r\n")
		}
		f.mu.Unlock()
		if w.Flush() != nil {
			return
		}
	}
}

func (f *fakeRedis) has(k string) bool { _, ok := f.kv[k]; return ok }

func writeBulk(w *bufio.Writer, v string, ok bool) {
	if !ok {
		w.WriteString("$-1\r\n")
		return
	}
	fmt.Fprintf(w, "$%d\r\n%s\r\n", len(v), v)
}

func readCommand(r *bufio.Reader) ([]string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(line, "*") {
		return nil, fmt.Errorf("not an array: %q", line)
	}
	n, err := strconv.Atoi(strings.TrimSpace(line[1:]))
	if err != nil || n < 1 {
		return nil, fmt.Errorf("bad array %q", line)
	}
	args := make([]string, n)
	for i := range args {
		hdr, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		size, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(hdr, "$")))
		if err != nil {
			return nil, fmt.Errorf("bad bulk header %q", hdr)
		}
		buf := make([]byte, size+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		args[i] = string(buf[:size])
	}
	return args, nil
}

func TestRedisTargetProtocol(t *testing.T) {
	addr := startFakeRedis(t, false)
	c := (&RedisTarget{Addr: addr}).Conn()
	ctx := context.Background()
	if v, ver, err := c.GetKV(ctx, "ns", "k"); err != nil || v != nil || ver != 0 {
		t.Fatalf("missing key: %q %d %v", v, ver, err)
	}
	if err := c.SetKV(ctx, "ns", "k", []byte("va\r\nlue")); err != nil {
		t.Fatal(err)
	}
	if v, ver, err := c.GetKV(ctx, "ns", "k"); err != nil || string(v) != "va\r\nlue" || ver != 1 {
		t.Fatalf("GET after SET: %q %d %v", v, ver, err)
	}
	for i := int64(1); i <= 3; i++ {
		if n, err := c.Add(ctx, "ns", "c", 5); err != nil || n != 5*i {
			t.Fatalf("INCRBY %d: %d %v", i, n, err)
		}
	}
	got, err := c.Counters(ctx, "ns", []string{"c", "none"})
	if err != nil || len(got) != 2 || got[0] != 15 || got[1] != 0 {
		t.Fatalf("MGET: %v %v", got, err)
	}
	if _, err := c.(*redisConn).do(ctx, []byte("NOPE")); ErrorClass(err) != "redis_error" {
		t.Fatalf("error reply: %v (class %q)", err, ErrorClass(err))
	}
	if _, err := c.Lock(ctx, "ns", "l", time.Second, time.Second); err == nil {
		t.Fatal("Lock on redis should be unsupported")
	}
}

func TestRedisTargetScenarios(t *testing.T) {
	target := &RedisTarget{Addr: startFakeRedis(t, false)}
	for _, name := range []string{"kv64-1x1000", "atomic-1000x1000", "lock-handoff", "watch-1x1"} {
		s, ok := Lookup(name)
		if !ok {
			t.Fatalf("no scenario %s", name)
		}
		res := s.Run(context.Background(), target, Options{Clients: 8, Duration: 100 * time.Millisecond, Seed: 1})
		if strings.HasPrefix(name, "lock") || strings.HasPrefix(name, "watch") {
			if res.Skipped == "" {
				t.Errorf("%s: ran on redis, want skipped", name)
			}
			continue
		}
		if res.Ops == 0 || res.ErrorCount() > 0 || len(res.Violations) > 0 {
			t.Errorf("%s: %d ops, errors %v, violations %v", name, res.Ops, res.Errors, res.Violations)
		}
	}

	// A server that acknowledges adds it drops must be caught.
	lossy := &RedisTarget{Addr: startFakeRedis(t, true)}
	s, _ := Lookup("atomic-1x1")
	res := s.Run(context.Background(), lossy, Options{Clients: 4, Duration: 50 * time.Millisecond})
	if len(res.Violations) == 0 {
		t.Error("counter check did not catch acknowledged adds that were dropped")
	}
}
