package httpapi

import (
	"net/http"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync/atomic"
)

// Health states, as /readyz reports them.
const (
	StateRecovering = "recovering" // the engine is opening: replaying its snapshot and log
	StateReady      = "ready"      // serving the API
	StateDraining   = "draining"   // SIGTERM: finishing in-flight requests, then exiting
	StateFailed     = "failed"     // storage failed: acknowledging nothing more, exiting
)

// Health answers /livez, /readyz and /version, and stands in for the API
// while the engine is still opening: the server listens before recovery
// so that an orchestrator can tell "alive but not ready" from "dead".
//
// Health is itself an http.Handler: until Serve hands it the API it
// answers the health endpoints and replies 503 recovering to everything
// else; afterwards it passes every request to the API (which answers the
// health endpoints itself, instrumented like every route).
type Health struct {
	state   atomic.Pointer[string]
	api     atomic.Pointer[http.Handler]
	version VersionInfo
	mux     *http.ServeMux
}

// NewHealth returns a Health in the recovering state.
func NewHealth(v VersionInfo) *Health {
	h := &Health{version: v, mux: http.NewServeMux()}
	h.setState(StateRecovering)
	h.register(h.mux)
	h.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{status: http.StatusServiceUnavailable, code: CodeRecovering,
			msg: "the server is recovering its data (replaying the snapshot and log); retry when GET /readyz answers 200"})
	})
	return h
}

func (h *Health) setState(s string) { h.state.Store(&s) }

// State is the current state (one of the State constants).
func (h *Health) State() string { return *h.state.Load() }

// Serve switches from the recovery stand-in to api and marks the server
// ready.
func (h *Health) Serve(api http.Handler) {
	h.api.Store(&api)
	h.setState(StateReady)
}

// Drain makes /readyz answer 503 draining; the API keeps serving.
func (h *Health) Drain() { h.setState(StateDraining) }

// Fail makes /readyz answer 503 failed.
func (h *Health) Fail() { h.setState(StateFailed) }

// ServeHTTP implements http.Handler.
func (h *Health) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if api := h.api.Load(); api != nil {
		(*api).ServeHTTP(w, r)
		return
	}
	h.mux.ServeHTTP(w, r)
}

// register adds the health routes to mux.
func (h *Health) register(mux *http.ServeMux) {
	mux.HandleFunc("/livez", h.get(h.handleLivez))
	mux.HandleFunc("/readyz", h.get(h.handleReadyz))
	mux.HandleFunc("/version", h.get(h.handleVersion))
}

// get restricts a health route to GET and HEAD.
func (h *Health) get(f http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, &apiError{status: http.StatusMethodNotAllowed, code: CodeMethodNotAllowed,
				msg: r.Method + " is not allowed on " + r.URL.Path + "; use GET"})
			return
		}
		f(w, r)
	}
}

// handleLivez answers 200 while the process runs: it says nothing about
// the data, only that the process is not wedged.
func (h *Health) handleLivez(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, []byte(`{"Status":"alive"}`))
}

// handleReadyz answers 200 when the API serves requests, 503 while the
// engine recovers, drains for shutdown or has failed.
func (h *Health) handleReadyz(w http.ResponseWriter, r *http.Request) {
	st := h.State()
	status := http.StatusOK
	if st != StateReady {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, []byte(`{"Status":`+strconv.Quote(st)+`}`))
}

func (h *Health) handleVersion(w http.ResponseWriter, r *http.Request) {
	b := []byte(`{"Version":`)
	b = strconv.AppendQuote(b, h.version.Version)
	b = append(b, `,"GoVersion":`...)
	b = strconv.AppendQuote(b, h.version.GoVersion)
	b = append(b, `,"Commit":`...)
	b = strconv.AppendQuote(b, h.version.Commit)
	b = append(b, `,"Modified":`...)
	b = strconv.AppendBool(b, h.version.Modified)
	writeJSON(w, http.StatusOK, append(b, '}'))
}

// VersionInfo is what GET /version reports.
type VersionInfo struct {
	Version   string // the release (-ldflags -X main.version), else the module version, else "dev"
	GoVersion string // the Go toolchain that built the binary
	Commit    string // the VCS revision, "" when the build did not record it
	Modified  bool   // the working tree had uncommitted changes
}

// BuildVersion describes this binary. version is the ldflags-set version;
// "" or "dev" falls back to the module version from the build info.
func BuildVersion(version string) VersionInfo {
	v := VersionInfo{Version: version, GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		if v.Version == "" {
			v.Version = "dev"
		}
		return v
	}
	if (v.Version == "" || v.Version == "dev") && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v.Version = bi.Main.Version
	}
	if v.Version == "" {
		v.Version = "dev"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}
