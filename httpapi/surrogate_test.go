package httpapi

import (
	"fmt"
	"testing"
	"time"
	"unicode/utf8"
)

// The scanner's edges; the request-level cases are in badinput_test.go.
func TestCheckSurrogates(t *testing.T) {
	for _, c := range []struct {
		body    string
		refused bool
	}{
		{`{"KVGet":["plain"]}`, false},
		{`{"KVGet":["\ud83d\ude00"]}`, false},
		{`{"KVGet":["\uD83D\uDE00"]}`, false},
		{`{"KVGet":["\ud7ff\ue000\ufffd"]}`, false},
		{`{"KVGet":["\ud800"]}`, true},
		{`{"KVGet":["\uDC00"]}`, true},
		{`{"KVGet":["\ud83d\ude00\ud83d"]}`, true},
		{`{"KVGet":["\\ud800"]}`, false},         // an escaped backslash, then text
		{`{"KVGet":["\\\ud800"]}`, true},         // an escaped backslash, then an escape
		{`{"KVGet":["\"\ud800"]}`, true},         // an escaped quote does not end the string
		{`{"KVGet":["\ud800`, false},             // unterminated: the decoder reports it
		{`{"KVGet":["\ud8`, false},               // truncated escape
		{`{"KVGet":["\ud800\u`, false},           // truncated pair
		{`{"Value":"\ud800"}`, false},            // a Value is kept as sent
		{`{"vALUE":["\ud800"]}`, false},          // names match case-insensitively
		{`{"Val\u0075e":{"x":"\ud800"}}`, false}, // and with escapes
		{`{"Value":5,"Key":"\ud800"}`, true},
		{`{"Value":[1,{"x":"\ud800"}],"K":"\udc00"}`, true},
		{`{"Value":{"Value":"\ud800","k":"\udc00"},"K":"ok"}`, false},
		{`{"a":{"Value":1},"b":"\ud800"}`, true},
		{`{"\ud800":1}`, true},
		{`["Value","\ud800"]`, true}, // a string in an array is not a name
		{`}}]]"\ud800"`, false},      // malformed: left to the decoder
	} {
		err := checkSurrogates([]byte(c.body))
		if (err != nil) != c.refused {
			t.Errorf("%s: refused=%v, want %v (%v)", c.body, err != nil, c.refused, err)
		}
		if err != nil && err.code != CodeBadJSON {
			t.Errorf("%s: code %s", c.body, err.code)
		}
	}
}

// BenchmarkCheckSurrogates: the scan's cost next to utf8.Valid, which
// every body already pays, on a body without escapes (the fast path) and
// one with an escape in every key (the full scan).
func BenchmarkCheckSurrogates(b *testing.B) {
	var plain, escaped []byte
	plain = append(plain, `{"KVSet":[`...)
	escaped = append(escaped, `{"KVSet":[`...)
	for i := range 100 {
		if i > 0 {
			plain, escaped = append(plain, ','), append(escaped, ',')
		}
		plain = fmt.Appendf(plain, `{"Key":"key-%03d","Value":"%062d"}`, i, i)
		escaped = fmt.Appendf(escaped, `{"Key":"k\ud83d\ude00-%03d","Value":"%062d"}`, i, i)
	}
	plain, escaped = append(plain, "]}"...), append(escaped, "]}"...)
	for _, c := range []struct {
		name string
		body []byte
	}{{"plain", plain}, {"escaped", escaped}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.body)))
			start := time.Now()
			for b.Loop() {
				if checkSurrogates(c.body) != nil {
					b.Fatal("refused")
				}
			}
			ours := time.Since(start)
			start = time.Now()
			n := 0
			for n < b.N {
				if !utf8.Valid(c.body) {
					b.Fatal("not UTF-8")
				}
				n++
			}
			b.ReportMetric(float64(ours)/float64(time.Since(start)), "x-utf8.Valid")
		})
	}
}
