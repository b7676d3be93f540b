package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// get sends a GET and fails the test on a transport error.
func (ts *testServer) get(t testing.TB, path string) reply {
	t.Helper()
	r, err := ts.send(context.Background(), http.MethodGet, path, "")
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return r
}

// adminOK asserts a 200 JSON reply and decodes it into v.
func adminOK(t testing.TB, r reply, v any) {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("want 200, got %s", r)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q (%s)", ct, r)
	}
	dec := json.NewDecoder(bytes.NewReader(r.Raw))
	dec.DisallowUnknownFields() // the reply has exactly the documented fields
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %s: %v", r, err)
	}
}

type adminLock struct {
	Namespace string
	Key       string
	Handle    uint64
	TillMs    int64
	Waiters   int
}

func TestAdminAPIViews(t *testing.T) {
	ts := newTestServer(t)
	ok(t, ts.post(t, "/db/dev", `{"KVSet":[{"Key":"a/1","Value":{"x": [1, 2]}},{"Key":"a/2","Value":"two"},{"Key":"b","Value":3}],"Atomic":[{"Key":"c","Add":5}]}`))
	l := ok(t, ts.post(t, "/db/dev", `{"LockID":"L","LockDur":60}`))
	ok(t, ts.post(t, "/db/ops", `{"LockID":"M","LockDur":60}`))
	waiter := ts.start("/db/dev", `{"LockID":"L","LockDur":60,"LockWait":60}`)
	defer waiter.cancel()
	ts.waitLockWaiters(t, "dev", "L", 1)
	watch := ts.start("/watch/ops", `{"ID":"cfg","Version":0,"Timeout":60}`)
	defer watch.cancel()

	var nss struct {
		Namespaces []struct {
			Name                  string
			Keys, Counters, Locks int
			Revision              uint64
		}
		Next string
	}
	adminOK(t, ts.get(t, "/admin/namespaces"), &nss)
	if got := fmt.Sprintf("%+v", nss.Namespaces); got != "[{Name:dev Keys:3 Counters:1 Locks:1 Revision:1} {Name:ops Keys:0 Counters:0 Locks:1 Revision:0}]" {
		t.Fatalf("namespaces: %s", got)
	}

	var locks struct {
		Locks []adminLock
		Next  string
	}
	adminOK(t, ts.get(t, "/admin/locks"), &locks)
	if len(locks.Locks) != 2 || locks.Locks[0] != (adminLock{"dev", "L", l.Lock, l.TillMs, 1}) || locks.Locks[1].Key != "M" {
		t.Fatalf("locks: %+v", locks.Locks)
	}
	adminOK(t, ts.get(t, "/admin/locks?ns=ops"), &locks)
	if len(locks.Locks) != 1 || locks.Locks[0].Namespace != "ops" {
		t.Fatalf("locks?ns=ops: %+v", locks.Locks)
	}
	rawIs(t, ts.get(t, "/admin/locks?ns=empty"), `{"Locks":[],"Next":""}`)

	waitUntil(t, "the watch is listed", func() bool {
		r := ts.get(t, "/admin/watches")
		return r.Status == http.StatusOK && strings.TrimSpace(string(r.Raw)) == `{"Watches":[{"Namespace":"ops","Key":"cfg","Watchers":1}],"Next":""}`
	})
	rawIs(t, ts.get(t, "/admin/watches?ns=dev"), `{"Watches":[],"Next":""}`)

	// Values come back byte-exact, spaces and all; paging goes on with Next.
	rawIs(t, ts.get(t, "/admin/keys?ns=dev&prefix=a/&limit=1"), `{"Keys":[{"Key":"a/1","Value":{"x": [1, 2]},"Version":1}],"Next":"a/1"}`)
	rawIs(t, ts.get(t, "/admin/keys?ns=dev&prefix=a/&limit=1&after=a/1"), `{"Keys":[{"Key":"a/2","Value":"two","Version":1}],"Next":""}`)
	rawIs(t, ts.get(t, "/admin/keys?ns=dev&prefix=a/&limit=1&after=a/2"), `{"Keys":[],"Next":""}`)
	rawIs(t, ts.get(t, "/admin/keys?ns=dev&after=a/2"), `{"Keys":[{"Key":"b","Value":3,"Version":1}],"Next":""}`)
	rawIs(t, ts.get(t, "/admin/keys?ns=nothing"), `{"Keys":[],"Next":""}`)

	var st struct {
		Version                                  string
		UptimeMs                                 int64
		Namespaces, LocksHeld, Waiters, Watchers int
		LastHandle                               uint64
		WALBytes                                 int64
		LastSnapshot                             *struct {
			Path             string
			Cut              uint64
			Bytes, CreatedMs int64
		}
	}
	adminOK(t, ts.get(t, "/admin/stats"), &st)
	if st.Version == "" || st.UptimeMs < 0 || st.Namespaces != 2 || st.LocksHeld != 2 || st.Waiters != 1 || st.Watchers != 1 ||
		st.LastHandle != ts.eng.LastHandle() || st.WALBytes <= 0 || st.LastSnapshot != nil {
		t.Fatalf("stats: %+v", st)
	}
	if _, err := ts.eng.Snapshot(); err != nil {
		t.Fatal(err)
	}
	adminOK(t, ts.get(t, "/admin/stats"), &st)
	if st.LastSnapshot == nil || st.LastSnapshot.Cut == 0 || st.LastSnapshot.Bytes <= 0 || st.LastSnapshot.CreatedMs <= 0 {
		t.Fatalf("stats after a snapshot: %+v", st.LastSnapshot)
	}
}

func TestAdminAPIErrors(t *testing.T) {
	ts := newTestServer(t)
	wantErr(t, ts.get(t, "/admin/keys"), 400, "namespace_required")
	wantErr(t, ts.get(t, "/admin/keys?ns=bad/ns"), 400, "invalid_namespace")
	wantErr(t, ts.get(t, "/admin/locks?ns=no%20spaces"), 400, "invalid_namespace")
	for _, lim := range []string{"0", "1001", "x", "-1"} {
		wantErr(t, ts.get(t, "/admin/keys?ns=dev&limit="+lim), 400, "invalid_request")
	}
	for _, p := range []string{"/admin/namespaces", "/admin/locks", "/admin/watches", "/admin/keys", "/admin/stats"} {
		wantErr(t, ts.post(t, p, `{}`), 405, "method_not_allowed")
	}
	wantErr(t, ts.get(t, "/admin/locks/release"), 405, "method_not_allowed")
	rel := "/admin/locks/release"
	wantErr(t, ts.post(t, rel, `{"Key":"L"}`), 400, "namespace_required")
	wantErr(t, ts.post(t, rel, `{"Namespace":"dev"}`), 400, "key_required")
	wantErr(t, ts.post(t, rel, `{"Namespace":"d/v","Key":"L"}`), 400, "invalid_namespace")
	wantErr(t, ts.post(t, rel, `{"Namespace":"dev","Key":"L","Handle":-1}`), 400, "bad_json")
	wantErr(t, ts.post(t, rel, `{"Namespace":"dev","Key":"L","Lock":1}`), 400, "unknown_field")
	wantErr(t, ts.post(t, rel, `{"Namespace":"dev","Key":"L"`), 400, "bad_json")
	wantErr(t, ts.post(t, rel, `{"Namespace":"dev","Key":"L"}`), 404, "lock_not_held")
	h := ok(t, ts.post(t, "/db/dev", `{"LockID":"L","LockDur":60}`)).Lock
	wantErr(t, ts.post(t, rel, fmt.Sprintf(`{"Namespace":"dev","Key":"L","Handle":%d}`, h+1)), 409, "lock_lost")
	rawIs(t, ts.post(t, rel, fmt.Sprintf(`{"Namespace":"dev","Key":"L","Handle":"%d"}`, h)), fmt.Sprintf(`{"Released":true,"Handle":%d}`, h))
}

// syncBuffer is a bytes.Buffer safe for a logger and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestAdminForceRelease: the holder's handle is released, the parked
// waiter gets the lock and its request returns 200 with the new handle,
// the old handle's unlock is 409 lock_lost, and the action is logged
// without values.
func TestAdminForceRelease(t *testing.T) {
	var logBuf syncBuffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logBuf, nil)))
	t.Cleanup(func() { slog.SetDefault(prev) })

	ts := newTestServer(t)
	ok(t, ts.post(t, "/db/dev", `{"KVSet":[{"Key":"L","Value":"secret-value"}]}`))
	old := ok(t, ts.post(t, "/db/dev", `{"LockID":"L","LockDur":60}`)).Lock
	waiter := ts.start("/db/dev", `{"LockID":"L","LockDur":60,"LockWait":60}`)
	defer waiter.cancel()
	ts.waitLockWaiters(t, "dev", "L", 1)

	rawIs(t, ts.post(t, "/admin/locks/release", `{"Namespace":"dev","Key":"L"}`), fmt.Sprintf(`{"Released":true,"Handle":%d}`, old))
	got := ok(t, waiter.wait(t))
	if got.Lock <= old {
		t.Fatalf("the waiter got handle %d, not one above %d", got.Lock, old)
	}
	wantErr(t, ts.post(t, "/db/dev", unlockBody("L", old)), 409, "lock_lost")
	var locks struct {
		Locks []adminLock
		Next  string
	}
	adminOK(t, ts.get(t, "/admin/locks?ns=dev"), &locks)
	if len(locks.Locks) != 1 || locks.Locks[0].Handle != got.Lock || locks.Locks[0].Waiters != 0 {
		t.Fatalf("after the force release: %+v", locks.Locks)
	}

	line := logBuf.String()
	for _, want := range []string{"admin force release", "namespace=dev", "key=L", fmt.Sprintf("old_handle=%d", old), fmt.Sprintf("new_handle=%d", got.Lock)} {
		if !strings.Contains(line, want) {
			t.Errorf("log %q lacks %q", line, want)
		}
	}
	if strings.Contains(line, "secret-value") {
		t.Errorf("the log carries a stored value: %q", line)
	}
}

func TestAdminUIServed(t *testing.T) {
	ts := newTestServer(t)
	for path, want := range map[string]string{"/ui": "text/html", "/ui/": "text/html", "/ui/app.js": "javascript", "/ui/style.css": "text/css"} {
		r := ts.get(t, path)
		if r.Status != http.StatusOK || !strings.Contains(r.Header.Get("Content-Type"), want) || len(r.Raw) == 0 {
			t.Errorf("GET %s: %d %q (%d bytes)", path, r.Status, r.Header.Get("Content-Type"), len(r.Raw))
		}
		if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("GET %s: CSP %q", path, csp)
		}
	}
	if r := ts.get(t, "/ui"); !bytes.Contains(r.Raw, []byte(`src="/ui/app.js"`)) {
		t.Errorf("the page does not load its script: %s", r.Raw)
	}
	wantErr(t, ts.get(t, "/ui/nope.js"), 404, "not_found")
	wantErr(t, ts.post(t, "/ui", ""), 405, "method_not_allowed")
}
