package loadtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// RedisTarget measures a Redis server with the same scenarios, for the
// comparison in BENCHMARKS.md. It speaks RESP over one TCP connection
// per client (no pipelining, as latch's clients send one request at a
// time), with a client of its own so the harness adds no dependency.
//
// Equivalents: SetKV is SET ns:key, Add is INCRBY, Counters is MGET.
// Redis has no lock that waits in line (SET NX polls, it does not queue)
// and no blocking watch on a key's version, so those rows are skipped
// with the reason. Durability is whatever the server was started with;
// BENCHMARKS.md uses appendonly yes, appendfsync always.
type RedisTarget struct{ Addr string }

// Name is "redis".
func (r *RedisTarget) Name() string { return "redis" }

// Supports reports what Redis has an equivalent for.
func (r *RedisTarget) Supports(f Feature) error {
	switch f {
	case FeatureKV, FeatureCounter:
		return nil
	case FeatureLock, FeatureFencing:
		return errors.New("redis has no lock that waits first come, first served (SET NX + polling is not equivalent)")
	default:
		return errors.New("redis has no blocking watch on a key's version")
	}
}

// Conn returns a connection dialed on first use.
func (r *RedisTarget) Conn() Conn { return &redisConn{addr: r.Addr} }

type redisConn struct {
	addr string
	c    net.Conn
	rd   *bufio.Reader
	out  []byte
}

func (c *redisConn) do(ctx context.Context, args ...[]byte) (any, error) {
	if c.c == nil {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", c.addr)
		if err != nil {
			return nil, err
		}
		c.c, c.rd = conn, bufio.NewReaderSize(conn, 16<<10)
	}
	if dl, ok := ctx.Deadline(); ok {
		c.c.SetDeadline(dl) //nolint:errcheck
	} else {
		c.c.SetDeadline(time.Time{}) //nolint:errcheck
	}
	b := append(c.out[:0], '*')
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, "\r\n"...)
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, "\r\n"...)
		b = append(b, a...)
		b = append(b, "\r\n"...)
	}
	c.out = b
	if _, err := c.c.Write(b); err != nil {
		c.drop()
		return nil, err
	}
	v, err := c.read()
	if err != nil {
		c.drop()
	}
	return v, err
}

func (c *redisConn) drop() {
	if c.c != nil {
		c.c.Close()
		c.c = nil
	}
}

// read parses one RESP reply: simple string, error, integer, bulk string
// (nil when missing) or array of those.
func (c *redisConn) read() (any, error) {
	line, err := c.rd.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 {
		return nil, badReply(line, "short RESP line")
	}
	body := string(line[1 : len(line)-2])
	switch line[0] {
	case '+':
		return body, nil
	case '-':
		return nil, &APIError{Status: 0, Code: "redis_error", Message: body}
	case ':':
		return strconv.ParseInt(body, 10, 64)
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil {
			return nil, badReply(line, "bad bulk length")
		}
		if n < 0 {
			return nil, nil
		}
		buf := make([]byte, n+2)
		if _, err := ioReadFull(c.rd, buf); err != nil {
			return nil, err
		}
		return buf[:n], nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil {
			return nil, badReply(line, "bad array length")
		}
		items := make([]any, max(n, 0))
		for i := range items {
			if items[i], err = c.read(); err != nil {
				return nil, err
			}
		}
		return items, nil
	}
	return nil, badReply(line, "unknown RESP type")
}

func ioReadFull(r *bufio.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func redisKey(ns, key string) []byte { return []byte(ns + ":" + key) }

func (c *redisConn) SetKV(ctx context.Context, ns, key string, value []byte) error {
	v, err := c.do(ctx, []byte("SET"), redisKey(ns, key), value)
	if err == nil && v != "OK" {
		err = badReply([]byte(fmt.Sprint(v)), "SET did not reply OK")
	}
	return err
}

func (c *redisConn) GetKV(ctx context.Context, ns, key string) ([]byte, uint64, error) {
	v, err := c.do(ctx, []byte("GET"), redisKey(ns, key))
	if err != nil || v == nil {
		return nil, 0, err
	}
	b, ok := v.([]byte)
	if !ok {
		return nil, 0, badReply([]byte(fmt.Sprint(v)), "GET did not reply a string")
	}
	return b, 1, nil // Redis keeps no versions: 1 means "exists"
}

func (c *redisConn) Add(ctx context.Context, ns, key string, delta int64) (int64, error) {
	v, err := c.do(ctx, []byte("INCRBY"), redisKey(ns, key), strconv.AppendInt(nil, delta, 10))
	if err != nil {
		return 0, err
	}
	n, ok := v.(int64)
	if !ok {
		return 0, badReply([]byte(fmt.Sprint(v)), "INCRBY did not reply an integer")
	}
	return n, nil
}

func (c *redisConn) Counters(ctx context.Context, ns string, keys []string) ([]int64, error) {
	args := [][]byte{[]byte("MGET")}
	for _, k := range keys {
		args = append(args, redisKey(ns, k))
	}
	v, err := c.do(ctx, args...)
	if err != nil {
		return nil, err
	}
	items, ok := v.([]any)
	if !ok || len(items) != len(keys) {
		return nil, badReply([]byte(fmt.Sprint(v)), "MGET reply")
	}
	out := make([]int64, len(keys))
	for i, it := range items {
		if it == nil {
			continue
		}
		b, _ := it.([]byte)
		if out[i], err = strconv.ParseInt(string(b), 10, 64); err != nil {
			return nil, badReply(b, "counter is not an integer")
		}
	}
	return out, nil
}

func (c *redisConn) Lock(context.Context, string, string, time.Duration, time.Duration) (uint64, error) {
	return 0, errors.ErrUnsupported
}

func (c *redisConn) Unlock(context.Context, string, string, uint64) error {
	return errors.ErrUnsupported
}

func (c *redisConn) Watch(context.Context, string, string, uint64, time.Duration) (uint64, error) {
	return 0, errors.ErrUnsupported
}
