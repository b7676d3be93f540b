package httpapi

import (
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestDecodeDifferentialRandom holds the two decoders to each other over
// bodies built from the schema, which byte-level fuzzing reaches only
// slowly: every field name in other cases, escaped, with a Kelvin sign
// or a long s; values of the right and of every wrong type; numbers at
// the edges of their kinds; repeated fields; lone surrogates in keys,
// names and Values; unknown fields; data after the object; cuts and
// flipped bytes. LATCH_DIFF_BODIES sets how many (default 20,000).
func TestDecodeDifferentialRandom(t *testing.T) {
	n := 20000
	if s := os.Getenv("LATCH_DIFF_BODIES"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	seed := rand.Uint64()
	t.Logf("seed %d, %d bodies", seed, n)
	g := &bodyGen{rng: rand.New(rand.NewPCG(seed, 1))}
	for i := 0; i < n; i++ {
		body := g.body()
		if d := diffBoth(body); d != "" {
			t.Fatalf("seed %d, body %d: %s", seed, i, d)
		}
	}
}

type bodyGen struct{ rng *rand.Rand }

func (g *bodyGen) n(k int) int            { return g.rng.IntN(k) }
func (g *bodyGen) one(k int) bool         { return g.n(k) == 0 }
func (g *bodyGen) pick(v []string) string { return v[g.n(len(v))] }

func (g *bodyGen) ws() string { return g.pick([]string{"", "", "", " ", "\n", "\t ", "\r\n"}) }

// name spells a field name as a client might, or as an attacker would.
func (g *bodyGen) name(n string) string {
	var b strings.Builder
	for _, c := range n {
		switch {
		case g.one(12) && c < 0x80:
			b.WriteString(`\u00` + strconv.FormatInt(int64(c)>>4, 16) + strconv.FormatInt(int64(c)&15, 16))
		case g.one(15) && (c == 'k' || c == 'K'):
			b.WriteString("\u212a")
		case g.one(15) && (c == 's' || c == 'S'):
			b.WriteString("\u017f")
		case g.one(8) && c >= 'a' && c <= 'z':
			b.WriteRune(c - 32)
		case g.one(8) && c >= 'A' && c <= 'Z':
			b.WriteRune(c + 32)
		default:
			b.WriteRune(c)
		}
	}
	if g.one(40) {
		b.WriteString(g.pick([]string{`\ud800`, "\xff", "x", `\u0000`}))
	}
	return `"` + b.String() + `"`
}

var genStrings = []string{
	"", "k", "key-1", "L", "a b", `\ud800`, `\udc00x`, `\ud83d\ude00`, `\ud800\u0041`, `\\ud800`, `\u0000`, `\"`,
	"é", "\u212a", "\xff", "\xed\xa0\x80", `\x`, "12345678", "123456789", " 7 ", "7", "0", "+5", "\u00a07",
	"\t", `\u00e9`, `\uD83D\uDE00`, `\uDBFF`,
}

func (g *bodyGen) str() string {
	if g.one(30) {
		return `"` + strings.Repeat("k", 1020+g.n(10)) + `"`
	}
	return `"` + g.pick(genStrings) + `"`
}

var genNumbers = []string{
	"0", "-0", "1", "-1", "5", "1.5", "0.5", "1e3", "1E2", "1e-320", "1e400", "-1e-9", "0.0004", "0.0005", "86400",
	"86400.001", "300", "301", "1000", "1000000", "1000001", "9223372036854775807", "9223372036854775808",
	"-9223372036854775808", "-9223372036854775809", "18446744073709551615", "18446744073709551616", "1e308",
	"01", "1.", "-", "2.50",
}

func (g *bodyGen) num() string { return g.pick(genNumbers) }

// any is a JSON value of any type, sometimes nested, sometimes broken.
func (g *bodyGen) any(depth int) string {
	switch g.n(9) {
	case 0:
		return g.str()
	case 1, 2:
		return g.num()
	case 3:
		return g.pick([]string{"true", "false", "null", "nul", "tru"})
	case 4, 5:
		if depth > 3 {
			return "[]"
		}
		var items []string
		for range g.n(4) {
			items = append(items, g.ws()+g.any(depth+1)+g.ws())
		}
		return "[" + strings.Join(items, ",") + "]"
	case 6, 7:
		if depth > 3 {
			return "{}"
		}
		var items []string
		for range g.n(4) {
			items = append(items, g.name(g.pick([]string{"Key", "Value", "a", "ID", "Add"}))+":"+g.ws()+g.any(depth+1))
		}
		return "{" + strings.Join(items, ",") + "}"
	}
	return g.pick([]string{"{", "[", `"x`, "]", "}", ",", ""})
}

// typed is a value of the given kind, or now and then of another.
func (g *bodyGen) typed(kind byte) string {
	if g.one(8) {
		return g.any(1)
	}
	if g.one(10) {
		return "null"
	}
	switch kind {
	case 's':
		return g.str()
	case 'n':
		return g.num()
	case 'b':
		return g.pick([]string{"true", "false"})
	case 'h':
		return g.pick([]string{"7", `"7"`, `" 18446744073709551615 "`, "0", `"+5"`, "-1", "1.5", `"\u0037"`})
	}
	return g.any(1)
}

// obj is an object of some of fields (name: kind), repeats and strangers.
func (g *bodyGen) obj(fields map[string]byte) string {
	var items []string
	for range g.n(5) {
		name := "Bogus"
		var kind byte = 'a'
		if !g.one(10) {
			for f, k := range fields {
				if g.one(len(fields)) {
					name, kind = f, k
					break
				}
				name, kind = f, k
			}
		} else if g.one(2) {
			name = g.pick([]string{"Value", "", "TTL"})
		}
		items = append(items, g.ws()+g.name(name)+g.ws()+":"+g.ws()+g.typed(kind)+g.ws())
	}
	return "{" + strings.Join(items, ",") + "}"
}

// list is an array of items, one item, or null.
func (g *bodyGen) list(item func() string) string {
	switch g.n(6) {
	case 0:
		return item()
	case 1:
		return "null"
	}
	var items []string
	for range g.n(4) {
		items = append(items, item())
	}
	return "[" + strings.Join(items, ","+g.ws()) + "]"
}

var (
	genKVSet  = map[string]byte{"Key": 's', "Value": 'a', "Delete": 'b'}
	genAtomic = map[string]byte{"Key": 's', "Add": 'n', "Set": 'n', "IfEq": 'n'}
	genSeq    = map[string]byte{"Key": 's', "Count": 'n'}
	genKey    = map[string]byte{"Key": 's'}
	genWatch  = map[string]byte{"ID": 's', "Key": 's', "Version": 'n', "Timeout": 'n', "TimeoutMs": 'n'}
	genScalar = map[string]byte{"LockID": 's', "LockDur": 'n', "LockDurMs": 'n', "LockWait": 'n', "LockWaitMs": 'n',
		"UnlockID": 's', "Unlock": 'h', "IdempotencyTTL": 'n', "IdempotencyTTLMs": 'n'}
)

func (g *bodyGen) request() string {
	var items []string
	for range g.n(6) {
		var name, v string
		switch g.n(8) {
		case 0:
			name, v = "KVSet", g.list(func() string { return g.obj(genKVSet) })
		case 1:
			name, v = "KVGet", g.list(func() string {
				if g.one(3) {
					return g.obj(genKey)
				}
				return g.typed('s')
			})
		case 2:
			name, v = "Atomic", g.list(func() string { return g.obj(genAtomic) })
		case 3:
			name, v = "Seq", g.list(func() string { return g.obj(genSeq) })
		case 4:
			name, v = "IdempotencyIDs", g.list(func() string { return g.typed('s') })
		case 5:
			name, v = g.pick([]string{"Bogus", "Value", "ID"}), g.any(1)
		default:
			for f, k := range genScalar {
				name, v = f, g.typed(k)
				if g.one(3) {
					break
				}
			}
		}
		items = append(items, g.ws()+g.name(name)+":"+g.ws()+v)
	}
	return "{" + strings.Join(items, ",") + "}"
}

func (g *bodyGen) body() []byte {
	var s string
	switch g.n(10) {
	case 0:
		s = g.obj(genWatch)
	case 1:
		s = g.any(0)
	default:
		s = g.request()
	}
	s = g.ws() + s + g.ws()
	if g.one(8) {
		s += g.pick([]string{"{}", " x", `"\ud800"`, `"x"`, "]", "}\"\\ud800\"", "\xff", "null", `{"Value":"\ud800"}`})
	}
	b := []byte(s)
	switch g.n(12) {
	case 0:
		b = b[:g.n(len(b)+1)]
	case 1:
		if len(b) > 0 {
			const flips = "\"\\{}[],: \x00\xffu"
			b[g.n(len(b))] = flips[g.n(len(flips))]
		}
	}
	return b
}
