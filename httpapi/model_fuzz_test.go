package httpapi_test

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/latchkv/latch/engine"
	"github.com/latchkv/latch/httpapi"
)

// FuzzModelHTTP turns its input into a sequence of requests, renders each
// as an HTTP request with a JSON body (field names in any case, single
// items or arrays, seconds or milliseconds, handles as numbers or strings,
// escaped keys, arbitrary stored values, and now and then a bad body: cut
// short, not UTF-8, an unknown or wrongly typed field, a field given
// twice), sends it through the real handler to a real engine on a temp
// dir, and requires the reply to be exactly what a plain-map model of the
// documented API (docs/API.md, engine/doc.go) predicts: status and code,
// or every field of the reply, stored values byte-exact. Engine restarts
// (close and reopen, with another shard count) and snapshots come at
// fuzz-chosen points, each followed by a read-back of the whole state
// through the model; so does the end of the sequence.
//
// The model is compact on purpose: it is a second, independent reading
// of the spec, not a copy of the engine.
func FuzzModelHTTP(f *testing.F) {
	for _, s := range [][]byte{
		{}, {5, 5, 5, 5}, []byte("latch"), []byte("\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f"),
		[]byte("\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7\xf6\xf5\xf4\xf3\xf2\xf1\xf0"),
	} {
		f.Add(s)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 8; i++ {
		f.Add(fzRandomBytes(rng))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		runModelSequence(t, data)
	})
}

// TestModelHTTPRandom runs 200 seeded sequences (60 under -race, 20 with
// -short; LATCH_MODEL_HTTP_RUNS changes the count, LATCH_MODEL_HTTP_SEED
// replays a seed), so that `go test -race` covers the fuzz target's path
// with fresh inputs every time.
func TestModelHTTPRandom(t *testing.T) {
	seed := rand.Uint64()
	if s := os.Getenv("LATCH_MODEL_HTTP_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	runs := 200
	switch {
	case testing.Short():
		runs = 20
	case raceEnabled:
		runs = 60
	}
	if s := os.Getenv("LATCH_MODEL_HTTP_RUNS"); s != "" {
		runs, _ = strconv.Atoi(s)
	}
	t.Logf("seed %d (LATCH_MODEL_HTTP_SEED=%d to replay)", seed, seed)
	defer func() { t.Logf("replies to generated requests, by code (\"\" is 200): %v", fzOutcomes) }()
	rng := rand.New(rand.NewPCG(seed, 0))
	for i := 0; i < runs; i++ {
		data := fzRandomBytes(rng)
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			runModelSequence(t, data)
			if t.Failed() {
				t.Logf("seed %d, sequence %d: input %q", seed, i, data)
			}
		})
		if t.Failed() {
			return
		}
	}
}

func fzRandomBytes(rng *rand.Rand) []byte {
	b := make([]byte, 40+rng.IntN(400))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// fzLimits are small enough that short inputs hit the key and op limits.
var fzLimits = func() httpapi.Limits {
	l := httpapi.DefaultLimits()
	l.MaxKeyBytes = 16
	l.MaxOps = 8
	return l
}()

// fzSrc hands out the fuzz input as small choices; past its end, the
// choices come from a PRNG seeded with the input, so that a short input
// still makes a sequence long enough to matter.
type fzSrc struct {
	b     []byte
	i     int
	rng   *rand.Rand // nil: every choice past the end is 0
	plain bool       // never spoil a body (mutate)
}

func newFzSrc(b []byte) *fzSrc {
	h := fnv.New64a()
	h.Write(b)
	return &fzSrc{b: b, rng: rand.New(rand.NewPCG(h.Sum64(), uint64(len(b))))}
}

func (s *fzSrc) n(k int) int {
	if s.i >= len(s.b) {
		if s.rng == nil {
			return 0
		}
		return s.rng.IntN(k)
	}
	v := int(s.b[s.i])
	s.i++
	return v % k
}

func (s *fzSrc) coin() bool           { return s.n(2) == 1 }
func (s *fzSrc) one(k int) bool       { return s.n(k) == k-1 } // 1 in k; never for a plain source
func fzPick[T any](s *fzSrc, v []T) T { return v[s.n(len(v))] }

// Keys: a few valid ones (escapable, with NUL, non-BMP and quotes), then
// an empty one and one over fzLimits.MaxKeyBytes, picked less often.
var (
	fzKV   = []string{"k0", "k1", "é", "\x00k", "😀", `a"b/\`, "", strings.Repeat("k", 17)}
	fzCtr  = []string{"c0", "c1", "c2", "", strings.Repeat("c", 17)}
	fzSeq  = []string{"s0", "s1", "", strings.Repeat("s", 17)}
	fzLock = []string{"L0", "L1", "", strings.Repeat("L", 17)}
	fzIdem = []string{"i0", "i1", "i2", "i3", "", strings.Repeat("i", 17)}
	fzNS   = []string{"a", "b", "n.s:1"}
)

// key picks from pool, the last two (empty, too long) 1 time in 32.
func (s *fzSrc) key(pool []string) string {
	if s.one(32) {
		return pool[len(pool)-2+s.n(2)]
	}
	return pool[s.n(len(pool)-2)]
}

// ws is optional whitespace between tokens.
func (s *fzSrc) ws() string { return fzPick(s, []string{"", "", "", " ", "\n", "\t ", "\r\n"}) }

// name spells a field name as the API matches it: case-insensitively.
func (s *fzSrc) name(n string) string {
	switch s.n(6) {
	case 0:
		return `"` + strings.ToLower(n) + `"`
	case 1:
		return `"` + strings.ToUpper(n) + `"`
	}
	return `"` + n + `"`
}

// str renders v as a JSON string, escaping at random what may be escaped.
func (s *fzSrc) str(v string) string {
	var b strings.Builder
	b.WriteByte('"')
	hex := func(r rune) {
		if s.coin() {
			fmt.Fprintf(&b, `\u%04x`, r)
		} else {
			fmt.Fprintf(&b, `\u%04X`, r)
		}
	}
	for _, r := range v {
		switch {
		case r == '"' && s.coin():
			b.WriteString(`\"`)
		case r == '\\' && s.coin():
			b.WriteString(`\\`)
		case r == '/' && s.coin():
			b.WriteString(`\/`)
		case r < 0x20 || r == '"' || r == '\\' || s.one(4):
			if r > 0xffff {
				r1, r2 := utf16.EncodeRune(r)
				hex(r1)
				hex(r2)
			} else {
				hex(r)
			}
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// value renders any JSON value; the model stores exactly these bytes.
func (s *fzSrc) value(depth int) string {
	switch k := s.n(10); {
	case k == 0:
		return "null"
	case k == 1:
		return fzPick(s, []string{"true", "false"})
	case k == 2:
		return fzPick(s, []string{"0", "-0", "1.50e2", "1e400", "-12", "3.25", "18446744073709551616"})
	case k < 6 || depth >= 3:
		return s.str(fzPick(s, []string{"", "v", "é😀", "\x00", `a"b`, "\u2028"}))
	case k < 8:
		items := make([]string, s.n(4))
		for i := range items {
			items[i] = s.ws() + s.value(depth+1) + s.ws()
		}
		return "[" + strings.Join(items, ",") + "]"
	default:
		items := make([]string, s.n(4))
		for i := range items {
			items[i] = s.ws() + s.str(fzPick(s, []string{"a", "b", "a", "é"})) + s.ws() + ":" + s.ws() + s.value(depth+1)
		}
		return "{" + strings.Join(items, ",") + "}"
	}
}

// durations: the form a duration is sent in.
const (
	durNone = iota
	durMs
	durSecs
	durBoth
)

type fzSet struct {
	key, value string // value "" is no Value field
	del, delF  bool   // "Delete": true; an explicit "Delete": false
}

type fzAtomic struct {
	key            string
	add, set, ifEq *int64
}

type fzSeqOp struct {
	key   string
	count uint64 // 0 is refused
	sent  bool   // Count is in the body; if not, it is 1
}

// fzReq is one /db request as the generator meant it.
type fzReq struct {
	lockID            *string
	durForm, waitForm int
	durMs, waitMs     int64
	unlockID          *string
	unlock            uint64 // 0: no Unlock field
	kvset             []fzSet
	kvget             []string
	atomic            []fzAtomic
	seq               []fzSeqOp
	idem              []string
}

var (
	fzDurs     = []int64{3_600_000, 7_200_250, 86_400_000}
	fzBadDurs  = []int64{0, -1000, 86_400_001}
	fzWaits    = []int64{0, 0, 1, 2}
	fzBadWaits = []int64{-1, 300_001}
	fzNums     = []int64{1, -3, 5, 0, 42, math.MaxInt64, math.MinInt64}
)

// rare picks from bad 1 time in 16, else from good.
func (s *fzSrc) rare(good, bad []int64) int64 {
	if s.one(16) {
		return fzPick(s, bad)
	}
	return fzPick(s, good)
}

// durForm is seconds or milliseconds, and rarely both (refused).
func (s *fzSrc) durForm() int {
	if s.one(12) {
		return durBoth
	}
	return durMs + s.n(2)
}

func (s *fzSrc) ptr() *int64 {
	v := fzPick(s, fzNums)
	return &v
}

// genReq builds a request over the model's current state (handles that
// hold, often).
func (s *fzSrc) genReq(m *fzModel, ns string) *fzReq {
	r := &fzReq{}
	switch s.n(16) {
	case 0, 1, 2: // acquire
		k := s.key(fzLock)
		r.lockID, r.durForm, r.durMs = &k, s.durForm(), s.rare(fzDurs, fzBadDurs)
		if s.one(3) {
			r.waitForm, r.waitMs = s.durForm(), s.rare(fzWaits, fzBadWaits)
		}
	case 3, 4: // unlock, usually with the handle that holds it
		k := s.key(fzLock)
		r.unlockID, r.unlock = &k, m.nsp(ns).locks[k]
		if r.unlock == 0 || s.one(4) {
			r.unlock = uint64(1 + s.n(40))
		}
	case 5, 6: // extend
		k := s.key(fzLock)
		if h := m.nsp(ns).locks[k]; h != 0 || s.one(4) {
			r.lockID, r.unlockID, r.unlock, r.durForm, r.durMs = &k, &k, max(h, 1), s.durForm(), s.rare(fzDurs, fzBadDurs)
		}
	case 7: // odd combinations, half the time
		if s.coin() {
			break
		}
		switch s.n(3) {
		case 0:
			r.durForm, r.durMs = durMs, 1000
		case 1:
			r.unlock = 1 + uint64(s.n(5))
		case 2:
			k := s.key(fzLock)
			r.unlockID = &k
		}
	}
	for i := s.n(3); i > 0; i-- {
		set := fzSet{key: s.key(fzKV)}
		switch s.n(6) {
		case 0:
			set.del = true
		case 1:
			set.delF = true
			if !s.one(3) {
				set.value = s.value(0)
			}
		default:
			set.value = s.value(0)
		}
		r.kvset = append(r.kvset, set)
	}
	for i := s.n(5); i > 0; i-- {
		r.kvget = append(r.kvget, s.key(fzKV))
	}
	for i := s.n(3); i > 0; i-- {
		a := fzAtomic{key: s.key(fzCtr)}
		switch s.n(5) {
		case 0:
			a.add = s.ptr()
		case 1:
			a.set = s.ptr()
		case 2:
			a.add, a.ifEq = s.ptr(), s.ptr()
		case 3:
			a.set, a.ifEq = s.ptr(), &[]int64{0, m.nsp(ns).ctr[a.key]}[s.n(2)]
		}
		if s.one(32) {
			a.add, a.set = s.ptr(), s.ptr()
		}
		r.atomic = append(r.atomic, a)
	}
	if s.one(3) {
		q := fzSeqOp{key: s.key(fzSeq), count: fzPick(s, []uint64{1, 1, 3, 2, 4})}
		if s.one(16) {
			q.count = fzPick(s, []uint64{0, fzLimits.MaxSeqCount + 1})
		}
		q.sent = q.count != 1 || s.coin()
		r.seq = append(r.seq, q)
	}
	if s.one(4) {
		r.idem = append(r.idem, s.key(fzIdem))
	}
	return r
}

// render writes r as a body, in a fuzz-chosen spelling.
func (s *fzSrc) render(r *fzReq) string {
	var fields []string
	field := func(name, v string) { fields = append(fields, s.name(name)+s.ws()+":"+s.ws()+v) }
	dur := func(name string, form int, ms int64) {
		secs := strconv.FormatFloat(float64(ms)/1000, fzPick(s, []byte{'f', 'g', 'e'}), -1, 64)
		if form == durSecs || form == durBoth {
			field(name, secs)
		}
		if form == durMs || form == durBoth {
			field(name+"Ms", strconv.FormatInt(ms, 10))
		}
	}
	if r.lockID != nil {
		field("LockID", s.str(*r.lockID))
	}
	dur("LockDur", r.durForm, r.durMs)
	dur("LockWait", r.waitForm, r.waitMs)
	if r.unlockID != nil {
		field("UnlockID", s.str(*r.unlockID))
	}
	if r.unlock != 0 {
		h := strconv.FormatUint(r.unlock, 10)
		field("Unlock", fzPick(s, []string{h, h, `"` + h + `"`, `" ` + h + ` "`}))
	}
	list := func(name string, items []string, single bool) {
		if len(items) == 0 && !s.one(8) {
			return
		}
		if single && len(items) == 1 && s.coin() {
			field(name, items[0])
			return
		}
		field(name, "["+s.ws()+strings.Join(items, ","+s.ws())+"]")
	}
	var items []string
	for _, set := range r.kvset {
		var f []string
		if set.key != "" || s.coin() {
			f = append(f, s.name("Key")+":"+s.str(set.key))
		}
		if set.value != "" {
			f = append(f, s.name("Value")+":"+s.ws()+set.value+s.ws())
		}
		if set.del {
			f = append(f, s.name("Delete")+":true")
		} else if set.delF {
			f = append(f, s.name("Delete")+":false")
		}
		s.shuffle(f)
		items = append(items, "{"+strings.Join(f, ",")+"}")
	}
	list("KVSet", items, true)
	items = nil
	for _, k := range r.kvget {
		if s.one(4) {
			items = append(items, "{"+s.name("Key")+":"+s.str(k)+"}")
		} else {
			items = append(items, s.str(k))
		}
	}
	list("KVGet", items, true)
	items = nil
	for _, a := range r.atomic {
		f := []string{s.name("Key") + ":" + s.str(a.key)}
		for _, p := range []struct {
			n string
			v *int64
		}{{"Add", a.add}, {"Set", a.set}, {"IfEq", a.ifEq}} {
			if p.v != nil {
				f = append(f, s.name(p.n)+":"+strconv.FormatInt(*p.v, 10))
			}
		}
		s.shuffle(f)
		items = append(items, "{"+strings.Join(f, ",")+"}")
	}
	list("Atomic", items, true)
	items = nil
	for _, q := range r.seq {
		f := []string{s.name("Key") + ":" + s.str(q.key)}
		if q.sent {
			f = append(f, s.name("Count")+":"+strconv.FormatUint(q.count, 10))
		}
		items = append(items, "{"+strings.Join(f, ",")+"}")
	}
	list("Seq", items, true)
	items = nil
	for _, id := range r.idem {
		items = append(items, s.str(id))
	}
	list("IdempotencyIDs", items, true)
	s.shuffle(fields)
	return "{" + s.ws() + strings.Join(fields, ","+s.ws()) + s.ws() + "}"
}

func (s *fzSrc) shuffle(v []string) {
	for i := len(v) - 1; i > 0; i-- {
		j := s.n(i + 1)
		v[i], v[j] = v[j], v[i]
	}
}

// mutate spoils a rendered body, or not; it returns the body and the
// code the spoiling must get ("" when the body keeps its meaning).
func (s *fzSrc) mutate(body string, r *fzReq) (string, string) {
	if s.plain || !s.one(6) {
		return body, ""
	}
	// prefix puts a field first in the object.
	prefix := func(f string) string {
		if strings.TrimSpace(body[1:]) == "}" {
			return "{" + f + body[1:]
		}
		return "{" + f + "," + body[1:]
	}
	switch s.n(6) {
	case 0:
		return body[:1+s.n(len(body)-1)], httpapi.CodeBadJSON
	case 1:
		return body + s.ws() + fzPick(s, []string{"{}", "x", "1", "[]", `"s"`}), httpapi.CodeBadJSON
	case 2:
		i := s.n(len(body) + 1)
		return body[:i] + fzPick(s, []string{"\xff", "\xc0\xaf", "\xed\xa0\x80"}) + body[i:], httpapi.CodeBadJSON
	case 3:
		return prefix(s.str(fzPick(s, []string{"Bogus", "LockDuration", "KVSets", ""})) + ":1"), httpapi.CodeUnknownField
	case 4:
		return prefix(fzPick(s, []string{`"LockID":5`, `"kvget":7`, `"Atomic":"x"`, `"Seq":[1]`, `"Unlock":true`, `"LockDurMs":1.5`, `"KVSet":[{"Key":1}]`})), httpapi.CodeBadJSON
	}
	// A field given twice: the earlier copy, in another spelling, must
	// not count, however much it differs.
	var dup []string
	if len(r.kvset) > 0 {
		dup = append(dup, `"kvset":[{"Key":"k0","Value":"first"},{"Key":"k1","Delete":true}]`)
	}
	if len(r.kvget) > 0 {
		dup = append(dup, `"KVGET":["k1",{"Key":"c0"}]`)
	}
	if len(r.atomic) > 0 {
		dup = append(dup, `"atomic":[{"Key":"c0","Add":1000,"IfEq":0},{"Key":"c1","Set":7}]`)
	}
	if len(r.seq) > 0 {
		dup = append(dup, `"SEQ":[{"Key":"s0","Count":99}]`)
	}
	if r.lockID != nil {
		dup = append(dup, `"lockid":"L9"`)
	}
	if len(dup) == 0 {
		return body, ""
	}
	return prefix(fzPick(s, dup)), ""
}

// fzNSState is one namespace of the model.
type fzNSState struct {
	rev   uint64
	kv    map[string]fzEntry
	ctr   map[string]int64
	seq   map[string]uint64 // the next id; absent: 1
	locks map[string]uint64 // held: the handle
	idem  map[string]bool
}

type fzEntry struct {
	value   string
	version uint64
}

type fzModel struct {
	ns     map[string]*fzNSState
	handle uint64 // the last handle granted
}

func (m *fzModel) nsp(ns string) *fzNSState {
	if m.ns[ns] == nil {
		m.ns[ns] = &fzNSState{kv: map[string]fzEntry{}, ctr: map[string]int64{}, seq: map[string]uint64{},
			locks: map[string]uint64{}, idem: map[string]bool{}}
	}
	return m.ns[ns]
}

// want is the reply the model predicts.
type fzWant struct {
	status int
	code   string
	lock   uint64
	durMs  int64
	kv     []fzKVItem
	atomic []fzCtrItem
	seq    []fzSeqItem
}

type fzKVItem struct {
	Key     string
	Value   json.RawMessage
	Version uint64
}

type fzCtrItem struct {
	Key   string
	Value int64
}

type fzSeqItem struct {
	Key         string
	First, Last uint64
}

func fzFail(status int, code string) fzWant { return fzWant{status: status, code: code} }

// checkKey is the decoder's key rule.
func fzCheckKey(k string) string {
	switch {
	case k == "":
		return httpapi.CodeKeyRequired
	case len(k) > fzLimits.MaxKeyBytes:
		return httpapi.CodeKeyTooLong
	}
	return ""
}

// millis is the decoder's duration rule: in range, or invalid_duration.
func fzMillis(form int, ms, maxMs int64) (int64, string) {
	switch form {
	case durBoth:
		return 0, httpapi.CodeInvalidDuration
	case durSecs:
		// The seconds are sent as ms/1000, shortest form; the server
		// rounds back to whole milliseconds.
		ms = int64(math.Round(float64(ms) / 1000 * 1000))
	}
	if ms < 0 || ms > maxMs {
		return 0, httpapi.CodeInvalidDuration
	}
	return ms, ""
}

// validate is the decoder's checks, in the order docs/API.md's errors
// imply: op count, lock, unlock, then each list in order.
func fzValidate(r *fzReq) (durMs int64, code string) {
	if n := len(r.kvset) + len(r.kvget) + len(r.atomic) + len(r.seq) + len(r.idem); n > fzLimits.MaxOps {
		return 0, httpapi.CodeTooManyOps
	}
	if r.lockID != nil {
		if c := fzCheckKey(*r.lockID); c != "" {
			return 0, c
		}
		d, c := fzMillis(r.durForm, r.durMs, fzLimits.MaxLockDur.Milliseconds())
		if c != "" {
			return 0, c
		}
		if r.durForm == durNone || d == 0 {
			return 0, httpapi.CodeDurationRequired
		}
		if _, c := fzMillis(r.waitForm, r.waitMs, fzLimits.MaxLockWait.Milliseconds()); c != "" {
			return 0, c
		}
		durMs = d
	} else if r.durForm != durNone || r.waitForm != durNone {
		return 0, httpapi.CodeInvalidRequest
	}
	if r.unlockID != nil {
		if c := fzCheckKey(*r.unlockID); c != "" {
			return 0, c
		}
		if r.unlock == 0 {
			return 0, httpapi.CodeHandleRequired
		}
	} else if r.unlock != 0 {
		return 0, httpapi.CodeInvalidRequest
	}
	for _, s := range r.kvset {
		if c := fzCheckKey(s.key); c != "" {
			return 0, c
		}
		if !s.del && s.value == "" {
			return 0, httpapi.CodeValueRequired
		}
	}
	for _, k := range r.kvget {
		if c := fzCheckKey(k); c != "" {
			return 0, c
		}
	}
	for _, a := range r.atomic {
		if c := fzCheckKey(a.key); c != "" {
			return 0, c
		}
		if a.add != nil && a.set != nil {
			return 0, httpapi.CodeInvalidRequest
		}
	}
	for _, q := range r.seq {
		if c := fzCheckKey(q.key); c != "" {
			return 0, c
		}
		if q.count == 0 || q.count > fzLimits.MaxSeqCount {
			return 0, httpapi.CodeInvalidRequest
		}
	}
	for _, id := range r.idem {
		if c := fzCheckKey(id); c != "" {
			return 0, c
		}
	}
	return durMs, ""
}

// apply predicts the reply to r in ns and, if it succeeds, applies it.
// The order of ops is engine/doc.go's.
func (m *fzModel) apply(ns string, r *fzReq) fzWant {
	durMs, code := fzValidate(r)
	if code != "" {
		return fzFail(http.StatusBadRequest, code)
	}
	st := m.nsp(ns)
	conflict := func(code string) fzWant { return fzFail(http.StatusConflict, code) }
	for _, id := range r.idem {
		if st.idem[id] {
			return conflict(httpapi.CodeDuplicateRequest)
		}
	}
	extend := r.lockID != nil && r.unlockID != nil && *r.lockID == *r.unlockID
	if r.unlockID != nil && st.locks[*r.unlockID] != r.unlock {
		return conflict(httpapi.CodeLockLost)
	}
	kv, ctr, seq := fzClone(st.kv), fzClone(st.ctr), fzClone(st.seq)
	rev := st.rev
	w := fzWant{status: http.StatusOK}
	if len(r.kvset) > 0 {
		rev++
		for _, s := range r.kvset {
			if s.del {
				delete(kv, s.key)
			} else {
				kv[s.key] = fzEntry{s.value, rev}
			}
		}
	}
	for _, a := range r.atomic {
		cur := ctr[a.key]
		if a.ifEq != nil && *a.ifEq != cur {
			return conflict(httpapi.CodePreconditionFailed)
		}
		switch {
		case a.add != nil:
			sum := cur + *a.add
			if (*a.add > 0 && sum < cur) || (*a.add < 0 && sum > cur) {
				return conflict(httpapi.CodeOutOfRange)
			}
			cur = sum
			ctr[a.key] = cur
		case a.set != nil:
			cur = *a.set
			ctr[a.key] = cur
		}
		w.atomic = append(w.atomic, fzCtrItem{a.key, cur})
	}
	for _, q := range r.seq {
		first := max(seq[q.key], 1)
		n := q.count
		seq[q.key] = first + n
		w.seq = append(w.seq, fzSeqItem{q.key, first, first + n - 1})
	}
	locks := fzClone(st.locks)
	if r.lockID != nil {
		switch {
		case extend:
			w.lock = r.unlock
		case st.locks[*r.lockID] != 0:
			return conflict(httpapi.CodeLockTimeout)
		default:
			w.lock = m.handle + 1
		}
		locks[*r.lockID] = w.lock
		w.durMs = durMs
	}
	if r.unlockID != nil && !extend {
		delete(locks, *r.unlockID)
	}
	for _, k := range r.kvget {
		e, ok := kv[k]
		if !ok {
			e.value = "null"
		}
		w.kv = append(w.kv, fzKVItem{k, json.RawMessage(e.value), e.version})
	}
	// Everything passed: commit.
	m.handle = max(m.handle, w.lock)
	st.kv, st.ctr, st.seq, st.locks, st.rev = kv, ctr, seq, locks, rev
	for _, id := range r.idem {
		st.idem[id] = true
	}
	return w
}

func fzClone[V any](m map[string]V) map[string]V {
	c := make(map[string]V, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// fzGot is any reply of the API.
type fzGot struct {
	Lock          uint64
	Till, TillMs  int64
	KV            []fzKVItem
	Atomic        []fzCtrItem
	Seq           []fzSeqItem
	Key           *string
	Value         json.RawMessage
	Version       uint64
	Code, Message string
}

// fzHarness is the engine and handler under test.
type fzHarness struct {
	t   *testing.T
	dir string
	eng *engine.Engine
	api http.Handler
	log []string // what was sent, for the failure message
}

func (h *fzHarness) open(shards int) {
	eng, err := engine.Open(engine.Config{Dir: h.dir, Shards: shards, SegmentSize: 64 << 10, SnapshotEveryRecords: -1})
	if err != nil {
		h.t.Fatalf("open: %v\n%s", err, strings.Join(h.log, "\n"))
	}
	h.eng, h.api = eng, httpapi.New(eng, fzLimits)
}

func (h *fzHarness) close() {
	if err := h.eng.Close(); err != nil {
		h.t.Fatalf("close: %v", err)
	}
}

func (h *fzHarness) send(method, path, body string) (int, []byte) {
	h.log = append(h.log, fmt.Sprintf("%s %s %q", method, path, body))
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	rec := httptest.NewRecorder()
	h.api.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

// expect fails the test unless the reply is w.
func (h *fzHarness) expect(status int, raw []byte, w fzWant, before, after int64) {
	t := h.t
	t.Helper()
	var g fzGot
	err := json.Unmarshal(raw, &g)
	bad := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("%s\nreply %d %s\nsent:\n%s", fmt.Sprintf(format, args...), status, raw, strings.Join(h.log, "\n"))
	}
	if err != nil {
		bad("reply is not JSON: %v", err)
	}
	if status != w.status || g.Code != w.code {
		bad("want %d %q", w.status, w.code)
	}
	if w.code != "" {
		if strings.TrimSpace(g.Message) == "" {
			bad("no message")
		}
		return
	}
	if g.Lock != w.lock {
		bad("lock handle %d, want %d", g.Lock, w.lock)
	}
	if w.lock != 0 && (g.TillMs < before+w.durMs || g.TillMs > after+w.durMs || g.Till != g.TillMs/1000) {
		bad("Till %d TillMs %d, want %d ms from between %d and %d", g.Till, g.TillMs, w.durMs, before, after)
	}
	if !slices.EqualFunc(g.KV, w.kv, func(a, b fzKVItem) bool {
		return a.Key == b.Key && string(a.Value) == string(b.Value) && a.Version == b.Version
	}) {
		bad("KV %s, want %s", fmtKV(g.KV), fmtKV(w.kv))
	}
	if !slices.Equal(g.Atomic, w.atomic) || !slices.Equal(g.Seq, w.seq) {
		bad("Atomic %v Seq %v, want %v %v", g.Atomic, g.Seq, w.atomic, w.seq)
	}
}

func fmtKV(items []fzKVItem) string {
	var b strings.Builder
	for _, it := range items {
		fmt.Fprintf(&b, "{%q %s v%d}", it.Key, it.Value, it.Version)
	}
	return b.String()
}

// do sends r, spelled and maybe spoiled by s, and checks the reply.
func (h *fzHarness) do(s *fzSrc, m *fzModel, ns string, r *fzReq) {
	h.t.Helper()
	body, spoiled := s.mutate(s.render(r), r)
	route := fzPick(s, []string{"/db/", "/db/", "/req/"})
	path := route + ns
	if ns == "a" && s.one(4) {
		path = route + "%61"
	}
	before := time.Now().UnixMilli()
	status, raw := h.send(http.MethodPost, path, body)
	after := time.Now().UnixMilli()
	w := fzFail(http.StatusBadRequest, spoiled)
	if spoiled == "" {
		w = m.apply(ns, r)
	}
	h.expect(status, raw, w, before, after)
	if !s.plain {
		fzOutcomes[w.code]++
	}
}

var fzOutcomes = map[string]int{}

// readBack compares the whole state of every namespace with the model,
// through requests the model applies too: KV, counters, held locks and
// used idempotency ids, all read-only. full also takes an id from each
// sequence, tries every free lock and every unused idempotency id (each
// of which writes), to find state the engine has and the model has not.
func (h *fzHarness) readBack(m *fzModel, full bool) {
	h.t.Helper()
	quiet := &fzSrc{plain: true}
	valid := func(pool []string) []string { return pool[:len(pool)-2] }
	for _, ns := range fzNS {
		st := m.nsp(ns)
		h.do(quiet, m, ns, &fzReq{kvget: valid(fzKV)})
		r := &fzReq{}
		for _, k := range valid(fzCtr) {
			r.atomic = append(r.atomic, fzAtomic{key: k})
		}
		for _, k := range valid(fzSeq) {
			if full {
				r.seq = append(r.seq, fzSeqOp{key: k, count: 1})
			}
		}
		h.do(quiet, m, ns, r)
		for _, k := range valid(fzLock) {
			if k := k; full || st.locks[k] != 0 {
				h.do(quiet, m, ns, &fzReq{lockID: &k, durForm: durMs, durMs: 3_600_000})
			}
		}
		for _, id := range valid(fzIdem) {
			if full || st.idem[id] {
				h.do(quiet, m, ns, &fzReq{idem: []string{id}})
			}
		}
	}
	if got := h.eng.LastHandle(); got != m.handle {
		h.t.Fatalf("last handle %d, model %d\n%s", got, m.handle, strings.Join(h.log, "\n"))
	}
}

func runModelSequence(t *testing.T, data []byte) {
	s := newFzSrc(data)
	h := &fzHarness{t: t, dir: t.TempDir()}
	h.open(1 + s.n(3))
	defer func() { h.eng.Close() }()
	m := &fzModel{ns: map[string]*fzNSState{}}
	restarts := 0
	for steps, step := 4+s.n(25), 0; step < steps; step++ {
		ns := fzPick(s, fzNS)
		switch k := s.n(24); {
		case k == 0 && restarts < 2:
			restarts++
			h.log = append(h.log, "-- restart")
			h.close()
			h.open(1 + s.n(3))
			h.readBack(m, false)
		case k == 1:
			h.log = append(h.log, "-- snapshot")
			if _, err := h.eng.Snapshot(); err != nil {
				t.Fatalf("snapshot: %v", err)
			}
		case k == 2: // the wrong method or namespace
			if s.coin() {
				method := fzPick(s, []string{http.MethodGet, http.MethodPut, http.MethodDelete})
				status, raw := h.send(method, "/db/"+ns, `{"KVSet":[{"Key":"k0","Value":1}]}`)
				h.expect(status, raw, fzFail(http.StatusMethodNotAllowed, httpapi.CodeMethodNotAllowed), 0, 0)
			} else {
				status, raw := h.send(http.MethodPost, "/db/"+fzPick(s, []string{"a%20", "%2e%2e", "a%2Fb", strings.Repeat("n", 129)}), `{}`)
				h.expect(status, raw, fzFail(http.StatusBadRequest, httpapi.CodeInvalidNamespace), 0, 0)
			}
		case k < 6: // a watch that returns at once
			h.watch(s, m, ns)
		default:
			h.do(s, m, ns, s.genReq(m, ns))
		}
	}
	h.readBack(m, false)
	h.log = append(h.log, "-- restart")
	h.close()
	h.open(1 + s.n(3))
	h.readBack(m, true)
}

// watch sends a watch that cannot wait (TimeoutMs 0) and checks the key's
// state in the reply.
func (h *fzHarness) watch(s *fzSrc, m *fzModel, ns string) {
	h.t.Helper()
	key := s.key(fzKV)
	e, ok := m.nsp(ns).kv[key]
	if !ok {
		e.value = "null"
	}
	version := fzPick(s, []uint64{e.version, e.version + 1, 0})
	name := fzPick(s, []string{"ID", "Key", "id", "both"})
	var f []string
	if name == "both" {
		f = append(f, `"ID":`+s.str(key), `"Key":`+s.str(key))
	} else {
		f = append(f, s.name(name)+":"+s.str(key))
	}
	f = append(f, s.name("Version")+":"+strconv.FormatUint(version, 10), fzPick(s, []string{`"TimeoutMs":0`, `"Timeout":0`, `"timeout":0.0`}))
	s.shuffle(f)
	status, raw := h.send(http.MethodPost, "/watch/"+ns, "{"+strings.Join(f, ",")+"}")
	code := fzCheckKey(key)
	if name == "both" {
		code = httpapi.CodeInvalidRequest
	}
	if code != "" {
		h.expect(status, raw, fzFail(http.StatusBadRequest, code), 0, 0)
		return
	}
	var g fzGot
	if err := json.Unmarshal(raw, &g); err != nil || status != http.StatusOK || g.Key == nil || *g.Key != key ||
		string(g.Value) != e.value || g.Version != e.version {
		h.t.Fatalf("watch %q: got %d %s, want %s v%d\nsent:\n%s", key, status, raw, e.value, e.version, strings.Join(h.log, "\n"))
	}
}
