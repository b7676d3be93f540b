package httpapi_test

import (
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/latchkv/latch/engine"
	"github.com/latchkv/latch/httpapi"
)

// storeBigValue stores one value of about 900 KB under key (under the
// default 1 MiB body and value limits) and returns the value's JSON.
func storeBigValue(t *testing.T, ts *testServer, ns, key string) string {
	t.Helper()
	value := `"` + strings.Repeat("a", 900_000) + `"`
	ok(t, ts.post(t, "/db/"+ns, `{"KVSet":[{"Key":"`+key+`","Value":`+value+`}]}`))
	return value
}

// kvGetBody asks for key n times, plus extra fields before KVGet.
func kvGetBody(extra, key string, n int) string {
	keys := strings.TrimSuffix(strings.Repeat(`"`+key+`",`, n), ",")
	return `{` + extra + `"KVGet":[` + keys + `]}`
}

// TestReplyBoundedByMaxReplyBytes: a 3 KB request naming one 900 KB value
// 100 times asks for a 90 MB reply. It must fail with reply_too_large
// before the reply is built: the process allocates far less than the
// reply it refused (runtime.MemStats.TotalAlloc counts every byte
// allocated, the server's and this client's).
func TestReplyBoundedByMaxReplyBytes(t *testing.T) {
	ts := newTestServer(t)
	storeBigValue(t, ts, "r", "big")
	body := kvGetBody("", "big", 100)

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r := ts.post(t, "/db/r", body)
	runtime.ReadMemStats(&after)
	grew := after.TotalAlloc - before.TotalAlloc

	if r.Status == http.StatusOK {
		t.Fatalf("a %d-byte request got a %d-byte reply; want 400 reply_too_large (--max-reply-bytes)", len(body), len(r.Raw))
	}
	msg := wantErr(t, r, http.StatusBadRequest, "reply_too_large")
	if !strings.Contains(msg, "--max-reply-bytes") {
		t.Errorf("the message does not name the flag: %q", msg)
	}
	if grew > 8<<20 {
		t.Errorf("refusing the reply allocated %d bytes; it must not build the 90 MB reply first", grew)
	}

	// Under the bound the same read works: 10 copies are 9 MB.
	got := ok(t, ts.post(t, "/db/r", kvGetBody("", "big", 10)))
	if len(got.KV) != 10 || len(got.KV[9].Value) != 900_002 {
		t.Fatalf("10 reads of the 900 KB value: got %d items", len(got.KV))
	}
}

// TestReplyTooLargeAppliesNothing: KVGet sees the request's own writes,
// so the bound is checked while the request is evaluated, before any of
// its effects apply. A request that writes and then reads too much
// changes nothing, and its counter add, sequence and idempotency id are
// not used up.
func TestReplyTooLargeAppliesNothing(t *testing.T) {
	ts := newTestServer(t)
	storeBigValue(t, ts, "r", "big")
	extra := `"KVSet":[{"Key":"new","Value":1}],"Atomic":[{"Key":"c","Add":1}],"Seq":[{"Key":"s","Count":1}],"IdempotencyIDs":["once"],`
	r := ts.post(t, "/db/r", kvGetBody(extra, "big", 100))
	if r.Status == http.StatusOK {
		t.Fatalf("a request that reads 90 MB got a %d-byte 200 reply; want 400 reply_too_large", len(r.Raw))
	}
	wantErr(t, r, http.StatusBadRequest, "reply_too_large")

	got := ok(t, ts.post(t, "/db/r", `{"KVGet":["new"],"Atomic":[{"Key":"c"}],"Seq":[{"Key":"s","Count":1}]}`))
	if got.KV[0].Version != 0 || got.Atomic[0].Value != 0 || got.Seq[0].First != 1 {
		t.Fatalf("the refused request applied something: %+v", got)
	}
	// The idempotency id is still free.
	ok(t, ts.post(t, "/db/r", `{"IdempotencyIDs":["once"]}`))
}

// TestMaxReplyBytesCountsEachRead: the bound is the limit's own number,
// not a fixed one: with --max-reply-bytes at 2 MB, three reads of the
// 900 KB value fail and two pass.
func TestMaxReplyBytesCountsEachRead(t *testing.T) {
	lim := httpapi.DefaultLimits()
	lim.MaxReplyBytes = 2_000_000
	ts := newTestServerWith(t, engine.Config{}, lim)
	storeBigValue(t, ts, "r", "big")
	ok(t, ts.post(t, "/db/r", kvGetBody("", "big", 2)))
	msg := wantErr(t, ts.post(t, "/db/r", kvGetBody("", "big", 3)), http.StatusBadRequest, "reply_too_large")
	if !strings.Contains(msg, fmt.Sprint(2_000_000)) {
		t.Errorf("the message does not give the limit: %q", msg)
	}
}
