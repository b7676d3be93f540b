package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"time"
)

// *Client is the latch Target: every Conn call is one POST, built by
// appending to a buffer the conn reuses, and replies on the success path
// are scanned for the one number needed instead of decoded.

// Name is "latch".
func (c *Client) Name() string { return "latch" }

// Supports: latch does everything the scenarios ask.
func (c *Client) Supports(Feature) error { return nil }

// Conn returns a latch connection with its own buffers.
func (c *Client) Conn() Conn {
	return &latchConn{c: c, body: make([]byte, 0, 256), buf: make([]byte, 0, 256)}
}

type latchConn struct {
	c      *Client
	body   []byte // request, reused
	buf    []byte // reply, reused
	lastNS string
	dbPath string // "/db/" + lastNS
	wPath  string // "/watch/" + lastNS
}

func (l *latchConn) paths(ns string) {
	if ns != l.lastNS || l.dbPath == "" {
		l.lastNS, l.dbPath, l.wPath = ns, "/db/"+ns, "/watch/"+ns
	}
}

func (l *latchConn) post(ctx context.Context, path string) ([]byte, error) {
	out, err := l.c.Post(ctx, path, l.body, l.buf[:0])
	l.buf = out
	return out, err
}

func (l *latchConn) SetKV(ctx context.Context, ns, key string, value []byte) error {
	l.paths(ns)
	b := append(l.body[:0], `{"KVSet":[{"Key":`...)
	b = appendJSONString(b, key)
	b = append(b, `,"Value":`...)
	b = appendJSONBytes(b, value)
	l.body = append(b, `}]}`...)
	_, err := l.post(ctx, l.dbPath)
	return err
}

func (l *latchConn) GetKV(ctx context.Context, ns, key string) ([]byte, uint64, error) {
	l.paths(ns)
	b := append(l.body[:0], `{"KVGet":[`...)
	b = appendJSONString(b, key)
	l.body = append(b, `]}`...)
	out, err := l.post(ctx, l.dbPath)
	if err != nil {
		return nil, 0, err
	}
	var resp struct {
		KV []struct {
			Value   json.RawMessage
			Version uint64
		}
	}
	if err := json.Unmarshal(out, &resp); err != nil || len(resp.KV) != 1 {
		return nil, 0, badReply(out, "want one KV")
	}
	kv := resp.KV[0]
	if kv.Version == 0 {
		return nil, 0, nil
	}
	var s string
	if json.Unmarshal(kv.Value, &s) == nil {
		return []byte(s), kv.Version, nil
	}
	return []byte(kv.Value), kv.Version, nil
}

func (l *latchConn) Add(ctx context.Context, ns, key string, delta int64) (int64, error) {
	l.paths(ns)
	b := append(l.body[:0], `{"Atomic":[{"Key":`...)
	b = appendJSONString(b, key)
	b = append(b, `,"Add":`...)
	b = strconv.AppendInt(b, delta, 10)
	l.body = append(b, `}]}`...)
	out, err := l.post(ctx, l.dbPath)
	if err != nil {
		return 0, err
	}
	v, ok := intField(out, `"Value":`, false)
	if !ok {
		return 0, badReply(out, "no counter value")
	}
	return v, nil
}

func (l *latchConn) Counters(ctx context.Context, ns string, keys []string) ([]int64, error) {
	l.paths(ns)
	vals := make([]int64, 0, len(keys))
	for len(keys) > 0 {
		chunk := keys[:min(len(keys), 500)] // under the server's 1000 ops
		keys = keys[len(chunk):]
		b := append(l.body[:0], `{"Atomic":[`...)
		for i, k := range chunk {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"Key":`...)
			b = appendJSONString(b, k)
			b = append(b, '}')
		}
		l.body = append(b, `]}`...)
		out, err := l.post(ctx, l.dbPath)
		if err != nil {
			return nil, err
		}
		var resp struct{ Atomic []struct{ Value int64 } }
		if err := json.Unmarshal(out, &resp); err != nil || len(resp.Atomic) != len(chunk) {
			return nil, badReply(out, "want "+strconv.Itoa(len(chunk))+" counters")
		}
		for _, a := range resp.Atomic {
			vals = append(vals, a.Value)
		}
	}
	return vals, nil
}

func (l *latchConn) Lock(ctx context.Context, ns, name string, hold, wait time.Duration) (uint64, error) {
	l.paths(ns)
	b := append(l.body[:0], `{"LockID":`...)
	b = appendJSONString(b, name)
	b = append(b, `,"LockDurMs":`...)
	b = strconv.AppendInt(b, max(hold.Milliseconds(), 1), 10)
	if wait > 0 {
		b = append(b, `,"LockWaitMs":`...)
		b = strconv.AppendInt(b, max(wait.Milliseconds(), 1), 10)
	}
	l.body = append(b, '}')
	out, err := l.post(ctx, l.dbPath)
	if err != nil {
		return 0, err
	}
	h, ok := uintField(out, `"Lock":`)
	if !ok {
		return 0, badReply(out, "lock reply without a handle")
	}
	return h, nil
}

func (l *latchConn) Unlock(ctx context.Context, ns, name string, handle uint64) error {
	l.paths(ns)
	b := append(l.body[:0], `{"UnlockID":`...)
	b = appendJSONString(b, name)
	b = append(b, `,"Unlock":`...)
	b = strconv.AppendUint(b, handle, 10)
	l.body = append(b, '}')
	_, err := l.post(ctx, l.dbPath)
	return err
}

func (l *latchConn) Watch(ctx context.Context, ns, key string, version uint64, timeout time.Duration) (uint64, error) {
	l.paths(ns)
	b := append(l.body[:0], `{"ID":`...)
	b = appendJSONString(b, key)
	b = append(b, `,"Version":`...)
	b = strconv.AppendUint(b, version, 10)
	b = append(b, `,"TimeoutMs":`...)
	b = strconv.AppendInt(b, max(timeout.Milliseconds(), 1), 10)
	l.body = append(b, '}')
	out, err := l.post(ctx, l.wPath)
	if err != nil {
		return 0, err
	}
	// The reply is {"Key","Value","Version"} in that order: the last
	// "Version": is the field even if the value contains the text.
	v, ok := intField(out, `"Version":`, true)
	if !ok || v < 0 {
		return 0, badReply(out, "watch reply without a version")
	}
	return uint64(v), nil
}

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendJSONBytes appends v as a JSON string.
func appendJSONBytes(b []byte, v []byte) []byte {
	for _, c := range v {
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			q, _ := json.Marshal(string(v))
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, v...)
	return append(b, '"')
}

// uintField finds "name":<digits> in a JSON reply without decoding it all.
func uintField(b []byte, name string) (uint64, bool) {
	i := bytes.Index(b, []byte(name))
	if i < 0 {
		return 0, false
	}
	b = b[i+len(name):]
	j := 0
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		j++
	}
	v, err := strconv.ParseUint(string(b[:j]), 10, 64)
	return v, err == nil
}

// intField finds "name":<integer>, the first or the last occurrence.
func intField(b []byte, name string, last bool) (int64, bool) {
	var i int
	if last {
		i = bytes.LastIndex(b, []byte(name))
	} else {
		i = bytes.Index(b, []byte(name))
	}
	if i < 0 {
		return 0, false
	}
	b = b[i+len(name):]
	for len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	j := 0
	if j < len(b) && b[j] == '-' {
		j++
	}
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		j++
	}
	v, err := strconv.ParseInt(string(b[:j]), 10, 64)
	return v, err == nil
}
