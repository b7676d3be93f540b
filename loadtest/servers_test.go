package loadtest

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/latchkv/latch/engine"
	"github.com/latchkv/latch/httpapi"
)

// serveHandler serves h on a loopback port until the test ends and
// returns its URL. The server is configured as `latch serve` configures
// its own, so the bare baseline and latch pay the same HTTP stack.
func serveHandler(tb testing.TB, h http.Handler) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	go srv.Serve(ln) //nolint:errcheck // ends with Close
	tb.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// startLatch opens an engine in dir and serves the API over it.
func startLatch(tb testing.TB, dir string) string {
	tb.Helper()
	eng, err := engine.Open(engine.Config{Dir: dir})
	if err != nil {
		tb.Fatal(err)
	}
	url := serveHandler(tb, httpapi.New(eng, httpapi.DefaultLimits()))
	tb.Cleanup(func() { eng.Close() }) // runs before the server's Close: LIFO
	return url
}

// bareHandler is the baseline: it reads the body and replies {}, the
// least any JSON-over-HTTP server does.
func bareHandler() http.Handler {
	reply := []byte("{}\n")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) //nolint:errcheck
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", "3")
		w.Write(reply) //nolint:errcheck
	})
}
