package httpapi

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// jsonScan reads one JSON text in place, in one pass, for the request
// decoders of wiredecode.go: it checks the syntax, UTF-8 inside strings
// (outside them the grammar allows only ASCII), the nesting depth, and
// escaped lone surrogates outside a Value. Any of these fails the whole
// body with bad_json (fail); what a field holds is the decoders' concern.
type jsonScan struct {
	b       []byte
	i       int
	depth   int       // containers open
	fail    *apiError // the first fault that makes the body not one JSON text
	failSur bool      // fail is a lone surrogate
	lenient bool      // check no surrogates: to find a syntax error past one
}

// maxNesting is encoding/json's limit, which docs/API.md promises.
const maxNesting = 10000

// failAt records a syntax error at byte i (the end of the body: truncated).
func (s *jsonScan) failAt(i int, context string) {
	if s.fail != nil {
		return
	}
	if i >= len(s.b) {
		s.fail = badRequest(CodeBadJSON, "the body is empty or ends before the JSON object does")
		return
	}
	s.fail = badRequest(CodeBadJSON, fmt.Sprintf("the body is not valid JSON: invalid character %s %s (at byte %d)", quoteChar(s.b[i]), context, i+1))
}

func quoteChar(c byte) string {
	switch c {
	case '\'':
		return `'\''`
	case '"':
		return `'"'`
	}
	q := strconv.Quote(string(rune(c)))
	return "'" + q[1:len(q)-1] + "'"
}

// notUTF8 refuses a body that is not UTF-8 (RFC 8259 section 8.1), naming
// its first bad byte, or returns nil. Decoders that turn each bad byte into
// U+FFFD would make the keys "k\xff" and "k\xfe" one key, and echo a
// stored Value back as JSON that strict parsers refuse.
func notUTF8(body []byte) *apiError {
	if utf8.Valid(body) {
		return nil
	}
	off := 0
	for off < len(body) {
		r, size := utf8.DecodeRune(body[off:])
		if r == utf8.RuneError && size == 1 {
			break
		}
		off += size
	}
	return badRequest(CodeBadJSON, fmt.Sprintf("the body is not valid UTF-8 (byte %d); JSON text must be UTF-8: send keys and values as UTF-8 or as \\u escapes", off))
}

func (s *jsonScan) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// kind is the first byte of the value at s.i, 0 at the end of the body.
func (s *jsonScan) kind() byte {
	if s.i >= len(s.b) || s.fail != nil {
		return 0
	}
	return s.b[s.i]
}

// kindName names a value by its first byte, as encoding/json's type
// errors do.
func kindName(c byte) string {
	switch c {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	}
	return "number"
}

// push counts the container opening at s.i.
func (s *jsonScan) push() bool {
	s.depth++
	if s.depth > maxNesting && s.fail == nil {
		s.fail = badRequest(CodeBadJSON, fmt.Sprintf("the body is not valid JSON: invalid character %s exceeded max depth (at byte %d)", quoteChar(s.b[s.i]), s.i+1))
	}
	return s.fail == nil
}

// enter consumes the '{' or '[' at s.i; it reports whether a member or an
// element follows (false for an empty container, consumed whole).
func (s *jsonScan) enter(closer byte) bool {
	if !s.push() {
		return false
	}
	s.i++
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == closer {
		s.i++
		s.depth--
		return false
	}
	return true
}

// more consumes the ',' or the closer after a member or element; it
// reports whether another follows.
func (s *jsonScan) more(closer byte) bool {
	if s.fail != nil {
		return false
	}
	s.ws()
	if s.i < len(s.b) {
		switch s.b[s.i] {
		case ',':
			s.i++
			s.ws()
			return true
		case closer:
			s.i++
			s.depth--
			return false
		}
	}
	if closer == '}' {
		s.failAt(s.i, "after object key:value pair")
	} else {
		s.failAt(s.i, "after array element")
	}
	return false
}

// name reads a member name and its ':'. A name is never exempt from the
// surrogate check: names inside a Value are read by skip.
func (s *jsonScan) name() (raw []byte, esc bool) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		s.failAt(s.i, "looking for beginning of object key string")
		return nil, false
	}
	raw, esc = s.str(false)
	if s.fail != nil {
		return nil, false
	}
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != ':' {
		s.failAt(s.i, "after object key")
		return nil, false
	}
	s.i++
	s.ws()
	return raw, esc
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// plain8 reports whether none of 8 string bytes needs a closer look: no
// quote, backslash, control character or byte of a multi-byte sequence.
func plain8(v uint64) bool {
	q, bs := v^(lsb*'"'), v^(lsb*'\\')
	return (v|(q-lsb)&^q|(bs-lsb)&^bs|(v-lsb*0x20)&^v)&msb == 0
}

// str reads the string whose opening quote is at s.i and returns what is
// between the quotes, and whether that holds an escape. Unless exempt (in
// a Value), an escaped lone surrogate fails the body: encoding/json would
// read it as U+FFFD, making "\ud800" and "\udfff" one key.
func (s *jsonScan) str(exempt bool) (raw []byte, esc bool) {
	b := s.b
	start := s.i + 1
	i := start
	exempt = exempt || s.lenient
	for {
		for i+8 <= len(b) && plain8(binary.LittleEndian.Uint64(b[i:])) {
			i += 8
		}
		if i >= len(b) {
			s.failAt(i, "")
			return nil, false
		}
		switch c := b[i]; {
		case c == '"':
			s.i = i + 1
			return b[start:i], esc
		case c == '\\':
			esc = true
			if i = s.escape(i, exempt); i < 0 {
				return nil, false
			}
		case c < 0x20:
			s.failAt(i, "in string literal")
			return nil, false
		case c < utf8.RuneSelf:
			i++
		default:
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n == 1 {
				if s.fail == nil {
					s.fail = notUTF8(b)
				}
				return nil, false
			}
			i += n
		}
	}
}

// escape checks the escape at b[i] ('\\') and returns the index after it,
// or -1 after failing the body.
func (s *jsonScan) escape(i int, exempt bool) int {
	b := s.b
	if i+1 >= len(b) {
		s.failAt(i+1, "")
		return -1
	}
	switch b[i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return i + 2
	case 'u':
	default:
		s.failAt(i+1, "in string escape code")
		return -1
	}
	r, ok := hex4(b, i+2)
	if !ok {
		for j := i + 2; ; j++ {
			if j >= len(b) || !isHex(b[j]) {
				s.failAt(j, "in \\u hexadecimal character escape")
				return -1
			}
		}
	}
	if exempt || r < 0xD800 || r > 0xDFFF {
		return i + 6
	}
	if r <= 0xDBFF && i+12 <= len(b) && b[i+6] == '\\' && b[i+7] == 'u' {
		if r2, ok := hex4(b, i+8); ok && r2 >= 0xDC00 && r2 <= 0xDFFF {
			return i + 12
		}
	}
	if s.fail == nil {
		s.fail, s.failSur = loneSurrogate(b, i), true
	}
	return -1
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// num reads the number at s.i and returns its text.
func (s *jsonScan) num() []byte {
	b, start := s.b, s.i
	i := start
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i >= len(b):
		s.failAt(i, "")
		return nil
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	default:
		s.failAt(i, "in numeric literal")
		return nil
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			s.failAt(i, "after decimal point in numeric literal")
			return nil
		}
		for ; i < len(b) && isDigit(b[i]); i++ {
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			s.failAt(i, "in exponent of numeric literal")
			return nil
		}
		for ; i < len(b) && isDigit(b[i]); i++ {
		}
	}
	s.i = i
	return b[start:i]
}

// lit reads the literal word (true, false, null) at s.i.
func (s *jsonScan) lit(word string) {
	for j := 0; j < len(word); j++ {
		if s.i+j >= len(s.b) || s.b[s.i+j] != word[j] {
			s.failAt(s.i+j, "in literal "+word+" (expecting "+quoteChar(word[j])+")")
			return
		}
	}
	s.i += len(word)
}

// scalar reads a string, number or literal at s.i; false if there is none.
func (s *jsonScan) scalar(exempt bool) bool {
	switch c := s.kind(); {
	case c == '"':
		s.str(exempt)
	case c == 't':
		s.lit("true")
	case c == 'f':
		s.lit("false")
	case c == 'n':
		s.lit("null")
	case c == '-' || isDigit(c):
		s.num()
	default:
		s.failAt(s.i, "looking for beginning of value")
		return false
	}
	return true
}

// skip reads the value at s.i, whatever it is. Unless exempt, strings in
// it are checked for lone surrogates, except in the value of a member
// named Value (at any depth), as checkSurrogates did: a Value is kept as
// sent, and an unknown field's Value is refused as unknown, not as a bad
// surrogate. It loops rather than recursing: 10,000 levels are legal.
func (s *jsonScan) skip(exempt bool) {
	var stackArr [64]byte
	stack := stackArr[:0]
	exFrom := -1   // while len(stack) >= exFrom >= 0: inside an exempt container
	next := exempt // the value about to be read is a Value's
	var raw []byte
value:
	s.ws()
	switch s.kind() {
	case '{':
		if !s.push() {
			return
		}
		stack = append(stack, '{')
		if next && exFrom < 0 {
			exFrom = len(stack)
		}
		s.i++
		s.ws()
		if s.i < len(s.b) && s.b[s.i] == '}' {
			s.i++
			goto pop
		}
		goto member
	case '[':
		if !s.push() {
			return
		}
		stack = append(stack, '[')
		if next && exFrom < 0 {
			exFrom = len(stack)
		}
		s.i++
		s.ws()
		if s.i < len(s.b) && s.b[s.i] == ']' {
			s.i++
			goto pop
		}
		next = false
		goto value
	default:
		if !s.scalar(next || exFrom >= 0) || s.fail != nil {
			return
		}
		goto after
	}
pop:
	stack = stack[:len(stack)-1]
	s.depth--
	if len(stack) < exFrom {
		exFrom = -1
	}
after:
	next = false
	if len(stack) == 0 {
		return
	}
	s.ws()
	if s.i < len(s.b) {
		switch c := s.b[s.i]; {
		case c == ',':
			s.i++
			if stack[len(stack)-1] == '{' {
				s.ws()
				goto member
			}
			goto value
		case c == '}' && stack[len(stack)-1] == '{', c == ']' && stack[len(stack)-1] == '[':
			s.i++
			goto pop
		}
	}
	if stack[len(stack)-1] == '{' {
		s.failAt(s.i, "after object key:value pair")
	} else {
		s.failAt(s.i, "after array element")
	}
	return
member:
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		s.failAt(s.i, "looking for beginning of object key string")
		return
	}
	raw, _ = s.str(exFrom >= 0)
	if s.fail != nil {
		return
	}
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != ':' {
		s.failAt(s.i, "after object key")
		return
	}
	s.i++
	next = exFrom < 0 && isValueName(raw)
	goto value
}

// unquote returns the text of a string's raw content (between quotes).
func unquote(raw []byte, esc bool) string {
	if !esc {
		return string(raw)
	}
	var buf [64]byte
	return string(appendUnquoted(buf[:0], raw))
}

// appendUnquoted decodes escapes as encoding/json does: a lone surrogate
// becomes U+FFFD (the scan lets one through only inside a Value).
func appendUnquoted(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		switch raw[i+1] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, _ := hex4(raw, i+2)
			i += 6
			if utf16.IsSurrogate(r) {
				r = utf8.RuneError
				if r1, _ := hex4(raw, i-4); r1 <= 0xDBFF && i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
					r2, _ := hex4(raw, i+2)
					if dec := utf16.DecodeRune(r1, r2); dec != utf8.RuneError {
						r = dec
						i += 6
					}
				}
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default: // " \ /
			dst = append(dst, raw[i+1])
		}
		i += 2
	}
	return dst
}

// equalFoldName reports whether a member name matches field as
// encoding/json matches names: exactly, or under Unicode case folding
// (so "KEY" and "\u212aey", with a Kelvin sign, are both Key).
func equalFoldName(name []byte, field string) bool {
	for _, c := range name {
		if c >= utf8.RuneSelf {
			return strings.EqualFold(string(name), field)
		}
	}
	if len(name) != len(field) {
		return false
	}
	for i, c := range name {
		if d := field[i]; c != d {
			if l := c | 0x20; l != d|0x20 || l < 'a' || l > 'z' {
				return false
			}
		}
	}
	return true
}

// matchName returns the index in fields of the field a member name
// means, or -1.
func matchName(raw []byte, esc bool, fields []string) int {
	name := raw
	if esc {
		var buf [64]byte
		name = appendUnquoted(buf[:0], raw)
	}
	for i, f := range fields {
		if string(name) == f {
			return i
		}
	}
	for i, f := range fields {
		if equalFoldName(name, f) {
			return i
		}
	}
	return -1
}

// parseInt64 reads a number's text as strconv.ParseInt does (no
// fraction, no exponent, within 64 bits).
func parseInt64(lit []byte) (int64, bool) {
	neg := len(lit) > 0 && lit[0] == '-'
	if neg {
		lit = lit[1:]
	}
	u, ok := parseUint64(lit)
	switch {
	case !ok:
		return 0, false
	case neg && u <= 1<<63:
		return -int64(u-1) - 1, true
	case !neg && u < 1<<63:
		return int64(u), true
	}
	return 0, false
}

// parseUint64 reads a number's text as strconv.ParseUint does (digits
// only: no sign, fraction or exponent, within 64 bits).
func parseUint64(lit []byte) (uint64, bool) {
	if len(lit) == 0 {
		return 0, false
	}
	var v uint64
	for _, c := range lit {
		if !isDigit(c) {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}
