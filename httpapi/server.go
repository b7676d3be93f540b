package httpapi

import (
	"bytes"
	"errors"
	"net/http"
	"path"
	"strconv"
	"sync"

	"github.com/latchkv/latch/engine"
)

// Server is the HTTP handler of latch's API.
type Server struct {
	eng *engine.Engine
	lim Limits
	mux *http.ServeMux
	// Observability (health.go, metrics.go): a ready Health unless
	// Observe gives the process's own; metrics off unless Observe.
	health  *Health
	metrics *Metrics
}

// New returns the API handler over eng.
func New(eng *engine.Engine, lim Limits) *Server {
	s := &Server{eng: eng, lim: lim, mux: http.NewServeMux()}
	s.health = NewHealth(BuildVersion(""))
	s.health.setState(StateReady)
	for _, p := range []string{"/livez", "/readyz", "/version"} {
		s.mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) { s.health.mux.ServeHTTP(w, r) })
	}
	s.mux.HandleFunc("/metrics", s.handleMetrics)
	s.mux.HandleFunc("/db/{env}", s.post(s.handleDB))
	s.mux.HandleFunc("/req/{env}", s.post(s.handleDB))
	s.mux.HandleFunc("/watch/{env}", s.post(s.handleWatch))
	s.mux.HandleFunc("/admin/snapshot", s.handleSnapshot)
	s.registerAdmin() // adminapi.go
	s.registerUI()    // ui.go
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{status: http.StatusNotFound, code: CodeNotFound,
			msg: "no route " + r.Method + " " + r.URL.EscapedPath() + "; the API is POST /db/{env}, POST /req/{env} and POST /watch/{env}"})
	})
	return s
}

// Observe makes the server answer /livez, /readyz and /version from h
// (the process's Health, shared with the stand-in that served them during
// recovery) and serve and record metrics m (nil: no metrics). Call it
// before serving.
func (s *Server) Observe(h *Health, m *Metrics) {
	if h != nil {
		s.health = h
	}
	s.metrics = m
	if m != nil {
		m.eng.Store(s.eng)
	}
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// http.ServeMux answers a path with //, . or .. segments with a
	// bodiless 307 to the cleaned path, which a client following it
	// would POST its body to: a path it never named. Refuse it instead,
	// with the usual JSON error.
	if p := r.URL.EscapedPath(); r.Method != http.MethodConnect && !canonicalPath(p) {
		writeError(w, &apiError{status: http.StatusNotFound, code: CodeNotFound,
			msg: "no route " + r.Method + " " + p + ": the path has empty, . or .. segments; the API is POST /db/{env}, POST /req/{env} and POST /watch/{env}"})
		return
	}
	if s.metrics != nil {
		s.metrics.instrument(s.mux, w, r)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// canonicalPath reports whether http.ServeMux would route p as it is,
// rather than redirect to a cleaned form (see its cleanPath).
func canonicalPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	clean := path.Clean(p)
	return clean == p || (p[len(p)-1] == '/' && len(p) == len(clean)+1 && clean != "/" && p[:len(clean)] == clean)
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	if s.metrics == nil {
		writeError(w, &apiError{status: http.StatusNotFound, code: CodeNotFound, msg: "metrics are not enabled on this server"})
		return
	}
	s.metrics.ServeHTTP(w, r)
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, ns string, body []byte) error

var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// post wraps a handler with what every route shares: the method check,
// namespace validation, the body size limit and error replies.
func (s *Server) post(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeError(w, &apiError{status: http.StatusMethodNotAllowed, code: CodeMethodNotAllowed,
				msg: r.Method + " is not allowed on " + r.URL.Path + "; use POST with a JSON body"})
			return
		}
		ns := r.PathValue("env")
		if err := s.lim.checkNamespace(ns); err != nil {
			writeError(w, err)
			return
		}
		buf := bodyPool.Get().(*bytes.Buffer)
		defer bodyPool.Put(buf)
		buf.Reset()
		if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, s.lim.MaxBodyBytes)); err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				writeError(w, &apiError{status: http.StatusRequestEntityTooLarge, code: CodeBodyTooLarge,
					msg: "the body is over " + strconv.FormatInt(s.lim.MaxBodyBytes, 10) + " bytes (--max-body-bytes)"})
				return
			}
			if isBodyTimeout(err) {
				w.Header().Set("Connection", "close")
				writeError(w, &apiError{status: http.StatusRequestTimeout, code: CodeRequestTimeout,
					msg: "the body did not arrive in time (--body-read-timeout); send it at once after the headers"})
				return
			}
			writeError(w, badRequest(CodeBadJSON, "reading the body failed: "+err.Error()))
			return
		}
		if err := h(w, r, ns, buf.Bytes()); err != nil {
			writeError(w, err)
		}
	}
}

func (s *Server) handleDB(w http.ResponseWriter, r *http.Request, ns string, body []byte) error {
	req, err := s.lim.decodeRequest(body)
	if err != nil {
		return err
	}
	resp, err := s.eng.Do(r.Context(), ns, req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, appendResponse(make([]byte, 0, 256), resp))
	return nil
}

func (s *Server) handleWatch(w http.ResponseWriter, r *http.Request, ns string, body []byte) error {
	wr, err := s.lim.decodeWatch(body)
	if err != nil {
		return err
	}
	res, err := s.eng.Watch(r.Context(), ns, wr.key, wr.version, wr.timeout)
	if err != nil {
		return err
	}
	res.Encoded(encodeWatchReply).(*watchReply).write(w)
	return nil
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(status)
	body = append(body, '\n')
	w.Write(body) //nolint:errcheck // the client may be gone; nothing to do
}

func writeError(w http.ResponseWriter, err error) {
	status, code, msg := classify(err)
	writeJSON(w, status, appendError(nil, code, msg))
}
