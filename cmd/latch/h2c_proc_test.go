package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// h2cPost sends one POST over HTTP/2 by prior knowledge (no TLS, no
// HTTP/1.1 fallback) and returns the status, protocol and body.
func h2cPost(ctx context.Context, c *http.Client, url, body string) (int, string, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, "", "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Proto, string(b), err
}

func newH2CClient(t *testing.T) *http.Client {
	tr := &http.Transport{DisableCompression: true}
	tr.Protocols = new(http.Protocols)
	tr.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: hangGuard}
}

// TestServeH2C: `latch serve` answers HTTP/2 without TLS by prior
// knowledge by default, wakes a watch over it, withdraws a watch whose
// stream is reset, and with --h2c=false serves HTTP/1.1 only.
func TestServeH2C(t *testing.T) {
	s := startServer(t, t.TempDir(), nil, "--max-streams-per-connection", "100")
	c := newH2CClient(t)
	ctx := context.Background()
	st, proto, body, err := h2cPost(ctx, c, s.URL+"/db/h", `{"KVSet":[{"Key":"k","Value":1}]}`)
	if err != nil || st != 200 || proto != "HTTP/2.0" {
		t.Fatalf("h2c write: %d %s %s %v", st, proto, body, err)
	}
	type res struct {
		st   int
		body string
		err  error
	}
	woken := make(chan res, 1)
	go func() {
		st, _, body, err := h2cPost(ctx, c, s.URL+"/watch/h", `{"ID":"k","Version":1,"Timeout":60}`)
		woken <- res{st, body, err}
	}()
	resetCtx, reset := context.WithCancel(ctx)
	resetDone := make(chan error, 1)
	go func() {
		_, _, _, err := h2cPost(resetCtx, c, s.URL+"/watch/h", `{"ID":"other","Version":0,"Timeout":60}`)
		resetDone <- err
	}()
	waitStats(t, s, "2 watches parked", func(w int) bool { return w == 2 })
	reset()
	if err := <-resetDone; err == nil {
		t.Fatal("the reset watch got a reply")
	}
	waitStats(t, s, "the reset watch withdrawn", func(w int) bool { return w == 1 })
	if st, _, body, err := h2cPost(ctx, c, s.URL+"/db/h", `{"KVSet":[{"Key":"k","Value":2}]}`); err != nil || st != 200 {
		t.Fatalf("h2c write: %d %s %v", st, body, err)
	}
	if r := <-woken; r.err != nil || r.st != 200 || !strings.Contains(r.body, `"Version":2`) {
		t.Fatalf("woken watch: %d %s %v", r.st, r.body, r.err)
	}
	s.stop()

	off := startServer(t, t.TempDir(), nil, "--h2c=false")
	if st, proto, body, err := h2cPost(ctx, newH2CClient(t), off.URL+"/db/h", `{}`); err == nil {
		t.Fatalf("--h2c=false still served h2c: %d %s %s", st, proto, body)
	}
	status, body := do(t, off.client, "POST", off.URL+"/db/h", "", `{}`)
	wantStatus(t, "HTTP/1.1 with --h2c=false", status, body, 200, "")
	off.stop()

	if code, _, stderr := runLatch(t, nil, "serve", "--data-dir", t.TempDir(), "--max-streams-per-connection", "0"); code != 2 || !strings.Contains(stderr, "--max-streams-per-connection") {
		t.Fatalf("--max-streams-per-connection 0: exit %d, want 2 naming the flag; stderr: %s", code, stderr)
	}
}

// waitStats polls GET /admin/stats until its Watchers count satisfies ok.
func waitStats(t *testing.T, s *server, what string, ok func(watchers int) bool) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for {
		status, body := do(t, s.client, "GET", s.URL+"/admin/stats", "", "")
		var st struct{ Watchers int }
		if status == 200 && json.Unmarshal([]byte(body), &st) == nil && ok(st.Watchers) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting until %s: %s", what, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
