package httpapi_test

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/latchkv/latch/internal/testheap"
)

// TestParkedWaiterHoldsNoBody parks 100 lock waiters whose bodies are 64
// KiB (a small request and whitespace, which JSON allows) over raw
// HTTP/1.1 connections, and checks what each costs the heap: its
// connection, request and engine entry, not the body it sent. A body is
// read into a pooled buffer, and a waiter may park for minutes; the
// buffer must go back before the request waits.
func TestParkedWaiterHoldsNoBody(t *testing.T) {
	const n, pad = 100, 64 << 10
	ts := newTestServer(t)
	ok(t, ts.post(t, "/db/parked", `{"LockID":"one","LockDur":600}`))
	body := `{"LockID":"one","LockDur":30,"LockWait":300}` + strings.Repeat(" ", pad)
	req := fmt.Sprintf("POST /db/parked HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	addr := strings.TrimPrefix(ts.url, "http://")
	before := testheap.Live()
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := c.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
	}
	ts.waitLockWaiters(t, "parked", "one", n)
	perWaiter := (int64(testheap.Live()) - int64(before)) / n
	t.Logf("%d bytes of heap a parked waiter, with a %d-byte body", perWaiter, len(body))
	if perWaiter > pad/2 {
		t.Fatalf("a parked waiter holds %d bytes of heap with a %d-byte body; at most %d expected: the body's buffer must not be held while the request waits", perWaiter, len(body), pad/2)
	}
}
