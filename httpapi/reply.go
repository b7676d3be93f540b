package httpapi

import (
	"net/http"
	"strconv"
	"sync"
)

// Replies are written with as little per-request work as net/http allows:
// the Content-Type value is one slice shared by every reply (net/http
// copies the header map when the status is written, and nothing writes
// into a header value in place), and a small reply's Content-Length is
// left to net/http, which sets it without allocating when the handler
// returns with the whole body still in its buffer.

var jsonContentType = []string{"application/json"}

// autoLengthMax is the largest body net/http still holds whole when the
// handler returns (its HTTP/1 buffer before chunking is 2 KiB, HTTP/2's
// is larger), so that it sets Content-Length itself. Above it the length
// is set here: the reply must never fall back to chunked encoding.
const autoLengthMax = 2048

// maxPooledReply keeps one huge reply (a KVGet of large values) from
// pinning its buffer in the pool.
const maxPooledReply = 64 << 10

var replyPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// getReplyBuf returns an empty buffer to append a reply to, and the
// pool's handle on it for putReplyBuf.
func getReplyBuf() *[]byte {
	p := replyPool.Get().(*[]byte)
	*p = (*p)[:0]
	return p
}

// putReplyBuf gives the buffer back, b being what was appended to it,
// once the reply is written: net/http copies what Write is given before
// Write returns.
func putReplyBuf(p *[]byte, b []byte) {
	if cap(b) > maxPooledReply {
		return
	}
	*p = b[:0]
	replyPool.Put(p)
}

// writeReply sends body, a JSON object, as a 200 reply to a POST, and
// returns the buffer (body and its newline) for reuse. Only for POST
// routes: net/http does not count a HEAD reply's body, so there the
// length would be missing (writeJSON always sets it).
func writeReply(w http.ResponseWriter, body []byte) []byte {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	body = append(body, '\n')
	if len(body) > autoLengthMax {
		h["Content-Length"] = []string{strconv.Itoa(len(body))}
	}
	w.WriteHeader(http.StatusOK)
	w.Write(body) //nolint:errcheck // the client may be gone; nothing to do
	return body
}

// writeJSON sends body, a JSON object, with status: errors, health and
// admin replies, on any method.
func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h.Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(status)
	body = append(body, '\n')
	w.Write(body) //nolint:errcheck // the client may be gone; nothing to do
}

func writeError(w http.ResponseWriter, err error) {
	status, code, msg := classify(err)
	writeJSON(w, status, appendError(nil, code, msg))
}
