package httpapi_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/latchkv/latch/engine"
	"github.com/latchkv/latch/httpapi"
)

// TestBadInput sends a table of bad requests over real HTTP on loopback
// (the list, by group, is docs/API.md "What bad input gets") and checks,
// for every one:
//
//   - the exact status and stable Code, and a non-empty Message (a HEAD
//     reply has no body: its status, Allow and Content-Length are checked);
//   - that the server still serves, and that a fixed set of stored data in
//     namespace fx (KV entries with their versions, counters, a sequence,
//     a held lock and its handle, a used idempotency id) reads back
//     byte-for-byte the same, and that fx's revision did not move: the
//     probe that reads it back writes one key, whose version must be
//     exactly one above the previous probe's.
//
// The few well-formed requests in the table (duplicate fields, ignored
// Content-Types, bodies at the size limit, deep but legal nesting) pin
// what is accepted; the ones that write go to namespace scratch.
//
// The whole table then runs again, 20 times in all (LATCH_BADINPUT_RUNS;
// twice under -race or -short), checking fx after each run, and the heap in use after a GC must stay
// within badInputHeapSlack of what it was after the second run: a leak of
// even one body per run would show.
func TestBadInput(t *testing.T) {
	runs := 20
	if testing.Short() || raceEnabled {
		runs = 2
	}
	if s := os.Getenv("LATCH_BADINPUT_RUNS"); s != "" {
		runs, _ = strconv.Atoi(s)
	}
	// Small WAL segments keep the log's in-memory tail small, so the heap
	// check measures the server, not how full the current segment is.
	ts := newTestServerWith(t, engine.Config{SegmentSize: 256 << 10}, httpapi.DefaultLimits())
	fx := setupFixture(t, ts)
	cases := badInputCases(fx.handle)
	t.Logf("%d cases, %d runs", len(cases), runs)

	// The first runs check fx after every case; the rest, which are there
	// for the heap check, after every run (that is 4 requests fewer per
	// case, and one fsync).
	const verifiedRuns = 2
	var heapAfter []uint64
	for run := 0; run < runs; run++ {
		for _, c := range cases {
			r := ts.sendCase(t, c)
			if !c.judge(t, r) {
				t.Fatalf("run %d, case %q: see above", run, c.name)
			}
			if run < verifiedRuns {
				fx.verify(t, ts, c.name)
			}
		}
		fx.verify(t, ts, fmt.Sprintf("run %d", run))
		heapAfter = append(heapAfter, heapInUse())
	}
	t.Logf("heap in use after each run (MiB): %s", mib(heapAfter))
	if runs > 2 {
		base, last := heapAfter[1], heapAfter[len(heapAfter)-1]
		if last > base+badInputHeapSlack {
			t.Fatalf("heap in use grew from %s to %s MiB over %d runs of the table", mib(heapAfter[1:2]), mib([]uint64{last}), runs-2)
		}
	}
}

// badInputHeapSlack is how much the heap may grow between the second and
// the last run: room for the WAL's current segment (256 KiB here), the
// body pool and GC noise, far below one leaked 1 MiB body per run.
const badInputHeapSlack = 8 << 20

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

func mib(v []uint64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = fmt.Sprintf("%.1f", float64(x)/(1<<20))
	}
	return strings.Join(s, " ")
}

// badCase is one request of the table and what it must get.
type badCase struct {
	name    string
	method  string            // "" is POST
	path    string            // "" is /db/fx
	body    string            //
	header  map[string]string // request headers; Content-Type is application/json unless set here ("" drops it)
	chunked bool              // send the body chunked, with no Content-Length
	status  int               //
	code    string            // the error Code; "" for a 200
	allow   string            // for a 405: the Allow header
	want    string            // for a 200: the exact body, if not ""
	check   func(t testing.TB, d dbReply)
}

// judge checks the reply; it reports false after t.Error-ing.
func (c badCase) judge(t *testing.T, r reply) bool {
	t.Helper()
	if r.Status != c.status {
		t.Errorf("%s %s %.120q: want %d %s, got %.300s", c.method, c.path, c.body, c.status, c.code, r)
		return false
	}
	if c.allow != "" && r.Header.Get("Allow") != c.allow {
		t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, r.Header.Get("Allow"), c.allow)
		return false
	}
	if c.method == http.MethodHead {
		// No body comes back; the headers still say what was sent.
		n, _ := strconv.Atoi(r.Header.Get("Content-Length"))
		if len(r.Raw) != 0 || n < len(`{"Code":"","Message":""}`) || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("HEAD %s: body %q, Content-Length %q, Content-Type %q", c.path, r.Raw, r.Header.Get("Content-Length"), r.Header.Get("Content-Type"))
			return false
		}
		return true
	}
	if c.code != "" {
		wantErr(t, r, c.status, c.code)
		return true
	}
	d := ok(t, r)
	if c.want != "" {
		rawIs(t, r, c.want)
	}
	if c.check != nil {
		c.check(t, d)
	}
	return true
}

// sendCase sends c and returns the reply, failing on a transport error.
func (ts *testServer) sendCase(t *testing.T, c badCase) reply {
	t.Helper()
	method, path := c.method, c.path
	if method == "" {
		method = http.MethodPost
	}
	if path == "" {
		path = "/db/fx"
	}
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req, err := http.NewRequestWithContext(ctx, method, ts.url+path, body)
	if err != nil {
		t.Fatalf("case %q: %v", c.name, err)
	}
	if c.chunked {
		req.Body = io.NopCloser(struct{ io.Reader }{strings.NewReader(c.body)})
		req.ContentLength = -1
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range c.header {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatalf("case %q: %s %s: %v", c.name, method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("case %q: reading the reply: %v", c.name, err)
	}
	return reply{Status: resp.StatusCode, Header: resp.Header, Raw: raw}
}

// fixture is the data stored in namespace fx before the table runs.
type fixture struct {
	handle uint64 // of lock L
	probes int    // probes sent so far
}

// fxRevision is fx's revision after setupFixture.
const fxRevision = 4

func setupFixture(t *testing.T, ts *testServer) *fixture {
	t.Helper()
	// A first lock, released, so that L's handle is not 1: a case that
	// defaulted a handle to 1 would then not release L by chance.
	first := ok(t, ts.post(t, "/db/setup", `{"LockID":"L","LockDur":60}`))
	rawIs(t, ts.post(t, "/db/setup", unlockBody("L", first.Lock)), `{}`)
	for _, body := range []string{
		`{"KVSet":[{"Key":"k1","Value":{"a": [1, 2.50, "x"]}},{"Key":"k2","Value":"two"}]}`,
		`{"KVSet":[{"Key":"k1","Value":[ true , null ]},{"Key":"gone","Value":0}]}`,
		`{"KVSet":[{"Key":"gone","Delete":true}]}`,
		`{"IdempotencyIDs":["idem1"],"KVSet":[{"Key":"k3","Value":"\u00e9\n"}],"Atomic":[{"Key":"c1","Add":42},{"Key":"c2","Set":-7}],"Seq":[{"Key":"s","Count":10}]}`,
	} {
		ok(t, ts.post(t, "/db/fx", body))
	}
	l := ok(t, ts.post(t, "/db/fx", `{"LockID":"L","LockDur":3600}`))
	if l.Lock < 2 {
		t.Fatalf("fixture lock handle %d", l.Lock)
	}
	fx := &fixture{handle: l.Lock}
	fx.verify(t, ts, "setup")
	return fx
}

// verify asserts that fx holds exactly the fixture data. It writes only
// the probe key, and takes one id from sequence s.
func (fx *fixture) verify(t *testing.T, ts *testServer, after string) {
	t.Helper()
	fx.probes++
	n := fx.probes
	r := ts.post(t, "/db/fx", fmt.Sprintf(`{"KVSet":[{"Key":"probe","Value":%d}],"KVGet":["k1","k2","k3","gone","probe"],"Atomic":[{"Key":"c1"},{"Key":"c2"}],"Seq":[{"Key":"s"}]}`, n))
	want := fmt.Sprintf(`{"KV":[{"Key":"k1","Value":[ true , null ],"Version":2},{"Key":"k2","Value":"two","Version":1},`+
		`{"Key":"k3","Value":"\u00e9\n","Version":4},{"Key":"gone","Value":null,"Version":0},{"Key":"probe","Value":%d,"Version":%d}],`+
		`"Atomic":[{"Key":"c1","Value":42},{"Key":"c2","Value":-7}],"Seq":[{"Key":"s","First":%d,"Last":%d}]}`,
		n, fxRevision+n, 10+n, 10+n)
	if got := string(bytes.TrimSuffix(r.Raw, []byte("\n"))); r.Status != http.StatusOK || got != want {
		t.Fatalf("after %q, fx changed (or its revision moved):\n got %s\nwant %s", after, r, want)
	}
	// L is still held by the same handle: the unlock check passes, and
	// the failing IfEq behind it keeps anything from applying.
	wantErr(t, ts.post(t, "/db/fx", fmt.Sprintf(`{"UnlockID":"L","Unlock":%d,"Atomic":[{"Key":"c1","IfEq":-1}]}`, fx.handle)),
		http.StatusConflict, httpapi.CodePreconditionFailed)
	wantErr(t, ts.post(t, "/db/fx", `{"LockID":"L","LockDurMs":1000}`), http.StatusConflict, httpapi.CodeLockTimeout)
	wantErr(t, ts.post(t, "/db/fx", `{"IdempotencyIDs":["idem1"]}`), http.StatusConflict, httpapi.CodeDuplicateRequest)
	if h := ts.eng.LastHandle(); h != fx.handle {
		t.Fatalf("after %q, the last handle issued is %d, want %d", after, h, fx.handle)
	}
}

// nested returns n opening brackets, then n closing ones.
func nested(n int, open, close string) string {
	return strings.Repeat(open, n) + strings.Repeat(close, n)
}

// pad returns head + x... + tail, exactly n bytes long.
func pad(head, tail string, n int) string {
	return head + strings.Repeat("x", n-len(head)-len(tail)) + tail
}

func gzipped(s string) string {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s)) //nolint:errcheck // a bytes.Buffer does not fail
	w.Close()
	return b.String()
}

// badInputCases is the table; handle is fx's lock L.
func badInputCases(handle uint64) []badCase {
	const (
		bad      = http.StatusBadRequest
		badJSON  = httpapi.CodeBadJSON
		unknown  = httpapi.CodeUnknownField
		k2Reply  = `{"KV":[{"Key":"k2","Value":"two","Version":1}]}`
		readK2   = `{"KVGet":["k2"]}`
		evilSet  = `{"KVSet":[{"Key":"k1","Value":"evil"}]}`
		notFound = http.StatusNotFound
	)
	lim := httpapi.DefaultLimits()
	max := int(lim.MaxBodyBytes)
	var cases []badCase
	add := func(name, body string, status int, code string) {
		cases = append(cases, badCase{name: name, body: body, status: status, code: code})
	}
	addAt := func(name, path, body string, status int, code string) {
		cases = append(cases, badCase{name: name, path: path, body: body, status: status, code: code})
	}
	accept := func(name, path, body, want string) {
		cases = append(cases, badCase{name: name, path: path, body: body, status: http.StatusOK, want: want})
	}

	// Truncated JSON: a request that would change every part of fx, cut
	// at several points (inside names, strings, numbers, between items).
	full := `{"KVSet":[{"Key":"k1","Value":{"evil":[1,2]}}],"Atomic":[{"Key":"c1","Add":1}],"Seq":[{"Key":"s","Count":5}],"UnlockID":"L","Unlock":` +
		strconv.FormatUint(handle, 10) + `}`
	for _, cut := range []int{1, 2, 5, 12, 30, len(full) / 2, len(full) - 9, len(full) - 1} {
		add(fmt.Sprintf("truncated at %d of %d", cut, len(full)), full[:cut], bad, badJSON)
	}
	add("truncated inside a \\u escape", `{"KVGet":["k\u00`, bad, badJSON)
	add("truncated after a name", `{"KVGet"`, bad, badJSON)
	addAt("truncated watch", "/watch/fx", `{"ID":"k1","Vers`, bad, badJSON)

	// Wrong types, for every field of both routes.
	for _, b := range []string{
		`{"LockID":5,"LockDur":1}`, `{"LockID":true,"LockDur":1}`, `{"LockID":["L"],"LockDur":1}`,
		`{"LockID":"L2","LockDur":"5"}`, `{"LockID":"L2","LockDur":[5]}`,
		`{"LockID":"L2","LockDurMs":"1000"}`, `{"LockID":"L2","LockDurMs":{}}`,
		`{"LockID":"L2","LockDur":5,"LockWait":"1"}`, `{"LockID":"L2","LockDur":5,"LockWaitMs":false}`,
		`{"UnlockID":7,"Unlock":1}`, `{"UnlockID":"L","Unlock":true}`, `{"UnlockID":"L","Unlock":[1]}`,
		`{"UnlockID":"L","Unlock":{}}`, `{"UnlockID":"L","Unlock":"abc"}`, `{"UnlockID":"L","Unlock":"+5"}`,
		`{"UnlockID":"L","Unlock":-1}`, `{"UnlockID":"L","Unlock":0}`,
		`{"KVSet":"k1"}`, `{"KVSet":5}`, `{"KVSet":[5]}`, `{"KVSet":[["k1","evil"]]}`,
		`{"KVSet":[{"Key":5,"Value":"evil"}]}`, `{"KVSet":[{"Key":"k1","Value":"evil","Delete":"no"}]}`,
		`{"KVSet":[{"Key":"k1","Delete":1}]}`,
		`{"KVGet":5}`, `{"KVGet":[5]}`, `{"KVGet":[["k1"]]}`, `{"KVGet":[{"Key":5}]}`, `{"KVGet":true}`,
		`{"Atomic":"c1"}`, `{"Atomic":[{"Key":1,"Add":1}]}`, `{"Atomic":[{"Key":"c1","Add":"1"}]}`,
		`{"Atomic":[{"Key":"c1","Set":true}]}`, `{"Atomic":[{"Key":"c1","Add":1,"IfEq":"42"}]}`,
		`{"Seq":"s"}`, `{"Seq":[{"Key":false}]}`, `{"Seq":[{"Key":"s","Count":"1"}]}`,
		`{"IdempotencyIDs":5}`, `{"IdempotencyIDs":[{}]}`, `{"IdempotencyIDs":[["x"]]}`,
	} {
		add("wrong type "+b, b, bad, badJSON)
	}
	for _, b := range []string{
		`{"ID":5}`, `{"Key":["k1"]}`, `{"ID":"k1","Version":"1"}`, `{"ID":"k1","Version":true}`,
		`{"ID":"k1","Timeout":"1"}`, `{"ID":"k1","TimeoutMs":[1]}`,
	} {
		addAt("wrong type in a watch "+b, "/watch/fx", b, bad, badJSON)
	}

	// Numbers out of range, or floats where integers go.
	for _, b := range []string{
		`{"LockID":"L2","LockDur":1e400}`, `{"LockID":"L2","LockDurMs":18446744073709551616}`,
		`{"LockID":"L2","LockDurMs":1.5}`, `{"LockID":"L2","LockDurMs":1e3}`, `{"LockID":"L2","LockDur":5,"LockWaitMs":0.5}`,
		`{"UnlockID":"L","Unlock":18446744073709551616}`, `{"UnlockID":"L","Unlock":1.5}`, `{"UnlockID":"L","Unlock":1e1}`,
		`{"Atomic":[{"Key":"c1","Add":9223372036854775808}]}`, `{"Atomic":[{"Key":"c1","Set":-9223372036854775809}]}`,
		`{"Atomic":[{"Key":"c1","Add":1.5}]}`, `{"Atomic":[{"Key":"c1","Add":1e2}]}`, `{"Atomic":[{"Key":"c1","Set":1,"IfEq":42.0}]}`,
		`{"Seq":[{"Key":"s","Count":18446744073709551616}]}`, `{"Seq":[{"Key":"s","Count":-1}]}`, `{"Seq":[{"Key":"s","Count":1.5}]}`,
	} {
		add("number "+b, b, bad, badJSON)
	}
	for _, b := range []string{`{"ID":"k1","Version":18446744073709551616}`, `{"ID":"k1","Version":-1}`, `{"ID":"k1","Version":1.5}`,
		`{"ID":"k1","Timeout":1e400}`, `{"ID":"k1","TimeoutMs":0.5}`} {
		addAt("number in a watch "+b, "/watch/fx", b, bad, badJSON)
	}
	add("LockDur -0", `{"LockID":"L2","LockDur":-0}`, bad, httpapi.CodeDurationRequired)
	add("LockDurMs -0", `{"LockID":"L2","LockDurMs":-0}`, bad, httpapi.CodeDurationRequired)
	add("LockDur below a millisecond", `{"LockID":"L2","LockDur":1e-320}`, bad, httpapi.CodeDurationRequired)
	add("LockDur 1e308", `{"LockID":"L2","LockDur":1e308}`, bad, httpapi.CodeInvalidDuration)
	add("LockWait 1e308", `{"LockID":"L2","LockDur":1,"LockWait":1e308}`, bad, httpapi.CodeInvalidDuration)
	add("LockDurMs max int64", `{"LockID":"L2","LockDurMs":9223372036854775807}`, bad, httpapi.CodeInvalidDuration)
	add("Seq Count 2^64-1", `{"Seq":[{"Key":"s","Count":18446744073709551615}]}`, bad, httpapi.CodeInvalidRequest)
	addAt("watch Timeout 1e308", "/watch/fx", `{"ID":"k1","Timeout":1e308}`, bad, httpapi.CodeInvalidDuration)
	addAt("watch TimeoutMs max int64", "/watch/fx", `{"ID":"k1","TimeoutMs":9223372036854775807}`, bad, httpapi.CodeInvalidDuration)

	// Negative durations.
	for _, b := range []string{`{"LockID":"L2","LockDur":-1}`, `{"LockID":"L2","LockDurMs":-1}`,
		`{"LockID":"L2","LockDur":1,"LockWait":-0.001}`, `{"LockID":"L2","LockDur":1,"LockWaitMs":-1}`} {
		add("negative "+b, b, bad, httpapi.CodeInvalidDuration)
	}
	for _, b := range []string{`{"ID":"k1","Timeout":-1}`, `{"ID":"k1","TimeoutMs":-1}`, `{"ID":"k1","Timeout":-1e-9}`} {
		addAt("negative in a watch "+b, "/watch/fx", b, bad, httpapi.CodeInvalidDuration)
	}

	// Deep nesting: encoding/json stops at 10,000 levels without
	// recursion; at 9,000 a Value is accepted and kept byte-exact.
	add("Value of 10,000 nested arrays", `{"KVSet":[{"Key":"k1","Value":`+nested(10000, "[", "]")+`}]}`, bad, badJSON)
	add("Value of 10,000 nested objects", `{"KVSet":[{"Key":"k1","Value":`+nested(10000, `{"a":`, "}")+`}]}`, bad, badJSON)
	add("KVGet of 10,000 nested arrays", `{"KVGet":`+nested(10000, "[", "]")+`}`, bad, badJSON)
	add("Atomic of 10,000 nested arrays", `{"Atomic":`+nested(10000, "[", "]")+`}`, bad, badJSON)
	add("unknown field holding 5,000 nested arrays", `{"Bogus":`+nested(5000, "[", "]")+`}`, bad, unknown)
	add("KVGet of 5,000 nested arrays", `{"KVGet":`+nested(5000, "[", "]")+`}`, bad, badJSON)
	add("100,000 unclosed arrays", `{"KVSet":[{"Key":"k1","Value":`+strings.Repeat("[", 100000), bad, badJSON)
	add("a body of 1 MiB of [", strings.Repeat("[", max), bad, badJSON)
	addAt("watch ID of 10,000 nested arrays", "/watch/fx", `{"ID":`+nested(10000, "[", "]")+`}`, bad, badJSON)
	deep := nested(9000, "[", "]")
	cases = append(cases, badCase{name: "Value of 9,000 nested arrays is accepted", path: "/db/scratch",
		body: `{"KVSet":[{"Key":"deep","Value":` + deep + `}],"KVGet":["deep"]}`, status: http.StatusOK,
		check: func(t testing.TB, d dbReply) {
			if len(d.KV) != 1 || string(d.KV[0].Value) != deep {
				t.Fatalf("deep value not returned byte-exact (%d items)", len(d.KV))
			}
		}})

	// Duplicate fields: the last one wins, at every level and across
	// spellings, as in encoding/json; every one must be well-typed.
	for _, c := range []struct{ body, want string }{
		{`{"KVGet":["k1"],"KVGet":["k2"]}`, k2Reply},
		{`{"KVGet":["k1"],"kvget":["k2"]}`, k2Reply},
		{`{"KVGet":[{"Key":"k1","key":"k2"}]}`, k2Reply},
		{`{"KVSet":[{"Key":"k1","Value":"evil"}],"KVSet":null}`, `{}`},
		{`{"KVSet":[{"Key":"k1","Value":"evil"}],"KVSET":[]}`, `{}`},
		{`{"Atomic":[{"Key":"c1","Add":5}],"Atomic":[{"Key":"c1"}]}`, `{"Atomic":[{"Key":"c1","Value":42}]}`},
		{`{"Atomic":[{"Key":"c1","Add":5,"Add":0}]}`, `{"Atomic":[{"Key":"c1","Value":42}]}`},
		{`{"Seq":[{"Key":"s"}],"Seq":null,"KVGet":["k2"]}`, k2Reply},
	} {
		accept("duplicate "+c.body, "", c.body, c.want)
	}
	add("duplicate LockID, the last null", `{"LockID":"L","LockDur":5,"LockID":null}`, bad, httpapi.CodeInvalidRequest)
	add("duplicate Unlock, the last wrong", fmt.Sprintf(`{"UnlockID":"L","Unlock":%d,"Unlock":999999,"KVSet":[{"Key":"k1","Value":"evil"}]}`, handle),
		http.StatusConflict, httpapi.CodeLockLost)
	add("duplicate Delete, the last false", `{"KVSet":[{"Key":"k1","Delete":true,"Delete":false}]}`, bad, httpapi.CodeValueRequired)
	add("duplicate KVGet, the first wrongly typed", `{"KVGet":5,"KVGet":["k1"]}`, bad, badJSON)
	add("duplicate KVGet, the last wrongly typed", `{"KVGet":["k1"],"KVGet":5}`, bad, badJSON)
	accept("duplicate watch ID", "/watch/fx", `{"ID":"k1","ID":"k2","Version":0}`, `{"Key":"k2","Value":"two","Version":1}`)

	// Unknown fields.
	for _, b := range []string{
		`{"Bogus":1}`, `{"LockDuration":5,"LockID":"L2"}`, `{"KVSet":[{"Key":"k1","Value":"evil","TTL":5}]}`,
		`{"KVSet":{"Key":"k1","Value":"evil","TTL":5}}`, `{"Atomic":[{"Key":"c1","Inc":1}]}`, `{"Seq":[{"Key":"s","N":1}]}`,
		`{"KVGet":[{"Key":"k1","Version":1}]}`, `{"IdempotencyIDs":["x"],"IdempotencyID":"y"}`,
		`{"KVGet\u0000":["k1"]}`, `{"":1}`, `{"Lock ID":"L2","LockDur":1}`,
	} {
		add("unknown field "+b, b, bad, unknown)
	}
	addAt("unknown field in a watch", "/watch/fx", `{"ID":"k1","Wait":1}`, bad, unknown)

	// Invalid UTF-8 anywhere, and NUL.
	for _, b := range []string{
		"{\"KVSet\":[{\"Key\":\"k1\xff\",\"Value\":\"evil\"}]}", "{\"KVSet\":[{\"Key\":\"k1\",\"Value\":\"\xfe\"}]}",
		"{\"KVGet\":[\"k\xff\"]}", "{\"KVGet\":[\"\xc0\xaf\"]}", "{\"KVGet\":[\"\xed\xa0\x80\"]}", "{\"KVGet\":[\"k2\xe2\x82\"]}",
		"{\"K\xffVGet\":[\"k1\"]}", "{\"LockID\":\"L\xff\",\"LockDur\":1}", "{\"IdempotencyIDs\":[\"idem1\xff\"]}",
		"{\"KVGet\":[\"k2\"]}\xff",
	} {
		add(fmt.Sprintf("invalid UTF-8 %q", b), b, bad, badJSON)
	}
	addAt("invalid UTF-8 in a watch ID", "/watch/fx", "{\"ID\":\"k1\xff\"}", bad, badJSON)
	add("raw NUL inside a string", "{\"KVGet\":[\"k\x00\"]}", bad, badJSON)
	add("raw NUL after the object", "{\"KVGet\":[\"k2\"]}\x00", bad, badJSON)
	accept("escaped NUL in a key", "/db/scratch", `{"KVSet":[{"Key":"n\u0000ul","Value":1}],"KVGet":["n\u0000ul","n"]}`, "")
	cases[len(cases)-1].check = func(t testing.TB, d dbReply) {
		if len(d.KV) != 2 || d.KV[0].Key != "n\x00ul" || string(d.KV[0].Value) != "1" || d.KV[1].Version != 0 {
			t.Fatalf("NUL key: %+v", d.KV)
		}
	}
	accept("escaped lone surrogate in a Value", "/db/scratch", `{"KVSet":[{"Key":"sur","Value":"\ud800"}],"KVGet":["sur"]}`, "")
	cases[len(cases)-1].check = func(t testing.TB, d dbReply) {
		if len(d.KV) != 1 || string(d.KV[0].Value) != `"\ud800"` {
			t.Fatalf("lone surrogate value: %+v", d.KV)
		}
	}

	// An escaped lone surrogate anywhere but in a Value: encoding/json
	// would read each as U+FFFD, making "\ud800" and "\udfff" one key.
	for _, b := range []string{
		`{"KVSet":[{"Key":"\ud800","Value":"evil"}]}`, `{"KVSet":[{"Key":"k\udfff","Value":1}]}`,
		`{"KVGet":["\uDBFF"]}`, `{"KVGet":[{"Key":"\ud800x"}]}`, `{"KVGet":["\ud800\u0041"]}`,
		`{"KVGet":["\ud800\ud800"]}`, `{"KVGet":["\udc00\ud800"]}`, `{"Atomic":[{"Key":"\ud801","Add":1}]}`,
		`{"Seq":[{"Key":"\udabc"}]}`, `{"LockID":"\ud800","LockDur":1}`, `{"UnlockID":"L\udc00","Unlock":1}`,
		`{"IdempotencyIDs":["\ud800"]}`, `{"KVGet\ud800":["k1"]}`,
		`{"KVSet":[{"Value":"\ud800","Key":"\ud800"}]}`,
	} {
		add("lone surrogate "+b, b, bad, badJSON)
	}
	addAt("lone surrogate in a watch ID", "/watch/fx", `{"ID":"\ud800"}`, bad, badJSON)
	accept("surrogate pair in a key", "/db/scratch", `{"KVSet":[{"Key":"pair\ud83d\ude00","Value":1}],"KVGet":["pair😀"]}`, "")
	cases[len(cases)-1].check = func(t testing.TB, d dbReply) {
		if len(d.KV) != 1 || d.KV[0].Key != "pair\U0001F600" || d.KV[0].Version == 0 {
			t.Fatalf("surrogate pair key: %+v", d.KV)
		}
	}
	accept("lone surrogates deep in a Value, an escaped backslash before u in a key", "/db/scratch",
		`{"KVSet":[{"value":{"a":["\udc00",{"Key":"\ud800"}]},"Key":"b\\ud800"}],"KVGet":["b\\ud800"]}`, "")
	cases[len(cases)-1].check = func(t testing.TB, d dbReply) {
		if len(d.KV) != 1 || d.KV[0].Key != `b\ud800` || string(d.KV[0].Value) != `{"a":["\udc00",{"Key":"\ud800"}]}` {
			t.Fatalf("Value with lone surrogates: %+v %s", d.KV, d.KV[0].Value)
		}
	}

	// Body shapes: empty, blank, not an object, more than one value.
	add("empty body", "", bad, badJSON)
	add("whitespace only", " \t\r\n ", bad, badJSON)
	addAt("empty watch body", "/watch/fx", "", bad, badJSON)
	addAt("whitespace-only watch body", "/watch/fx", "\n\n", bad, badJSON)
	accept("null is the empty request", "", `null`, `{}`)
	for _, b := range []string{`[]`, `[` + evilSet + `]`, `"str"`, `1`, `true`, "\xef\xbb\xbf{}"} {
		add("not an object "+b, b, bad, badJSON)
	}
	for _, b := range []string{evilSet + readK2, evilSet + ` 1`, "{}\n{}", `{} x`, `{}]`, evilSet + `,{}`} {
		add("a second value "+b, b, bad, badJSON)
	}
	addAt("a second value in a watch", "/watch/fx", `{"ID":"k1"}{}`, bad, badJSON)

	// Content-Type is not looked at (curl -d sends a form type); a
	// Content-Encoding is not supported.
	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/json; charset=utf-16"} {
		cases = append(cases, badCase{name: "Content-Type " + ct, body: readK2, header: map[string]string{"Content-Type": ct},
			status: http.StatusOK, want: k2Reply})
	}
	cases = append(cases, badCase{name: "gzip body", body: gzipped(evilSet), header: map[string]string{"Content-Encoding": "gzip"},
		status: bad, code: badJSON})

	// Sizes: at the limit, one over, far over, and chunked.
	atLimit := pad(`{"KVSet":[{"Key":"big","Value":"`, `"}]}`, max)
	over := pad(`{"KVSet":[{"Key":"k1","Value":"`, `"}]}`, max+1)
	cases = append(cases,
		badCase{name: "body at the limit", path: "/db/scratch", body: atLimit, status: http.StatusOK, want: `{}`},
		badCase{name: "body one over the limit", body: over, status: http.StatusRequestEntityTooLarge, code: httpapi.CodeBodyTooLarge},
		badCase{name: "body 4x the limit", body: pad(`{"KVSet":[{"Key":"k1","Value":"`, `"}]}`, 4*max), status: http.StatusRequestEntityTooLarge, code: httpapi.CodeBodyTooLarge},
		badCase{name: "chunked body at the limit", path: "/db/scratch", body: atLimit, chunked: true, status: http.StatusOK, want: `{}`},
		badCase{name: "chunked body one over the limit", body: over, chunked: true, status: http.StatusRequestEntityTooLarge, code: httpapi.CodeBodyTooLarge},
		badCase{name: "chunked body 4x the limit", body: pad(`{"KVSet":[{"Key":"k1","Value":"`, `"}]}`, 4*max), chunked: true, status: http.StatusRequestEntityTooLarge, code: httpapi.CodeBodyTooLarge},
		badCase{name: "chunked small body", body: readK2, chunked: true, status: http.StatusOK, want: k2Reply},
		badCase{name: "watch body one over the limit", path: "/watch/fx", body: pad(`{"ID":"`, `"}`, max+1), status: http.StatusRequestEntityTooLarge, code: httpapi.CodeBodyTooLarge},
	)

	// Namespaces.
	for _, p := range []string{"/db/" + strings.Repeat("n", lim.MaxNamespaceBytes+1), "/db/a%20b", "/db/a%2Fb", "/db/%C3%A9",
		"/db/a%00b", "/db/a*b", "/db/%2e%2e", "/db/%2e", "/watch/a%09b", "/req/f%78%22"} {
		addAt("namespace "+p[:min(len(p), 40)], p, readK2, bad, httpapi.CodeInvalidNamespace)
	}
	for _, p := range []string{"/db/", "/req/", "/watch/"} {
		addAt("empty namespace "+p, p, readK2, notFound, httpapi.CodeNotFound)
	}
	accept("namespace at the length limit", "/db/"+strings.Repeat("n", lim.MaxNamespaceBytes), readK2,
		`{"KV":[{"Key":"k2","Value":null,"Version":0}]}`)
	accept("percent-encoded namespace", "/db/%66x", readK2, k2Reply)
	accept("percent-encoded route", "/%64b/fx", readK2, k2Reply)

	// Unknown routes, non-canonical paths, a very long URL.
	for _, p := range []string{"/", "/nope", "/db", "/db/fx/extra", "/db/fx/", "/DB/fx", "/watch", "/admin", "/admin/nope", "/dbx/fx",
		"/db%2Ffx", "/db/../db/fx", "/db/./fx", "//db/fx", "/db//fx", "/db/fx/..", "/db/fx/.", "/db/%2e%2e/fx", "/x/../db/fx",
		"/" + strings.Repeat("x", 30000)} {
		addAt("route "+p[:min(len(p), 40)], p, evilSet, notFound, httpapi.CodeNotFound)
	}
	cases = append(cases, badCase{name: "GET an unknown route", method: http.MethodGet, path: "/nope", status: notFound, code: httpapi.CodeNotFound})
	addAt("very long namespace", "/db/"+strings.Repeat("a", 16000), evilSet, bad, httpapi.CodeInvalidNamespace)
	accept("a long query string is ignored", "/db/fx?q="+strings.Repeat("x", 30000), readK2, k2Reply)

	// Wrong methods on every route.
	for _, p := range []string{"/db/fx", "/req/fx", "/watch/fx"} {
		for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodHead, http.MethodOptions} {
			cases = append(cases, badCase{name: m + " " + p, method: m, path: p, body: evilSet,
				status: http.StatusMethodNotAllowed, code: httpapi.CodeMethodNotAllowed, allow: http.MethodPost})
		}
	}
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodHead, http.MethodOptions} {
		cases = append(cases, badCase{name: m + " /admin/snapshot", method: m, path: "/admin/snapshot",
			status: http.StatusMethodNotAllowed, code: httpapi.CodeMethodNotAllowed, allow: http.MethodGet})
	}
	return cases
}
