package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkv/latch/engine"
	"github.com/latchkv/latch/httpapi"
)

// These acceptance tests run the real handler over real HTTP on loopback,
// against a real engine with its log in t.TempDir() (real fsync). Nothing
// asserts on timing: deadlines below only keep a broken server from
// hanging the test run.

// hangGuard bounds any single wait in these tests. It is far above what
// a correct server needs; hitting it is a failure, not a slow pass.
const hangGuard = 60 * time.Second

// testServer is one engine served by the API on a loopback port.
type testServer struct {
	eng      *engine.Engine
	srv      *httptest.Server
	url      string
	client   *http.Client
	inflight atomic.Int64 // handlers running right now
	closed   bool         // the test closed the engine itself
}

// newTestServer starts an engine in a temp dir and serves it with the
// default limits.
func newTestServer(t testing.TB) *testServer {
	return newTestServerWith(t, engine.Config{}, httpapi.DefaultLimits())
}

func newTestServerWith(t testing.TB, cfg engine.Config, lim httpapi.Limits) *testServer {
	t.Helper()
	cfg.Dir = t.TempDir()
	if cfg.SnapshotEveryRecords == 0 {
		cfg.SnapshotEveryRecords = -1
	}
	eng, err := engine.Open(cfg)
	if err != nil {
		t.Fatalf("engine.Open: %v", err)
	}
	ts := &testServer{eng: eng}
	api := httpapi.New(eng, lim)
	ts.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts.inflight.Add(1)
		defer ts.inflight.Add(-1)
		api.ServeHTTP(w, r)
	}))
	ts.url = ts.srv.URL
	tr := &http.Transport{MaxIdleConns: 1000, MaxIdleConnsPerHost: 1000, DisableCompression: true}
	ts.client = &http.Client{Transport: tr}
	t.Cleanup(func() {
		// Fail parked waiters and watchers and disconnect the clients
		// first, so Close does not wait for handlers a failed test left
		// parked.
		if !ts.closed {
			eng.Drain() // not after Close: see closeEngine
		}
		ts.srv.CloseClientConnections()
		ts.srv.Close()
		tr.CloseIdleConnections()
		if err := eng.Close(); err != nil {
			t.Errorf("engine.Close: %v", err)
		}
	})
	return ts
}

// closeEngine closes the engine under the running server. The cleanup
// then skips Drain: engine.Drain after Close can block forever (it may
// queue its command on a loop that has already stopped and then wait for
// that loop to answer).
func (ts *testServer) closeEngine(t testing.TB) {
	t.Helper()
	ts.closed = true
	if err := ts.eng.Close(); err != nil {
		t.Fatalf("engine.Close: %v", err)
	}
}

// reply is one HTTP response, read whole.
type reply struct {
	Status int
	Header http.Header
	Raw    []byte // the body as sent, trailing newline included
}

func (r reply) String() string { return fmt.Sprintf("%d %s", r.Status, bytes.TrimSpace(r.Raw)) }

// send does one request; ctx cancels it. It never calls t.Fatal, so it is
// safe in goroutines.
func (ts *testServer) send(ctx context.Context, method, path, body string) (reply, error) {
	ctx, cancel := context.WithTimeout(ctx, hangGuard)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, ts.url+path, rd)
	if err != nil {
		return reply{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := ts.client.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	return reply{Status: resp.StatusCode, Header: resp.Header, Raw: raw}, nil
}

// post sends a POST and fails the test on a transport error.
func (ts *testServer) post(t testing.TB, path, body string) reply {
	t.Helper()
	r, err := ts.send(context.Background(), http.MethodPost, path, body)
	if err != nil {
		t.Fatalf("POST %s %s: %v", path, body, err)
	}
	return r
}

// dbReply is the body of a /db reply or an error; kvItem also a watch reply.
type dbReply struct {
	Lock    uint64
	Till    int64
	TillMs  int64
	KV      []kvItem
	Atomic  []atomicItem
	Seq     []seqItem
	Code    string
	Message string
}

type kvItem struct {
	Key     string
	Value   json.RawMessage
	Version uint64
}

type atomicItem struct {
	Key   string
	Value int64
}

type seqItem struct {
	Key         string
	First, Last uint64
}

// exactFields are the only field names, spelled exactly, a reply may have.
var exactFields = map[string]bool{"Lock": true, "Till": true, "TillMs": true, "KV": true, "Atomic": true, "Seq": true,
	"Key": true, "Value": true, "Version": true, "First": true, "Last": true, "Code": true, "Message": true}

// checkShape fails unless raw is one JSON object, served as
// application/json, whose field names (at any depth outside stored values)
// are spelled exactly as the API documents them.
func checkShape(t testing.TB, r reply) {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json (%s)", ct, r)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(r.Raw, &top); err != nil {
		t.Fatalf("reply is not a JSON object: %v (%s)", err, r)
	}
	for name, v := range top {
		if !exactFields[name] {
			t.Errorf("reply has field %q, not one the API documents (%s)", name, r)
		}
		if name == "KV" || name == "Atomic" || name == "Seq" {
			var items []map[string]json.RawMessage
			if err := json.Unmarshal(v, &items); err != nil {
				t.Fatalf("%s is not an array of objects: %v (%s)", name, err, r)
			}
			for _, it := range items {
				for n := range it {
					if !exactFields[n] {
						t.Errorf("%s item has field %q (%s)", name, n, r)
					}
				}
			}
		}
	}
}

// ok asserts a 200 reply and decodes it.
func ok(t testing.TB, r reply) dbReply {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("want 200, got %s", r)
	}
	checkShape(t, r)
	var d dbReply
	if err := json.Unmarshal(r.Raw, &d); err != nil {
		t.Fatalf("decode %s: %v", r, err)
	}
	if d.Code != "" || d.Message != "" {
		t.Fatalf("a 200 reply carries an error: %s", r)
	}
	return d
}

var codeRE = regexp.MustCompile(`^[a-z]+(_[a-z]+)*$`)

// wantErr asserts an error reply: the status, exactly {"Code", "Message"},
// the code, and a non-empty message. It returns the message.
func wantErr(t testing.TB, r reply, status int, code string) string {
	t.Helper()
	if r.Status != status {
		t.Fatalf("want %d %s, got %s", status, code, r)
	}
	checkShape(t, r)
	var m map[string]json.RawMessage
	if err := json.Unmarshal(r.Raw, &m); err != nil {
		t.Fatalf("decode %s: %v", r, err)
	}
	if len(m) != 2 || m["Code"] == nil || m["Message"] == nil {
		t.Fatalf("an error body is exactly {\"Code\", \"Message\"}; got %s", r)
	}
	var got struct{ Code, Message string }
	if err := json.Unmarshal(r.Raw, &got); err != nil {
		t.Fatalf("decode %s: %v", r, err)
	}
	if !codeRE.MatchString(got.Code) {
		t.Errorf("code %q is not snake_case", got.Code)
	}
	if got.Code != code {
		t.Fatalf("want code %s, got %s", code, r)
	}
	if strings.TrimSpace(got.Message) == "" {
		t.Fatalf("empty Message: %s", r)
	}
	return got.Message
}

// rawIs asserts the exact body bytes (without the trailing newline).
func rawIs(t testing.TB, r reply, want string) {
	t.Helper()
	if got := string(bytes.TrimSuffix(r.Raw, []byte("\n"))); got != want {
		t.Fatalf("body\n got %s\nwant %s", got, want)
	}
}

// waitUntil polls cond until it holds, failing after hangGuard.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for spin := 0; !cond(); spin++ {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting until %s", what)
		}
		if spin < 50 {
			time.Sleep(50 * time.Microsecond)
		} else {
			time.Sleep(time.Millisecond)
		}
	}
}

// waitLockWaiters waits until the lock has exactly n queued waiters.
func (ts *testServer) waitLockWaiters(t testing.TB, ns, key string, n int) {
	t.Helper()
	waitUntil(t, fmt.Sprintf("lock %s/%s has %d waiters", ns, key, n), func() bool { return ts.eng.LockWaiters(ns, key) == n })
}

// async is a request running in the background.
type async struct {
	done   chan struct{}
	r      reply
	err    error
	cancel context.CancelFunc
}

// start sends a POST in a goroutine; wait collects it.
func (ts *testServer) start(path, body string) *async {
	ctx, cancel := context.WithCancel(context.Background())
	a := &async{done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(a.done)
		a.r, a.err = ts.send(ctx, http.MethodPost, path, body)
	}()
	return a
}

// wait returns the reply, failing on a transport error or a hang.
func (a *async) wait(t testing.TB) reply {
	t.Helper()
	select {
	case <-a.done:
	case <-time.After(hangGuard + 5*time.Second):
		t.Fatal("a background request never returned")
	}
	if a.err != nil {
		t.Fatalf("background request: %v", a.err)
	}
	return a.r
}

// returned reports whether the request has finished.
func (a *async) returned() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

// unlockBody is the body of a release.
func unlockBody(key string, h uint64) string {
	return fmt.Sprintf(`{"UnlockID":%q,"Unlock":%d}`, key, h)
}
