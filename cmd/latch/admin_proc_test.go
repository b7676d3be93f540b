package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// adminCall does one admin request against the real server and decodes the
// reply into v; it returns the status.
func (s *server) adminCall(method, path, body string, v any) int {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.URL+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(v); err != nil {
		s.t.Fatalf("%s %s: undecodable %q: %v", method, path, data, err)
	}
	return resp.StatusCode
}

type procLock struct {
	Namespace, Key string
	Handle         uint64
	TillMs         int64
	Waiters        int
}

func (s *server) adminLocks() []procLock {
	s.t.Helper()
	var r struct{ Locks []procLock }
	if st := s.adminCall(http.MethodGet, "/admin/locks", "", &r); st != http.StatusOK {
		s.t.Fatalf("GET /admin/locks: %d", st)
	}
	return r.Locks
}

// TestForceReleaseSurvivesSIGKILL: a force release is acknowledged only
// once it is in the log, so after SIGKILL and restart the released lock is
// free and the lock handed to its waiter is still the waiter's, with the
// same handle and deadline.
func TestForceReleaseSurvivesSIGKILL(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir, nil)
	free := s.mustDB("ops", map[string]any{"LockID": "free-me", "LockDur": 600}, 200).Lock
	passed := s.mustDB("ops", map[string]any{"LockID": "pass-on", "LockDur": 600}, 200).Lock

	type outcome struct {
		st  int
		r   dbResp
		err error
	}
	waited := make(chan outcome, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
		defer cancel()
		st, r, err := s.db(ctx, "ops", map[string]any{"LockID": "pass-on", "LockDur": 600, "LockWait": 60})
		waited <- outcome{st, r, err}
	}()
	deadline := time.Now().Add(hangGuard)
	for {
		locks := s.adminLocks()
		if len(locks) == 2 && locks[1].Key == "pass-on" && locks[1].Waiters == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the waiter never showed in /admin/locks: %+v", locks)
		}
		time.Sleep(5 * time.Millisecond)
	}

	var rel struct {
		Released bool
		Handle   uint64
	}
	if st := s.adminCall(http.MethodPost, "/admin/locks/release", fmt.Sprintf(`{"Namespace":"ops","Key":"free-me","Handle":%d}`, free), &rel); st != 200 || !rel.Released || rel.Handle != free {
		t.Fatalf("force release free-me: %d %+v", st, rel)
	}
	if st := s.adminCall(http.MethodPost, "/admin/locks/release", `{"Namespace":"ops","Key":"pass-on"}`, &rel); st != 200 || rel.Handle != passed {
		t.Fatalf("force release pass-on: %d %+v", st, rel)
	}
	o := <-waited
	if o.err != nil || o.st != 200 || o.r.Lock <= passed {
		t.Fatalf("the waiter: %d %+v %v", o.st, o.r, o.err)
	}
	if _, ok := s.waitLine(fmt.Sprintf("old_handle=%d", passed), 1, hangGuard); !ok {
		t.Fatalf("no log line for the force release:\n%s", s.tail(5))
	}
	if line, _ := s.waitLine("msg=\"admin force release\" namespace=ops key=pass-on", 1, hangGuard); !strings.Contains(line, fmt.Sprintf("new_handle=%d", o.r.Lock)) {
		t.Errorf("log line %q lacks the new holder %d", line, o.r.Lock)
	}

	s.crash()
	s2 := startServer(t, dir, nil)
	locks := s2.adminLocks()
	if len(locks) != 1 || locks[0].Key != "pass-on" || locks[0].Handle != o.r.Lock || locks[0].TillMs != o.r.TillMs {
		t.Fatalf("after SIGKILL and restart: %+v; want only pass-on held by %d until %d", locks, o.r.Lock, o.r.TillMs)
	}
	if r := s2.mustDB("ops", map[string]any{"LockID": "free-me", "LockDur": 1}, 200); r.Lock <= o.r.Lock {
		t.Fatalf("handle %d after restart is not above %d", r.Lock, o.r.Lock)
	}
	if r := s2.mustDB("ops", map[string]any{"UnlockID": "pass-on", "Unlock": passed}, 409); r.Code != "lock_lost" {
		t.Fatalf("the force-released handle after restart: %+v", r)
	}
	s2.stop()
}
