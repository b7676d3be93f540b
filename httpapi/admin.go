package httpapi

import (
	"io"
	"net/http"
	"strconv"
	"time"
)

// handleSnapshot streams a consistent snapshot of the live state: the body
// is a snapshot file (snapshot/doc.go). An error after the first byte can
// only cut the stream short, which the file's trailer checks reveal, so
// `latch snapshot save` verifies what it received before keeping it.
func (s *Server) handleSnapshot(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		writeError(w, &apiError{status: http.StatusMethodNotAllowed, code: CodeMethodNotAllowed,
			msg: r.Method + " is not allowed on " + r.URL.Path + "; use GET"})
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", `attachment; filename="latch-`+strconv.FormatInt(time.Now().Unix(), 10)+`.snap"`)
	tw := &trackingWriter{w: w}
	if _, err := s.eng.WriteSnapshot(tw); err != nil && !tw.wrote {
		h.Del("Content-Disposition")
		writeError(w, err)
	}
}

// trackingWriter notes whether any byte went out, after which the status
// can no longer change.
type trackingWriter struct {
	w     io.Writer
	wrote bool
}

func (t *trackingWriter) Write(p []byte) (int, error) {
	t.wrote = t.wrote || len(p) > 0
	return t.w.Write(p)
}
