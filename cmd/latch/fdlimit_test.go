package main

import (
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/latchkv/latch/httpapi"
)

// TestCapListener: the --debug-addr listener holds at most max
// connections; one more is closed at once, and a closed one frees its
// place.
func TestCapListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &capListener{Listener: inner, max: 2}
	defer ln.Close()
	accepted := make(chan net.Conn, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	dial()
	dial()
	first, second := <-accepted, <-accepted
	defer second.Close()
	third := dial()
	third.SetReadDeadline(time.Now().Add(hangGuard)) //nolint:errcheck
	if _, err := third.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("a third connection over max 2 was not closed: %v", err)
	}
	first.Close()
	first.Close() // a second Close must not free another place
	dial()
	fourth := <-accepted
	defer fourth.Close()
	if n := ln.open.Load(); n != 2 {
		t.Fatalf("%d connections counted open, want 2", n)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestFDReserveDocumented: the docs give the fds kept back from
// connections, and the over-limit connections held for a 503, as the code
// has them.
func TestFDReserveDocumented(t *testing.T) {
	for _, doc := range []string{"OPERATIONS.md", "SECURITY.md", "API.md"} {
		b, err := os.ReadFile("../../docs/" + doc)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("less %d", fdReserve); !strings.Contains(string(b), want) {
			t.Errorf("docs/%s does not say %q", doc, want)
		}
		if want := fmt.Sprintf("%d connections over", httpapi.RefusalSlots); doc == "OPERATIONS.md" && !strings.Contains(string(b), want) {
			t.Errorf("docs/%s does not say %q", doc, want)
		}
	}
}
