package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// docExample is one curl command of docs/API.md and the reply the docs
// promise for it.
type docExample struct {
	line   int    // 1-based line of the curl command
	method string // POST, or GET for the admin API's views
	path   string // /db/my_env, /watch/my_env
	body   string
	expect string // the documented reply, or "" when the docs show none
	// background: the docs show no reply because the command blocks
	// until a later one runs; its reply is given by a later
	// "# the watch returns ..." comment.
	background bool
}

var curlRE = regexp.MustCompile(`(?s)^curl -s -X POST http://127\.0\.0\.1:7070(/\S+) -d '(.*)'$`)

// curlGetRE is a GET (the admin API's views), the URL quoted when it has
// a query string.
var curlGetRE = regexp.MustCompile(`^curl -s '?http://127\.0\.0\.1:7070(/[^\s']+)'?$`)

// parseDocExamples extracts every curl example from the ```sh blocks of
// docs/API.md, in order, with the reply written under it.
func parseDocExamples(t testing.TB) []docExample {
	t.Helper()
	src, err := os.ReadFile("../docs/API.md")
	if err != nil {
		t.Fatalf("read docs: %v", err)
	}
	lines := strings.Split(string(src), "\n")
	var out []docExample
	inSh := false
	var pendingBG []int // indexes of background commands not yet resolved
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		switch {
		case strings.HasPrefix(l, "```sh"):
			inSh = true
			continue
		case strings.HasPrefix(l, "```"):
			inSh = false
			continue
		}
		if !inSh {
			continue
		}
		switch {
		case strings.HasPrefix(l, "curl "):
			start := i
			cmd := l
			for strings.Count(cmd, "'")%2 == 1 { // the body spans lines
				i++
				if i >= len(lines) {
					t.Fatalf("docs/API.md:%d: unterminated quote", start+1)
				}
				cmd += "\n" + lines[i]
			}
			ex := docExample{line: start + 1, method: http.MethodPost}
			if m := curlRE.FindStringSubmatch(cmd); m != nil {
				ex.path, ex.body = m[1], m[2]
			} else if m := curlGetRE.FindStringSubmatch(cmd); m != nil {
				ex.method, ex.path = http.MethodGet, m[1]
			} else {
				t.Fatalf("docs/API.md:%d: a curl example this test cannot parse: %s", start+1, cmd)
			}
			// The documented reply: comment lines starting with "# {",
			// continued by "#  ..." lines until the JSON is complete.
			if i+1 < len(lines) && strings.HasPrefix(lines[i+1], "# {") {
				i++
				exp := strings.TrimPrefix(lines[i], "# ")
				for !json.Valid([]byte(exp)) && i+1 < len(lines) && strings.HasPrefix(lines[i+1], "#  ") {
					i++
					exp += strings.TrimSpace(strings.TrimPrefix(lines[i], "#"))
				}
				if !json.Valid([]byte(exp)) {
					t.Fatalf("docs/API.md:%d: documented reply is not JSON: %s", start+1, exp)
				}
				ex.expect = exp
			} else if strings.HasPrefix(ex.path, "/watch/") {
				ex.background = true
				pendingBG = append(pendingBG, len(out))
			}
			out = append(out, ex)
		case strings.HasPrefix(l, "# the watch returns "):
			if len(pendingBG) == 0 {
				t.Fatalf("docs/API.md:%d: %q follows no blocking watch", i+1, l)
			}
			exp := strings.TrimPrefix(l, "# the watch returns ")
			if !json.Valid([]byte(exp)) {
				t.Fatalf("docs/API.md:%d: not JSON: %s", i+1, exp)
			}
			out[pendingBG[0]].expect = exp
			pendingBG = pendingBG[1:]
		}
	}
	if len(pendingBG) > 0 {
		t.Fatalf("docs/API.md:%d: a blocking watch whose reply the docs never give", out[pendingBG[0]].line)
	}
	return out
}

// TestAPIDocExamples runs every curl example of docs/API.md, in order, on
// a fresh server, and checks each reply against the one documented under
// it: byte for byte for successes (Till and TillMs, which depend on the
// clock, are checked against the request's LockDur instead), status and
// Code for errors. It runs twice: once as written (/db/{env}) and once
// with /db/ replaced by /req/, which must behave identically.
func TestAPIDocExamples(t *testing.T) {
	examples := parseDocExamples(t)
	if len(examples) < 12 {
		t.Fatalf("parsed only %d curl examples from docs/API.md; the parser or the docs lost some", len(examples))
	}
	for _, prefix := range []string{"/db/", "/req/"} {
		t.Run(strings.Trim(prefix, "/"), func(t *testing.T) {
			ts := newTestServer(t)
			var bg []*async
			var bgEx []docExample
			for _, ex := range examples {
				path := ex.path
				if strings.HasPrefix(path, "/db/") {
					path = prefix + strings.TrimPrefix(path, "/db/")
				}
				if ex.background {
					bg = append(bg, ts.start(path, ex.body))
					bgEx = append(bgEx, ex)
					// Give it a chance to park before the command that
					// wakes it; the reply is the same either way.
					waitUntil(t, "the watch reaches the server", func() bool { return ts.inflight.Load() > 0 })
					time.Sleep(20 * time.Millisecond)
					continue
				}
				before := time.Now().UnixMilli()
				r, err := ts.send(context.Background(), ex.method, path, ex.body)
				if err != nil {
					t.Fatalf("docs/API.md:%d: %s %s: %v", ex.line, ex.method, path, err)
				}
				after := time.Now().UnixMilli()
				checkDocReply(t, ex, r, before, after)
			}
			for i, a := range bg {
				checkDocReply(t, bgEx[i], a.wait(t), 0, 0)
			}
		})
	}
}

var tillRE = regexp.MustCompile(`"(Till|TillMs)":(\d+)`)

func checkDocReply(t *testing.T, ex docExample, r reply, before, after int64) {
	t.Helper()
	if ex.expect == "" {
		if r.Status != http.StatusOK {
			t.Errorf("docs/API.md:%d: %s %s: want 200, got %s", ex.line, ex.path, ex.body, r)
		}
		return
	}
	var want struct{ Code, Message string }
	if err := json.Unmarshal([]byte(ex.expect), &want); err != nil {
		t.Fatalf("docs/API.md:%d: %v", ex.line, err)
	}
	if want.Code != "" {
		status := map[string]int{"precondition_failed": 409, "duplicate_request": 409, "lock_lost": 409, "lock_timeout": 409,
			"lock_not_held": 404, "namespace_required": 400}[want.Code]
		if status == 0 {
			t.Fatalf("docs/API.md:%d: add the status of code %s to this test", ex.line, want.Code)
		}
		wantErr(t, r, status, want.Code)
		return
	}
	if r.Status != http.StatusOK {
		t.Errorf("docs/API.md:%d: %s %s\n got %s\nwant 200 %s", ex.line, ex.path, ex.body, r, ex.expect)
		return
	}
	got := string(bytes.TrimSuffix(r.Raw, []byte("\n")))
	if strings.HasPrefix(ex.path, "/admin/") {
		// The admin API's replies have fields of their own; a lock's
		// TillMs depends on the clock and is compared as 0.
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("docs/API.md:%d: Content-Type %q", ex.line, ct)
		}
		got = tillRE.ReplaceAllString(got, `"$1":0`)
		if want := tillRE.ReplaceAllString(ex.expect, `"$1":0`); got != want {
			t.Errorf("docs/API.md:%d: %s %s\n got %s\nwant %s", ex.line, ex.method, ex.path, got, want)
		}
		return
	}
	checkShape(t, r)
	if strings.Contains(ex.expect, `"TillMs"`) {
		d := ok(t, r)
		var req struct{ LockDur float64 }
		if err := json.Unmarshal([]byte(ex.body), &req); err != nil || req.LockDur == 0 {
			t.Fatalf("docs/API.md:%d: a lock example without LockDur: %s", ex.line, ex.body)
		}
		dur := int64(req.LockDur * 1000)
		if d.TillMs < before+dur || d.TillMs > after+dur || d.Till != d.TillMs/1000 {
			t.Errorf("docs/API.md:%d: Till %d, TillMs %d: want TillMs in [%d, %d] (now + LockDur) and Till = TillMs/1000",
				ex.line, d.Till, d.TillMs, before+dur, after+dur)
		}
		got = tillRE.ReplaceAllString(got, `"$1":0`)
		ex.expect = tillRE.ReplaceAllString(ex.expect, `"$1":0`)
	}
	if got != ex.expect {
		t.Errorf("docs/API.md:%d: %s %s\n got %s\nwant %s", ex.line, ex.path, ex.body, got, ex.expect)
	}
}

// TestDocExamplesParsed pins what the parser must find, so a change to the
// docs that silently drops examples from TestAPIDocExamples fails here.
func TestDocExamplesParsed(t *testing.T) {
	var paths []string
	withReply := 0
	for _, ex := range parseDocExamples(t) {
		paths = append(paths, ex.path)
		if ex.expect != "" {
			withReply++
		}
	}
	for _, want := range []string{"/db/my_env", "/watch/my_env"} {
		found := false
		for _, p := range paths {
			found = found || p == want
		}
		if !found {
			t.Errorf("no curl example for %s", want)
		}
	}
	if withReply < 10 {
		t.Errorf("only %d examples with a documented reply: %s", withReply, strconv.Quote(strings.Join(paths, " ")))
	}
}
