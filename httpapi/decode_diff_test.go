package httpapi

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/latchkv/latch/engine"
)

// The one-pass decoder (wiredecode.go) is held to the encoding/json one
// it replaced (decode_ref_test.go): for any body, under the default and
// under tight limits, on both routes, the two must both accept, with the
// same request, or both refuse, with the same status, code and message.
// The one difference allowed: an empty KVGet or IdempotencyIDs list may
// be nil in one and empty in the other, as it already was between the
// old decoder's two paths; nothing downstream tells them apart.

// diffDecode returns "" if both decoders agree on body under lim, else
// what differs.
func diffDecode(lim Limits, body []byte) string {
	// The new decoder reads a copy that is then overwritten, as the
	// server's pooled buffer is: what it returns must not alias it.
	buf := bytes.Clone(body)
	got, gotErr := lim.decodeRequest(buf)
	for i := range buf {
		buf[i] = 0xff
	}
	want, wantErr := lim.refDecodeRequest(body)
	if d := diffOutcome(got, gotErr, want, wantErr, normalRequest); d != "" {
		return fmt.Sprintf("/db %q: %s", body, d)
	}
	buf = bytes.Clone(body)
	gotW, gotErr := lim.decodeWatch(buf)
	for i := range buf {
		buf[i] = 0xff
	}
	wantW, wantErr := lim.refDecodeWatch(body)
	if d := diffOutcome(gotW, gotErr, wantW, wantErr, func(w *watchRequest) any { return *w }); d != "" {
		return fmt.Sprintf("/watch %q: %s", body, d)
	}
	return ""
}

func diffOutcome[T any](got T, gotErr error, want T, wantErr error, normal func(T) any) string {
	switch {
	case gotErr == nil && wantErr == nil:
		if a, b := normal(got), normal(want); !reflect.DeepEqual(a, b) {
			return fmt.Sprintf("accepted differently:\n new %#v\n old %#v", a, b)
		}
	case gotErr != nil && wantErr != nil:
		gs, gc, gm := classify(gotErr)
		ws, wc, wm := classify(wantErr)
		if gs != ws || gc != wc || gm != wm {
			return fmt.Sprintf("refused differently:\n new %d %s %q\n old %d %s %q", gs, gc, gm, ws, wc, wm)
		}
	case gotErr != nil:
		return fmt.Sprintf("new refuses (%v), old accepts %#v", gotErr, normal(want))
	default:
		return fmt.Sprintf("new accepts %#v, old refuses (%v)", normal(got), wantErr)
	}
	return ""
}

// normalRequest is r with empty lists as nil and pointers as values.
func normalRequest(r *engine.Request) any {
	type atomic struct {
		Key            string
		Add, Set, IfEq string
	}
	num := func(p *int64) string {
		if p == nil {
			return "nil"
		}
		return strconv.FormatInt(*p, 10)
	}
	n := *r
	if len(n.KVGet) == 0 {
		n.KVGet = nil
	}
	if len(n.IdempotencyIDs) == 0 {
		n.IdempotencyIDs = nil
	}
	var ops []atomic
	for _, a := range r.Atomic {
		ops = append(ops, atomic{a.Key, num(a.Add), num(a.Set), num(a.IfEq)})
	}
	n.Atomic = nil
	return struct {
		R   engine.Request
		Ops []atomic
	}{n, ops}
}

func diffBoth(body []byte) string {
	for _, lim := range []Limits{DefaultLimits(), tightLimits} {
		if d := diffDecode(lim, body); d != "" {
			return d
		}
	}
	return ""
}

// diffSeeds are bodies at the edges of what the decoders read: shapes,
// duplicates, escapes, numbers, surrogates, depth, trailing data.
var diffSeeds = []string{
	``, ` `, `{}`, `null`, ` null `, `nul`, `[]`, `"s"`, `1`, `-`, `true`, `{`, `{}{}`, `{} x`, `{}]`, "{}\x00",
	`{"KVSet":[{"Key":"a","Value":1}]}`, `{"kvset":{"key":"a","value":[1,{"b":null}]}}`,
	`{"KVSet":[{"Key":"a","Value":"x","Value":null}]}`, `{"KVSet":[{"Key":"a","Key":null,"Value":1}]}`,
	`{"KVSet":[{"Key":"a","Delete":true,"Delete":null}]}`, `{"KVSet":[null,{"Key":"b","Value":2}]}`,
	`{"KVSet":[{"Key":"a","Value":1}],"KVSet":[]}`, `{"KVSet":[1],"Bogus":1}`, `{"Bogus":1,"KVSet":[1]}`,
	`{"Bogus":1,"LockID":5}`, `{"LockID":5,"Bogus":1}`, `{"Bogus":1,"Unlock":"x"}`, `{"Unlock":"x","Bogus":1}`,
	`{"KVGet":null}`, `{"KVGet":[]}`, `{"KVGet":"a"}`, `{"KVGet":{"Key":"a"}}`, `{"KVGet":[null,"a",{"key":"b"},{}]}`,
	`{"KVGet":[{"Key":"a","Bogus":1},5]}`, `{"KVGet":[5,{"Bogus":1}]}`, `{"KVGet":[[1]]}`, `{"KVGet":{"Key":null}}`,
	`{"IdempotencyIDs":[]}`, `{"IdempotencyIDs":null}`, `{"IdempotencyIDs":"x","IdempotencyTTL":1}`,
	`{"IdempotencyIDs":["x"],"IdempotencyTTLMs":0}`, `{"IdempotencyIDs":[null]}`, `{"IdempotencyIDs":[true]}`,
	`{"Atomic":[{"Key":"c","Add":1,"Add":null,"Set":2}]}`, `{"Atomic":{"Key":"c","IfEq":-9223372036854775808}}`,
	`{"Atomic":[{"Key":"c","Add":-0}]}`, `{"Atomic":[{"Key":"c","Add":01}]}`, `{"Atomic":[{"Key":"c","Add":1.0}]}`,
	`{"Seq":[{"Key":"s","Count":null}]}`, `{"Seq":[{"Key":"s","Count":-0}]}`, `{"Seq":{"Key":"s","Count":0}}`,
	`{"LockID":"l","LockDur":1e-400}`, `{"LockID":"l","LockDur":-0.0}`, `{"LockID":"l","LockDur":0.0005}`,
	`{"LockID":"l","LockDur":1E2,"LockWait":1e+1}`, `{"LockID":"l","LockDurMs":5,"LockDur":null}`,
	`{"LockID":null,"LockDur":1}`, `{"LockID":"l","LockID":null}`, `{"UnlockID":"u","Unlock":" 7\t"}`,
	`{"UnlockID":"u","Unlock":"\u0037"}`, `{"UnlockID":"u","Unlock":"\u00a07\u2003"}`, `{"UnlockID":"u","Unlock":"+7"}`,
	`{"UnlockID":"u","Unlock":"007"}`, `{"UnlockID":"u","Unlock":"0"}`, `{"UnlockID":"u","Unlock":-0}`,
	`{"UnlockID":"u","Unlock":7,"Unlock":null}`, `{"UnlockID":"u","Unlock":{"a":"\ud800"}}`,
	`{"LOCKID":"l","lockdurms":1}`, `{"\u004cockID":"l","LockDur":1}`, `{"LockI\u0044":"l","LockDur":1}`,
	"{\"\u212aVSet\":[{\"\u212aey\":\"a\",\"Value\":1}]}", "{\"KVSet\":[{\"Key\":\"a\",\"Value\":1}],\"Seq\":[{\"Key\":\"\u017f\"}]}",
	"{\"\u017feq\":[{\"Key\":\"s\"}]}", "{\"KVGet\":[\"\u212a\"]}",
	`{"Value":"\ud800"}`, `{"Value":"\ud800"} "\ud800"`, `{"Bogus":1} "\ud800"`, `{"Bogus":1} "x"`, `{"Bogus":1} }"\ud800"`,
	`{"Bogus":1}]] "\ud800"`, `{"Bogus":1} {"a":"\ud800"}`, `{"Bogus":1} {"Value":"\ud800"}`, "{\"Bogus\":1} \xff",
	`{"Bogus":{"Value":"\ud800"}}`, `{"Bogus":{"x":"\ud800"}}`, `{"Bogus":["Value","\ud800"]}`,
	`{"KVSet":[{"Key":"a","Value":{"Value":"\ud800","x":"\udc00"}}]}`, `{"KVSet":[{"Value":1,"Key":"\ud800"}]}`,
	`{"Atomic":[{"Key":"a","Value":"\ud800"}]}`, `{"KVGet":[{"Value":["\ud800"]}]}`, `{"V\u0061lue":"\ud800","x":1}`,
	`{"KVSet":[{"Key":"\ud83d\ude00","Value":"\ud83d"}]}`, `{"KVSet":[{"Key":"\\ud800","Value":1}]}`,
	`{"KVSet":[{"Key":"a\"b\\c\/d\b\f\n\r\t\u0000","Value":"\u0041"}]}`, `{"KVSet":[{"Key":"a","Value":"\x"}]}`,
	`{"KVSet":[{"Key":"a","Value":"\u00g0"}]}`, "{\"KVSet\":[{\"Key\":\"a\",\"Value\":\"\t\"}]}",
	"{\"KVGet\":[\"caf\xc3\xa9\",\"\xef\xbf\xbd\"]}", "{\"KVGet\":[\"\xed\xa0\x80\"]}", "\xef\xbb\xbf{}",
	`{"ID":"k"}`, `{"Key":"k","Version":3,"Timeout":1.5}`, `{"id":"k","ID":null,"key":"j"}`, `{"ID":"k","Version":null}`,
	`{"ID":"k","Version":-0}`, `{"ID":"k","TimeoutMs":1e1}`, `{"ID":"k","Wait":1,"Version":"x"}`, `{"ID":"k","Version":"x","Wait":1}`,
	`{"KVSet":[{"Key":"a","Value":` + strings.Repeat("[", 9997) + strings.Repeat("]", 9997) + `}]}`,
	`{"KVSet":[{"Key":"a","Value":` + strings.Repeat("[", 9998) + strings.Repeat("]", 9998) + `}]}`,
	`{"Bogus":` + strings.Repeat(`{"a":`, 9999) + `1` + strings.Repeat("}", 9999) + `}`,
	`{"Bogus":` + strings.Repeat(`{"a":`, 10000) + `1` + strings.Repeat("}", 10000) + `}`,
	`{"KVSet":[{"Key":"a","Value":"` + strings.Repeat("é0123456789", 1000) + `"}]}`,
	`{"KVSet":[{"Key":"a","Value":-1.5e-3},{"Key":"b","Value":0},{"Key":"c","Value":1E+2}]}`,
	`{"KVSet":[{"Key":"a","Value":-}]}`, `{"KVSet":[{"Key":"a","Value":1.}]}`, `{"KVSet":[{"Key":"a","Value":1e}]}`,
	`{"KVSet":[{"Key":"a","Value":tru}]}`, `{"KVSet":[{"Key":"a","Value":[1,]}]}`, `{"KVSet":[{"Key":"a","Value":{"a":1,}}]}`,
	`{"KVSet":[{"Key":"a","Value":{"a" 1}}]}`, `{"KVSet":[{"Key":"a","Value":{1:1}}]}`, `{"KVSet":[{"Key":"a",}]}`,
}

// testFileBodies returns the JSON-looking string literals of this
// package's tests: the bodies of the API, limits and bad-input tables.
func testFileBodies(t testing.TB) []string {
	files, err := filepath.Glob("*_test.go")
	if err != nil {
		t.Fatal(err)
	}
	lit := regexp.MustCompile("`[^`]*`" + `|"(?:[^"\\\n]|\\.)*"`)
	var out []string
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range lit.FindAllString(string(src), -1) {
			s := m[1 : len(m)-1]
			if m[0] == '"' {
				if s, err = strconv.Unquote(m); err != nil {
					continue
				}
			}
			if strings.ContainsAny(s, "{[") || strings.HasPrefix(strings.TrimSpace(s), "null") {
				out = append(out, s)
			}
		}
	}
	return out
}

// TestDecodeDifferential runs both decoders over the seeds, the doc
// bodies and every JSON-looking literal of the tests, and over each of
// those cut at every byte (a cut body is refused for some reason; both
// must give the same one).
func TestDecodeDifferential(t *testing.T) {
	bodies := append(append([]string{}, diffSeeds...), testFileBodies(t)...)
	src, err := os.ReadFile("../docs/API.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?s)-d '(.*?)'`).FindAllStringSubmatch(string(src), -1) {
		bodies = append(bodies, m[1])
	}
	n := 0
	for _, b := range bodies {
		cuts := []int{len(b)}
		if len(b) < 400 {
			for i := range len(b) {
				cuts = append(cuts, i)
			}
		}
		for _, c := range cuts {
			n++
			if d := diffBoth([]byte(b[:c])); d != "" {
				t.Fatal(d)
			}
		}
	}
	t.Logf("%d bodies agree", n)
}

func FuzzDecodeDifferential(f *testing.F) {
	// The tests' own bodies are TestDecodeDifferential's; as seeds they
	// would make every short run minutes long.
	for _, b := range diffSeeds {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if d := diffBoth(body); d != "" {
			t.Fatal(d)
		}
	})
}
