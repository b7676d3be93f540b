package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/latchkv/latch/engine"
)

// The admin JSON API (docs/API.md, "Admin API"): read-only views of the
// live state for the /ui page and scripts, and the operator's force
// release. Views come from the engine's shard loops; they are consistent
// per shard and may be stale a moment after they return. Every list is
// paged (limit, after, Next), so no reply and no loop visit grows with
// the number of namespaces. Not a hot path:
// replies use encoding/json, except stored values, which are passed
// through byte-exact as everywhere else.

// Version is reported by GET /admin/stats; `latch serve` sets it to the
// binary's version.
var Version = "dev"

// started is the process start as far as uptime is concerned.
var started = time.Now()

// registerAdmin adds the admin routes to the mux.
func (s *Server) registerAdmin() {
	s.mux.HandleFunc("/admin/namespaces", s.get(s.handleAdminNamespaces))
	s.mux.HandleFunc("/admin/locks", s.get(s.handleAdminLocks))
	s.mux.HandleFunc("/admin/locks/release", s.handleAdminRelease)
	s.mux.HandleFunc("/admin/watches", s.get(s.handleAdminWatches))
	s.mux.HandleFunc("/admin/keys", s.get(s.handleAdminKeys))
	s.mux.HandleFunc("/admin/stats", s.get(s.handleAdminStats))
}

// get wraps a read-only admin handler: GET only, and error replies.
func (s *Server) get(h func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			writeError(w, &apiError{status: http.StatusMethodNotAllowed, code: CodeMethodNotAllowed,
				msg: r.Method + " is not allowed on " + r.URL.Path + "; use GET"})
			return
		}
		if err := h(w, r); err != nil {
			writeError(w, err)
		}
	}
}

// optionalNamespace is the ?ns= filter: "" for every namespace.
func (s *Server) optionalNamespace(r *http.Request) (string, error) {
	ns := r.URL.Query().Get("ns")
	if ns == "" {
		return "", nil
	}
	if err := s.lim.checkNamespace(ns); err != nil {
		return "", err
	}
	return ns, nil
}

func writeAdminJSON(w http.ResponseWriter, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}

// pageLimit is the ?limit= of a paged view: 1 to engine.MaxPageLimit,
// engine.DefaultPageLimit when absent.
func pageLimit(q url.Values) (int, error) {
	v := q.Get("limit")
	if v == "" {
		return engine.DefaultPageLimit, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > engine.MaxPageLimit {
		return 0, badRequest(CodeInvalidRequest, fmt.Sprintf("limit must be an integer from 1 to %d (got %q)", engine.MaxPageLimit, v))
	}
	return n, nil
}

// A lock or watch cursor is NAMESPACE/KEY on the wire: namespaces cannot
// hold a slash, so the first one splits it.
func cursorString(c engine.Cursor) string { return c.Namespace + "/" + c.Key }

func (s *Server) parseCursor(after string) (engine.Cursor, error) {
	if after == "" {
		return engine.Cursor{}, nil
	}
	ns, key, found := strings.Cut(after, "/")
	if !found || s.lim.checkNamespace(ns) != nil {
		return engine.Cursor{}, badRequest(CodeInvalidRequest, fmt.Sprintf("after must be NAMESPACE/KEY as the last page's Next gave it (got %q)", after))
	}
	return engine.Cursor{Namespace: ns, Key: key}, nil
}

// pagedView reads the filter, cursor and limit every lock and watch view
// takes.
func (s *Server) pagedView(r *http.Request) (ns string, after engine.Cursor, limit int, err error) {
	if ns, err = s.optionalNamespace(r); err != nil {
		return
	}
	q := r.URL.Query()
	if after, err = s.parseCursor(q.Get("after")); err != nil {
		return
	}
	limit, err = pageLimit(q)
	return
}

func (s *Server) handleAdminNamespaces(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit, err := pageLimit(q)
	if err != nil {
		return err
	}
	after := q.Get("after")
	if after != "" && s.lim.checkNamespace(after) != nil {
		return badRequest(CodeInvalidRequest, fmt.Sprintf("after must be a namespace name as the last page's Next gave it (got %q)", after))
	}
	page, err := s.eng.NamespacesPage(r.Context(), after, limit)
	if err != nil {
		return err
	}
	out := struct {
		Namespaces []engine.NamespaceInfo
		Next       string
	}{page.Namespaces, ""}
	if out.Namespaces == nil {
		out.Namespaces = []engine.NamespaceInfo{}
	}
	if page.More {
		out.Next = page.Namespaces[len(page.Namespaces)-1].Name
	}
	return writeAdminJSON(w, out)
}

func (s *Server) handleAdminLocks(w http.ResponseWriter, r *http.Request) error {
	ns, after, limit, err := s.pagedView(r)
	if err != nil {
		return err
	}
	page, err := s.eng.LocksPage(r.Context(), ns, after, limit)
	if err != nil {
		return err
	}
	out := struct {
		Locks []engine.LockInfo
		Next  string
	}{page.Locks, ""}
	if out.Locks == nil {
		out.Locks = []engine.LockInfo{}
	}
	if page.More {
		last := page.Locks[len(page.Locks)-1]
		out.Next = cursorString(engine.Cursor{Namespace: last.Namespace, Key: last.Key})
	}
	return writeAdminJSON(w, out)
}

func (s *Server) handleAdminWatches(w http.ResponseWriter, r *http.Request) error {
	ns, after, limit, err := s.pagedView(r)
	if err != nil {
		return err
	}
	page, err := s.eng.WatchesPage(r.Context(), ns, after, limit)
	if err != nil {
		return err
	}
	out := struct {
		Watches []engine.WatchInfo
		Next    string
	}{page.Watches, ""}
	if out.Watches == nil {
		out.Watches = []engine.WatchInfo{}
	}
	if page.More {
		last := page.Watches[len(page.Watches)-1]
		out.Next = cursorString(engine.Cursor{Namespace: last.Namespace, Key: last.Key})
	}
	return writeAdminJSON(w, out)
}

func (s *Server) handleAdminKeys(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	ns := q.Get("ns")
	if ns == "" {
		return badRequest(CodeNamespaceRequired, "give the namespace to list: /admin/keys?ns=NAME")
	}
	if err := s.lim.checkNamespace(ns); err != nil {
		return err
	}
	limit, err := pageLimit(q)
	if err != nil {
		return err
	}
	page, err := s.eng.Keys(r.Context(), ns, q.Get("prefix"), q.Get("after"), limit)
	if err != nil {
		return err
	}
	b := append(make([]byte, 0, 256), `{"Keys":[`...)
	for i, kv := range page.Keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendKV(b, kv.Key, kv.Value, kv.Version)
	}
	b = append(b, `],"Next":`...)
	b = appendString(b, page.Next)
	writeJSON(w, http.StatusOK, append(b, '}'))
	return nil
}

// adminStats is the body of GET /admin/stats.
type adminStats struct {
	Version      string
	UptimeMs     int64
	Namespaces   int
	LocksHeld    int
	Waiters      int
	Watchers     int
	LastHandle   uint64
	WALBytes     int64
	LastSnapshot *engine.SnapshotFileStats // null before the first snapshot
}

func (s *Server) handleAdminStats(w http.ResponseWriter, r *http.Request) error {
	st, err := s.eng.Overview(r.Context())
	if err != nil {
		return err
	}
	return writeAdminJSON(w, adminStats{
		Version: Version, UptimeMs: time.Since(started).Milliseconds(),
		Namespaces: st.Namespaces, LocksHeld: st.LocksHeld, Waiters: st.Waiters, Watchers: st.Watchers,
		LastHandle: st.LastHandle, WALBytes: st.WALBytes, LastSnapshot: st.LastSnapshot,
	})
}

// wireRelease is the body of POST /admin/locks/release.
type wireRelease struct {
	Namespace string
	Key       string
	Handle    *optionalHandle
}

// optionalHandle is a handle as a JSON number or numeric string; 0 or
// absent means "whoever holds it".
type optionalHandle uint64

func (h *optionalHandle) UnmarshalJSON(b []byte) error {
	s := string(bytes.TrimSpace(b))
	if strings.HasPrefix(s, `"`) {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	}
	v, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return handleError("Handle must be a non-negative integer, as a number or a numeric string (got " + string(b) + ")")
	}
	*h = optionalHandle(v)
	return nil
}

// handleError is a bad Handle; its message is the whole 400's message.
type handleError string

func (e handleError) Error() string { return string(e) }

func (s *Server) handleAdminRelease(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, &apiError{status: http.StatusMethodNotAllowed, code: CodeMethodNotAllowed,
			msg: r.Method + " is not allowed on " + r.URL.Path + `; use POST with {"Namespace", "Key", "Handle"}`})
		return
	}
	if err := s.adminRelease(w, r); err != nil {
		writeError(w, err)
	}
}

func (s *Server) adminRelease(w http.ResponseWriter, r *http.Request) error {
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, s.lim.MaxBodyBytes)); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return &apiError{status: http.StatusRequestEntityTooLarge, code: CodeBodyTooLarge,
				msg: "the body is over " + strconv.FormatInt(s.lim.MaxBodyBytes, 10) + " bytes (--max-body-bytes)"}
		}
		return badRequest(CodeBadJSON, "reading the body failed: "+err.Error())
	}
	var req wireRelease
	if err := strictUnmarshal(buf.Bytes(), &req); err != nil {
		var he handleError
		if errors.As(err, &he) {
			return badRequest(CodeBadJSON, he.Error())
		}
		return jsonError(err)
	}
	if req.Namespace == "" {
		return badRequest(CodeNamespaceRequired, `give the lock's namespace: {"Namespace": "NAME", "Key": "LOCK"}`)
	}
	if err := s.lim.checkNamespace(req.Namespace); err != nil {
		return err
	}
	if err := s.lim.checkKey("Key (the lock id)", req.Key); err != nil {
		return err
	}
	var want uint64
	if req.Handle != nil {
		want = uint64(*req.Handle)
	}
	res, err := s.eng.ForceRelease(r.Context(), req.Namespace, req.Key, want)
	if err != nil {
		return err
	}
	// Who, what and what followed; never values or tokens.
	attrs := []any{"namespace", req.Namespace, "key", req.Key, "old_handle", res.Handle, "remote", r.RemoteAddr}
	if res.NewHandle != 0 {
		attrs = append(attrs, "new_handle", res.NewHandle)
	}
	slog.Info("admin force release", attrs...)
	return writeAdminJSON(w, struct {
		Released bool
		Handle   uint64
	}{true, res.Handle})
}
