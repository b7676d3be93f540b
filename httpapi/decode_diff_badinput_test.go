package httpapi_test

import (
	"testing"

	"github.com/latchkv/latch/httpapi"
)

// TestDecodeDifferentialBadInput: both decoders agree on every body of
// the bad-input table, whole and, for the short ones, cut at every byte.
func TestDecodeDifferentialBadInput(t *testing.T) {
	n := 0
	for _, c := range badInputCases(12345) {
		cuts := []int{len(c.body)}
		if len(c.body) < 300 {
			for i := range len(c.body) {
				cuts = append(cuts, i)
			}
		}
		for _, cut := range cuts {
			n++
			if d := httpapi.DiffDecode([]byte(c.body[:cut])); d != "" {
				t.Fatalf("case %q: %s", c.name, d)
			}
		}
	}
	t.Logf("%d bodies agree", n)
}
