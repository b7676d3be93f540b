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
	eng    *engine.Engine
	lim    Limits
	mux    *http.ServeMux
	router *router // the API's POST routes first, then mux
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
	db, watch := post(s, s.lim.decodeRequest, s.handleDB), post(s, s.lim.decodeWatch, s.handleWatch)
	s.mux.HandleFunc("/db/{env}", db.byPath)
	s.mux.HandleFunc("/req/{env}", db.byPath)
	s.mux.HandleFunc("/watch/{env}", watch.byPath)
	s.router = &router{mux: s.mux, routes: []route{
		{"/db/", "/db/{env}", db}, {"/req/", "/req/{env}", db}, {"/watch/", "/watch/{env}", watch},
	}}
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
		s.metrics.instrument(s.router, w, r)
		return
	}
	s.router.ServeHTTP(w, r)
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

var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// post wraps a handler with what every route shares: the method check,
// namespace validation, the body size limit, decoding and error replies.
// The body's pooled buffer goes back before h runs, since h may wait for
// minutes (a parked lock waiter, a watch) and would hold it all that
// time: what decode returns must therefore not alias the body.
func post[T any](s *Server, decode func(body []byte) (T, error), h func(w http.ResponseWriter, r *http.Request, ns string, req T) error) apiRoute {
	return func(w http.ResponseWriter, r *http.Request, ns string) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeError(w, &apiError{status: http.StatusMethodNotAllowed, code: CodeMethodNotAllowed,
				msg: r.Method + " is not allowed on " + r.URL.Path + "; use POST with a JSON body"})
			return
		}
		if err := s.lim.checkNamespace(ns); err != nil {
			writeError(w, err)
			return
		}
		buf := bodyPool.Get().(*bytes.Buffer)
		buf.Reset()
		body := r.Body
		if r.ContentLength < 0 || r.ContentLength > s.lim.MaxBodyBytes {
			// A declared length within the limit needs no second bound:
			// net/http reads no further than it (HTTP/2 refuses a stream
			// that sends more).
			body = http.MaxBytesReader(w, r.Body, s.lim.MaxBodyBytes)
		}
		if _, err := buf.ReadFrom(body); err != nil {
			bodyPool.Put(buf)
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
		req, err := decode(buf.Bytes())
		bodyPool.Put(buf)
		if err == nil {
			err = h(w, r, ns, req)
		}
		if err != nil {
			writeError(w, err)
		}
	}
}

func (s *Server) handleDB(w http.ResponseWriter, r *http.Request, ns string, req *engine.Request) error {
	resp, err := s.eng.Do(r.Context(), ns, req)
	if err != nil {
		return err
	}
	p := getReplyBuf()
	putReplyBuf(p, writeReply(w, appendResponse(*p, resp)))
	return nil
}

func (s *Server) handleWatch(w http.ResponseWriter, r *http.Request, ns string, wr *watchRequest) error {
	res, err := s.eng.Watch(r.Context(), ns, wr.key, wr.version, wr.timeout)
	if err != nil {
		return err
	}
	res.Encoded(encodeWatchReply).(*watchReply).write(w)
	return nil
}
