package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/latchkv/latch/engine"
	"github.com/latchkv/latch/httpapi"
)

// h2cClient speaks only HTTP/2 without TLS, by prior knowledge, as gRPC
// and etcd clients do: no HTTP/1.1 fallback, so a server without h2c fails
// every request.
func h2cClient(t testing.TB) *http.Client {
	tr := &http.Transport{DisableCompression: true}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// postH2 sends one POST over c and checks that it went over HTTP/2.
func postH2(ctx context.Context, c *http.Client, url, body string) (reply, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return reply{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	if resp.ProtoMajor != 2 {
		return reply{}, &protoError{resp.Proto}
	}
	return reply{Status: resp.StatusCode, Header: resp.Header, Raw: raw}, nil
}

type protoError struct{ proto string }

func (e *protoError) Error() string { return "the reply came over " + e.proto + ", not HTTP/2" }

func mustH2(t testing.TB, c *http.Client, url, body string) reply {
	t.Helper()
	r, err := postH2(context.Background(), c, url, body)
	if err != nil {
		t.Fatalf("POST %s over h2c: %v", url, err)
	}
	return r
}

// startH2 sends a POST over c in a goroutine, like testServer.start.
func startH2(c *http.Client, url, body string) *async {
	ctx, cancel := context.WithCancel(context.Background())
	a := &async{done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(a.done)
		a.r, a.err = postH2(ctx, c, url, body)
	}()
	return a
}

// TestH2CServes: the API listener answers HTTP/2 by prior knowledge
// (h2c) beside HTTP/1.1 on the same port, and a watch is woken over it.
func TestH2CServes(t *testing.T) {
	ts, _ := newSecServer(t, engine.Config{}, httpapi.DefaultLimits(), httpapi.DefaultHTTPConfig(), nil)
	c := h2cClient(t)
	ok(t, mustH2(t, c, ts.url+"/db/h", `{"KVSet":[{"Key":"k","Value":1}]}`))
	w := startH2(c, ts.url+"/watch/h", `{"ID":"k","Version":1,"Timeout":60}`)
	waitUntil(t, "the watch parked", func() bool { return ts.eng.KeyWatchers("h", "k") == 1 })
	ok(t, mustH2(t, c, ts.url+"/db/h", `{"KVSet":[{"Key":"k","Value":2}]}`))
	rawIs(t, w.wait(t), `{"Key":"k","Value":2,"Version":2}`)
	// HTTP/1.1 still works on the same port.
	d := ok(t, ts.post(t, "/db/h", `{"KVGet":["k"]}`))
	if d.KV[0].Version != 2 {
		t.Fatalf("HTTP/1.1 read: %+v", d)
	}
}

// TestH2COff: with H2C off, a prior-knowledge HTTP/2 client is not served.
func TestH2COff(t *testing.T) {
	hc := httpapi.DefaultHTTPConfig()
	hc.H2C = false
	ts, _ := newSecServer(t, engine.Config{}, httpapi.DefaultLimits(), hc, nil)
	if r, err := postH2(context.Background(), h2cClient(t), ts.url+"/db/h", `{}`); err == nil {
		t.Fatalf("h2c was served with H2C off: %s", r)
	}
	ok(t, ts.post(t, "/db/h", `{}`))
}

// TestH2CStreamResetCancels: a parked lock waiter and a parked watch whose
// HTTP/2 streams are reset (the client gives up on them while keeping the
// connection) are withdrawn: the counts return to 0, the waiter is never
// granted, and the shared connection keeps serving.
func TestH2CStreamResetCancels(t *testing.T) {
	ts, _ := newSecServer(t, engine.Config{}, httpapi.DefaultLimits(), httpapi.DefaultHTTPConfig(), nil)
	c := h2cClient(t)
	held := ok(t, mustH2(t, c, ts.url+"/db/r", `{"LockID":"L","LockDur":60}`))
	waiter := startH2(c, ts.url+"/db/r", `{"LockID":"L","LockDur":60,"LockWait":60}`)
	watch := startH2(c, ts.url+"/watch/r", `{"ID":"k","Version":0,"Timeout":60}`)
	waitUntil(t, "the waiter and the watch parked", func() bool {
		return ts.eng.LockWaitersParked() == 1 && ts.eng.KeyWatchers("r", "k") == 1
	})
	waiter.cancel()
	watch.cancel()
	for _, a := range []*async{waiter, watch} {
		<-a.done
		if a.err == nil {
			t.Fatalf("a reset stream got a reply: %s", a.r)
		}
	}
	waitUntil(t, "the reset waiter and watch are withdrawn", func() bool {
		return ts.eng.LockWaitersParked() == 0 && ts.eng.LockWaiters("r", "L") == 0 &&
			ts.eng.KeyWatchers("r", "k") == 0 && ts.eng.WatchesInFlight() == 0
	})
	// Unlocking grants nobody: the lock is free for the next request.
	ok(t, mustH2(t, c, ts.url+"/db/r", fmt.Sprintf(`{"UnlockID":"L","Unlock":%d}`, held.Lock)))
	if d := ok(t, mustH2(t, c, ts.url+"/db/r", `{"LockID":"L","LockDur":60}`)); d.Lock <= held.Lock {
		t.Fatalf("lock after unlock: %+v", d)
	}
}

// TestH2CLimits: over HTTP/2 --max-watchers and --max-lock-waiters bound
// streams, however few connections carry them; --max-connections counts
// connections, not streams; and MaxStreamsPerConnection bounds the streams
// of one connection, so a client needing more opens another. (Go's client
// may dial a spare connection while streams race to start, so only the
// last counts connections, and only from below.)
func TestH2CLimits(t *testing.T) {
	t.Run("watchers and waiters", func(t *testing.T) {
		ts, _ := newSecServer(t, engine.Config{MaxWatchers: 2, MaxLockWaiters: 2}, httpapi.DefaultLimits(), httpapi.DefaultHTTPConfig(), nil)
		c := h2cClient(t)
		ok(t, mustH2(t, c, ts.url+"/db/l", `{"LockID":"L","LockDur":60}`))
		var parked []*async
		for i := 0; i < 2; i++ {
			parked = append(parked, startH2(c, ts.url+"/watch/l", `{"ID":"k","Version":0,"Timeout":60}`),
				startH2(c, ts.url+"/db/l", `{"LockID":"L","LockDur":60,"LockWait":60}`))
		}
		waitUntil(t, "2 watches and 2 waiters parked", func() bool {
			return ts.eng.KeyWatchers("l", "k") == 2 && ts.eng.LockWaitersParked() == 2
		})
		wantErr(t, mustH2(t, c, ts.url+"/watch/l", `{"ID":"k2","Version":0,"Timeout":60}`), http.StatusTooManyRequests, httpapi.CodeTooManyWatchers)
		wantErr(t, mustH2(t, c, ts.url+"/db/l", `{"LockID":"L","LockDur":60,"LockWait":60}`), http.StatusTooManyRequests, httpapi.CodeTooManyWaiters)
		for _, a := range parked {
			a.cancel()
			<-a.done
		}
		waitUntil(t, "the counts back at 0", func() bool {
			return ts.eng.WatchesInFlight() == 0 && ts.eng.LockWaitersParked() == 0
		})
	})
	t.Run("connections", func(t *testing.T) {
		hc := httpapi.DefaultHTTPConfig()
		hc.MaxConnections = 1
		ts, _ := newSecServer(t, engine.Config{}, httpapi.DefaultLimits(), hc, nil)
		c1 := h2cClient(t)
		ok(t, mustH2(t, c1, ts.url+"/db/c", `{}`)) // the connection, before streams race to open more
		var ws []*async
		for i := 0; i < 3; i++ {
			ws = append(ws, startH2(c1, ts.url+"/watch/c", `{"ID":"k","Version":0,"Timeout":60}`))
		}
		// Three streams, one connection: within a limit of one.
		waitUntil(t, "3 watches parked", func() bool { return ts.eng.KeyWatchers("c", "k") == 3 })
		r := mustH2(t, h2cClient(t), ts.url+"/db/c", `{}`)
		msg := wantErr(t, r, http.StatusServiceUnavailable, httpapi.CodeTooManyConnections)
		if !strings.Contains(msg, "--max-connections") {
			t.Fatalf("the message should name the flag: %s", msg)
		}
		// Written past HTTP: Go's client may have dialed a spare connection
		// meanwhile, which the limit would refuse.
		if _, err := ts.eng.Do(context.Background(), "c", &engine.Request{KVSet: []engine.KVSet{{Key: "k", Value: []byte("1")}}}); err != nil {
			t.Fatal(err)
		}
		for _, w := range ws {
			rawIs(t, w.wait(t), `{"Key":"k","Value":1,"Version":1}`)
		}
	})
	t.Run("streams per connection", func(t *testing.T) {
		hc := httpapi.DefaultHTTPConfig()
		hc.MaxStreamsPerConnection = 2
		ts, srv := newSecServer(t, engine.Config{}, httpapi.DefaultLimits(), hc, nil)
		c := h2cClient(t)
		var ws []*async
		for i := 1; i <= 5; i++ {
			ws = append(ws, startH2(c, ts.url+"/watch/s", `{"ID":"k","Version":0,"Timeout":60}`))
			waitUntil(t, "the watch parked", func() bool { return ts.eng.KeyWatchers("s", "k") == i })
		}
		// 5 open streams at 2 a connection need at least 3 connections.
		if n := srv.Connections(); n < 3 {
			t.Fatalf("%d connections carry 5 parked watches; with 2 streams a connection, want at least 3", n)
		}
		ok(t, mustH2(t, c, ts.url+"/db/s", `{"KVSet":[{"Key":"k","Value":1}]}`))
		for _, w := range ws {
			rawIs(t, w.wait(t), `{"Key":"k","Value":1,"Version":1}`)
		}
	})
}
