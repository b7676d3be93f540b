package loadtest

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestScenariosSmoke runs every scenario briefly against an in-process
// server and checks behaviour only: no errors, no violations (counters
// add up, handles increase, one holder at a time). Never timing.
func TestScenariosSmoke(t *testing.T) {
	url := startLatch(t, t.TempDir())
	c := NewClient(url, 16)
	defer c.Close()
	for _, s := range Scenarios() {
		t.Run(s.Name, func(t *testing.T) {
			clients := 8
			if s.DefaultClients < 100 {
				clients = 12 // the hand-off row: enough waiters to queue
			}
			res := s.Run(context.Background(), c, Options{Clients: clients, Duration: 150 * time.Millisecond, Seed: 1})
			t.Log(res.String())
			if res.Ops == 0 {
				t.Errorf("no operation succeeded")
			}
			if n := res.ErrorCount(); n > 0 {
				t.Errorf("%d errors: %v", n, res.Errors)
			}
			for _, v := range res.Violations {
				t.Error(v)
			}
			if res.Scenario != s.Name || res.Title == "" || res.Clients != clients {
				t.Errorf("result labels: %q %q %d clients", res.Scenario, res.Title, res.Clients)
			}
		})
	}
}

// TestLockChecksCatchDoubleGrant points the lock scenario at a broken
// server that grants every request at once, and at one whose handles go
// backwards: the checks must report both.
func TestLockChecksCatchDoubleGrant(t *testing.T) {
	var next atomic.Int64
	for _, tc := range []struct {
		name   string
		handle func() int64
		want   string
	}{
		{"double grant", func() int64 { return next.Add(1) }, "while client"},
		{"handle reused", func() int64 { return 7 }, "after handle"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := serveHandler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, `{"Lock":%d,"Till":1,"TillMs":1000}`, tc.handle())
			}))
			c := NewClient(url, 8)
			defer c.Close()
			s, _ := Lookup("lock-handoff")
			res := s.Run(context.Background(), c, Options{Clients: 8, Duration: 100 * time.Millisecond, Hold: time.Millisecond})
			if !strings.Contains(strings.Join(res.Violations, "\n"), tc.want) {
				t.Errorf("violations %q, want one containing %q", res.Violations, tc.want)
			}
		})
	}
}
