package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// checkSurrogates refuses an escaped UTF-16 surrogate that is not half of
// a pair ("\ud800", "\udc00x", "\ud800\u0041") in any string of the body
// except inside a Value. encoding/json turns such an escape into U+FFFD,
// so the keys "\ud800", "\udfff" and "\ufffd" would silently be one key.
// A Value is stored byte for byte as sent, so a lone surrogate there is
// kept (and read back) as the client wrote it, and is not checked.
//
// The scan is one pass over the body and only runs when the body holds an
// escape in the surrogate range at all. It reads malformed JSON without
// failing: the decoder that runs next reports that.
func checkSurrogates(body []byte) *apiError {
	if !mayHoldSurrogateEscape(body) {
		return nil
	}
	const (
		inObject = iota
		inArray
	)
	var (
		stack       []byte // inObject / inArray per open container
		wantName    bool   // the next string in the top object is a member name
		valueNext   bool   // the member just named is Value and its value comes next
		skipDepth   = -1   // while >= 0: inside a Value, until the stack shrinks below this depth
		pendingName bool   // the last name read was Value (waiting for its ':')
	)
	for i := 0; i < len(body); i++ {
		switch body[i] {
		case '{', '[':
			if valueNext && skipDepth < 0 {
				skipDepth = len(stack)
			}
			valueNext = false
			if body[i] == '{' {
				stack = append(stack, inObject)
				wantName = true
			} else {
				stack = append(stack, inArray)
				wantName = false
			}
		case '}', ']':
			if len(stack) == 0 {
				return nil
			}
			stack = stack[:len(stack)-1]
			if skipDepth >= 0 && len(stack) <= skipDepth {
				skipDepth = -1
			}
			wantName, valueNext = false, false
		case ':':
			valueNext = pendingName
			pendingName = false
			wantName = false
		case ',':
			valueNext = false
			wantName = len(stack) > 0 && stack[len(stack)-1] == inObject
		case '"':
			end, lone := scanString(body, i)
			if end < 0 {
				return nil
			}
			str := body[i+1 : end]
			switch {
			case wantName && len(stack) > 0 && stack[len(stack)-1] == inObject:
				pendingName = isValueName(str)
				wantName = false
				if lone >= 0 && skipDepth < 0 {
					return loneSurrogate(body, lone)
				}
			case valueNext:
				valueNext = false // a Value that is one string: kept as sent
			case lone >= 0 && skipDepth < 0:
				return loneSurrogate(body, lone)
			}
			i = end
		default:
			// Numbers, literals and white space: a scalar Value ends at
			// the next ',' or closing bracket, which reset valueNext.
		}
	}
	return nil
}

// mayHoldSurrogateEscape is a quick test for "\uD800"-"\uDFFF" anywhere.
func mayHoldSurrogateEscape(body []byte) bool {
	for off := 0; ; {
		j := bytes.Index(body[off:], []byte(`\u`))
		if j < 0 || off+j+4 > len(body) {
			return false
		}
		off += j + 2
		if c := body[off]; (c == 'd' || c == 'D') && strings.IndexByte("89abcdefABCDEF", body[off+1]) >= 0 {
			return true
		}
	}
}

// scanString reads the JSON string whose opening quote is at body[start].
// It returns the index of the closing quote (-1 if there is none) and the
// offset of the first escape that is a lone surrogate (-1 if none).
func scanString(body []byte, start int) (end, lone int) {
	lone = -1
	for i := start + 1; i < len(body); i++ {
		switch body[i] {
		case '"':
			return i, lone
		case '\\':
			if i+1 < len(body) && body[i+1] == 'u' {
				r, ok := hex4(body, i+2)
				switch {
				case !ok:
				case r >= 0xD800 && r <= 0xDBFF:
					if r2, ok2 := hex4(body, i+8); ok2 && body[i+6] == '\\' && body[i+7] == 'u' && r2 >= 0xDC00 && r2 <= 0xDFFF {
						i += 11 // the pair
						continue
					}
					if lone < 0 {
						lone = i
					}
				case r >= 0xDC00 && r <= 0xDFFF:
					if lone < 0 {
						lone = i
					}
				}
				i += 5
				continue
			}
			i++ // the escaped character
		}
	}
	return -1, lone
}

// hex4 reads four hex digits at body[at:].
func hex4(body []byte, at int) (rune, bool) {
	if at+4 > len(body) {
		return 0, false
	}
	var r rune
	for _, c := range body[at : at+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// isValueName reports whether a member name (raw, between the quotes) is
// Value as encoding/json matches it: case-insensitively, escapes decoded.
func isValueName(raw []byte) bool {
	if bytes.IndexByte(raw, '\\') < 0 {
		return bytes.EqualFold(raw, []byte("Value"))
	}
	var s string
	if json.Unmarshal(append(append([]byte{'"'}, raw...), '"'), &s) != nil {
		return false
	}
	return strings.EqualFold(s, "Value")
}

func loneSurrogate(body []byte, at int) *apiError {
	return badRequest(CodeBadJSON, fmt.Sprintf("the body has an escaped UTF-16 surrogate that is not half of a pair (%s at byte %d); keys, ids and names must be valid Unicode: escape a character above U+FFFF as a high and low surrogate pair, or send it as UTF-8", body[at:at+6], at))
}
