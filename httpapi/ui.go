package httpapi

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

// The admin page: static files embedded in the binary, no build step and
// nothing fetched from elsewhere. It reads everything through the admin
// JSON API (adminapi.go), so it serves no data itself and is open even
// when auth is on; the token field in the page authorizes its fetches.

//go:embed ui/index.html ui/app.js ui/style.css
var uiFiles embed.FS

func (s *Server) registerUI() {
	sub, err := fs.Sub(uiFiles, "ui")
	if err != nil {
		panic(err) // the embed directive above guarantees the directory
	}
	files := http.StripPrefix("/ui/", http.FileServerFS(sub))
	s.mux.HandleFunc("/ui", s.handleUI(sub, files))
	s.mux.HandleFunc("/ui/", s.handleUI(sub, files))
}

func (s *Server) handleUI(sub fs.FS, files http.Handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, &apiError{status: http.StatusMethodNotAllowed, code: CodeMethodNotAllowed,
				msg: r.Method + " is not allowed on " + r.URL.Path + "; use GET"})
			return
		}
		h := w.Header()
		// The page talks only to this server and runs only its own files.
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-cache")
		if r.URL.Path == "/ui" || r.URL.Path == "/ui/" || r.URL.Path == "/ui/index.html" {
			b, err := uiFiles.ReadFile("ui/index.html")
			if err != nil {
				writeError(w, err)
				return
			}
			h.Set("Content-Type", "text/html; charset=utf-8")
			w.Write(b) //nolint:errcheck // the client may be gone
			return
		}
		name := strings.TrimPrefix(r.URL.Path, "/ui/")
		if st, err := fs.Stat(sub, name); err != nil || st.IsDir() {
			writeError(w, &apiError{status: http.StatusNotFound, code: CodeNotFound,
				msg: "no file " + r.URL.Path + "; the admin page is at /ui"})
			return
		}
		files.ServeHTTP(w, r)
	}
}
