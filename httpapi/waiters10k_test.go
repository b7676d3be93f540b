//go:build !race

// The race detector caps a process at 8128 live goroutines, and this test
// parks 10,000 requests, each with a client and a server goroutine; it
// therefore only builds without -race. Run it with
//
//	go test -count=1 -run TestTenThousandWaiters ./httpapi

package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/latchkv/latch/engine"
	"github.com/latchkv/latch/httpapi"
)

// maxHeapPerWaiter bounds the heap one parked waiter may cost, client and
// server together (both run in this process): its connection or stream
// buffers, request, engine entry. The engine itself needs far less.
const maxHeapPerWaiter = 64 << 10

// TestTenThousandWaiters parks 10,000 lock waiters on one key over real
// HTTP, each queued only after the previous one is, and checks that they
// are all served exactly once, in that order, each handing over to the
// next by unlocking at once, and that the heap grew by a bounded amount
// per parked waiter.
//
// Transport: one HTTP/1.1 connection per waiter needs two descriptors per
// waiter (client and server end, both in this process). If RLIMIT_NOFILE
// cannot be raised that far, the waiters share HTTP/2 connections in
// cleartext (h2c, Go's net/http on both sides); each waiter is still its
// own request, whose disconnect (stream reset) would cancel it.
// LATCH_TEST_WAITERS_PROTO=h1|h2c forces one; LATCH_TEST_WAITERS sets the
// count.
func TestTenThousandWaiters(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 parked HTTP requests: skipped in -short")
	}
	n := 10_000
	if s := os.Getenv("LATCH_TEST_WAITERS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			t.Fatalf("LATCH_TEST_WAITERS=%q", s)
		}
		n = v
	}
	proto := os.Getenv("LATCH_TEST_WAITERS_PROTO")
	needFDs := uint64(2*n + 1024)
	haveFDs := raiseNoFile(t, needFDs)
	switch proto {
	case "":
		proto = "h1"
		if haveFDs < needFDs {
			proto = "h2c"
			t.Logf("RLIMIT_NOFILE is %d (hard limit reached), below the %d that %d HTTP/1.1 connections need; using HTTP/2 cleartext streams", haveFDs, needFDs, n)
		}
	case "h1":
		if haveFDs < needFDs {
			t.Skipf("LATCH_TEST_WAITERS_PROTO=h1 needs %d file descriptors; RLIMIT_NOFILE allows %d and cannot be raised", needFDs, haveFDs)
		}
	case "h2c":
	default:
		t.Fatalf("LATCH_TEST_WAITERS_PROTO=%q: want h1 or h2c", proto)
	}
	h2c := proto == "h2c"

	eng, err := engine.Open(engine.Config{Dir: t.TempDir(), SnapshotEveryRecords: -1})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(httpapi.New(eng, httpapi.DefaultLimits()))
	tr := &http.Transport{MaxConnsPerHost: 0, MaxIdleConns: n + 16, MaxIdleConnsPerHost: n + 16, DisableCompression: true}
	if h2c {
		srv.Config.Protocols = new(http.Protocols)
		srv.Config.Protocols.SetHTTP1(true)
		srv.Config.Protocols.SetUnencryptedHTTP2(true)
		srv.Config.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: n + 100}
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
	}
	srv.Start()
	client := &http.Client{Transport: tr}
	t.Cleanup(func() {
		eng.Drain() // fail whatever is still parked if the test failed early
		srv.CloseClientConnections()
		srv.Close()
		tr.CloseIdleConnections()
		eng.Close()
	})
	const ns, key = "tenk", "L"
	url := srv.URL + "/db/" + ns
	post := func(ctx context.Context, body string) (int, dbReply, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
		if err != nil {
			return 0, dbReply{}, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, dbReply{}, err
		}
		defer resp.Body.Close()
		if h2c && resp.ProtoMajor != 2 {
			return 0, dbReply{}, fmt.Errorf("reply over %s, want HTTP/2", resp.Proto)
		}
		var d dbReply
		if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
			return resp.StatusCode, d, err
		}
		return resp.StatusCode, d, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	st, holder, err := post(ctx, `{"LockID":"L","LockDur":3600}`)
	if err != nil || st != 200 || holder.Lock == 0 {
		t.Fatalf("holder: %d %+v %v", st, holder, err)
	}

	// Everything the waiters record is allocated before the first heap
	// reading.
	var (
		mu      sync.Mutex
		order   = make([]int, 0, n)
		handles = make([]uint64, 0, n)
		fails   = make([]string, 0, 16)
		wg      sync.WaitGroup
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		if len(fails) < cap(fails) {
			fails = append(fails, fmt.Sprintf(format, args...))
		}
		mu.Unlock()
	}
	waiter := func(i int) {
		defer wg.Done()
		st, d, err := post(ctx, `{"LockID":"L","LockDur":600,"LockWait":300}`)
		if err != nil || st != 200 || d.Lock == 0 {
			fail("waiter %d: %d %+v %v", i, st, d, err)
			return
		}
		mu.Lock()
		order = append(order, i)
		handles = append(handles, d.Lock)
		mu.Unlock()
		st, d, err = post(ctx, fmt.Sprintf(`{"UnlockID":"L","Unlock":%d}`, d.Lock))
		if err != nil || st != 200 || d.Code != "" {
			fail("waiter %d unlock: %d %+v %v", i, st, d, err)
		}
	}

	runtime.GC()
	runtime.GC()
	var before, parked runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go waiter(i)
		// Queue the next only once this one is counted: the queue order
		// is then exactly i.
		deadline := time.Now().Add(hangGuard)
		for spin := 0; eng.LockWaiters(ns, key) != i+1; spin++ {
			if time.Now().After(deadline) {
				mu.Lock()
				failures := fmt.Sprint(fails)
				mu.Unlock()
				t.Fatalf("waiter %d never queued (%d waiters; failures: %s)", i, eng.LockWaiters(ns, key), failures)
			}
			if spin > 20 {
				time.Sleep(20 * time.Microsecond)
			}
		}
	}
	queued := time.Since(start)
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&parked)
	perWaiter := (int64(parked.HeapInuse) - int64(before.HeapInuse)) / int64(n)
	stackPer := (int64(parked.StackInuse) - int64(before.StackInuse)) / int64(n)
	t.Logf("%s: %d waiters queued in %v; heap in use %d -> %d bytes: %d bytes per parked waiter (client and server); goroutine stacks %d bytes per waiter",
		proto, n, queued.Round(time.Millisecond), before.HeapInuse, parked.HeapInuse, perWaiter, stackPer)
	if perWaiter > maxHeapPerWaiter {
		t.Errorf("heap grew by %d bytes per parked waiter; the bound is %d", perWaiter, maxHeapPerWaiter)
	}
	mu.Lock()
	early, failures := len(order), fmt.Sprint(fails)
	mu.Unlock()
	if early != 0 || failures != "[]" {
		t.Fatalf("while the holder held the lock: %d grants, failures %s", early, failures)
	}

	start = time.Now()
	if st, d, err := post(ctx, fmt.Sprintf(`{"UnlockID":"L","Unlock":%d}`, holder.Lock)); err != nil || st != 200 {
		t.Fatalf("holder unlock: %d %+v %v", st, d, err)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		mu.Lock()
		served, failures := len(order), fmt.Sprint(fails)
		mu.Unlock()
		t.Fatalf("only %d of %d waiters served; failures: %s", served, n, failures)
	}
	t.Logf("%d hand-offs in %v", n, time.Since(start).Round(time.Millisecond))

	if len(fails) > 0 {
		t.Fatalf("failures: %v", fails)
	}
	if len(order) != n {
		t.Fatalf("%d grants for %d waiters", len(order), n)
	}
	for k, i := range order {
		if i != k {
			t.Fatalf("grant %d went to waiter %d, want %d (first come, first served)", k, i, k)
		}
		if want := holder.Lock + 1 + uint64(k); handles[k] != want {
			t.Fatalf("grant %d: handle %d, want %d", k, handles[k], want)
		}
	}
	if w := eng.LockWaiters(ns, key); w != 0 {
		t.Fatalf("%d waiters left", w)
	}
	if st, d, err := post(ctx, `{"LockID":"L","LockDur":1}`); err != nil || st != 200 || d.Lock != holder.Lock+uint64(n)+1 {
		t.Fatalf("after all waiters: %d %+v %v", st, d, err)
	}
}

// raiseNoFile raises the soft RLIMIT_NOFILE toward want (up to the hard
// limit), restoring it at cleanup, and returns the soft limit now in force.
func raiseNoFile(t *testing.T, want uint64) uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Logf("getrlimit: %v", err)
		return 0
	}
	if rl.Cur >= want {
		return rl.Cur
	}
	old := rl
	rl.Cur = min(want, rl.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Logf("setrlimit NOFILE %d: %v", rl.Cur, err)
		return old.Cur
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) }) //nolint:errcheck
	return rl.Cur
}
