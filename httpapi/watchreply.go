package httpapi

import (
	"net/http"
	"strconv"

	"github.com/latchkv/latch/engine"
)

// watchReply is a watch's reply ready to send. The watches one write woke
// share one (engine.WatchResult.Encoded), so a fan-out to thousands of
// watchers encodes the value once and allocates nothing per watcher for
// the body or the headers.
type watchReply struct {
	body   []byte   // newline included
	length []string // the Content-Length header's value
}

func encodeWatchReply(res engine.WatchResult) any {
	b := appendKV(make([]byte, 0, 64+len(res.Key)+len(res.Value)), res.Key, res.Value, res.Version)
	b = append(b, '\n')
	return &watchReply{body: b, length: []string{strconv.Itoa(len(b))}}
}

func (rep *watchReply) write(w http.ResponseWriter) {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["Content-Length"] = rep.length
	w.WriteHeader(http.StatusOK)
	w.Write(rep.body) //nolint:errcheck // the client may be gone; nothing to do
}
