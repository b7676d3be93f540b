package client_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/latchkv/latch/engine"
	"github.com/latchkv/latch/httpapi"
)

// hangGuard bounds every wait in these tests; reaching it means a hang,
// never a slow pass.
const hangGuard = 30 * time.Second

// exampleURL is the server the Example functions talk to (TestMain starts it).
var exampleURL string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "latch-client-example-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	s, err := launch(dir, "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "starting the example server:", err)
		os.Exit(1)
	}
	exampleURL = "http://" + s.addr
	code := m.Run()
	s.shutdown() //nolint:errcheck
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is a real engine (log in a temp dir, real fsync) served over
// real HTTP on loopback. It can be stopped and started again on the same
// address with the same data, like a restarted process.
type server struct {
	dir  string
	addr string
	eng  *engine.Engine
	srv  *http.Server
	URL  string
}

func launch(dir, addr string) (*server, error) {
	eng, err := engine.Open(engine.Config{Dir: dir, Shards: 2, SnapshotEveryRecords: -1})
	if err != nil {
		return nil, err
	}
	var ln net.Listener
	deadline := time.Now().Add(hangGuard)
	for {
		ln, err = net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // the old socket is still closing
	}
	if err != nil {
		eng.Close()
		return nil, err
	}
	s := &server{dir: dir, addr: ln.Addr().String(), eng: eng,
		srv: &http.Server{Handler: httpapi.New(eng, httpapi.DefaultLimits())}}
	s.URL = "http://" + s.addr
	go s.srv.Serve(ln) //nolint:errcheck // ends with ErrServerClosed
	return s, nil
}

func (s *server) shutdown() error {
	s.eng.Drain()
	s.srv.Close()
	return s.eng.Close()
}

func startServer(t *testing.T) *server {
	t.Helper()
	s, err := launch(t.TempDir(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.shutdown() }) //nolint:errcheck
	return s
}

// restart stops the server and, after pause, serves the same data on the
// same address again.
func (s *server) restart(t *testing.T, pause func()) {
	t.Helper()
	if err := s.shutdown(); err != nil {
		t.Fatalf("stopping the server: %v", err)
	}
	pause()
	ns, err := launch(s.dir, s.addr)
	if err != nil {
		t.Fatalf("restarting the server on %s: %v", s.addr, err)
	}
	*s = *ns
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	t.Cleanup(cancel)
	return ctx
}
