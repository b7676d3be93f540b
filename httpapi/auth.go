package httpapi

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
)

// The auth file (--auth-file) lists bearer tokens, one grant a line:
//
//	# comments start with '#', also after a grant
//	admin <token>               every route, /admin/... included
//	ns <namespace> <token>      /db, /req and /watch of that namespace
//	ns team-* <token>           every namespace starting with "team-"
//	ns * <token>                every namespace (but not /admin/...)
//
// A token is either written out (at least MinTokenBytes of the RFC 6750
// token characters A-Z a-z 0-9 - . _ ~ + / =) or stored as
// sha256:<64 hex digits>, the SHA-256 of the token, so the file need not
// hold the secret itself. One token may appear on several lines; its grants
// add up. Errors name the file and line, never the token.

// MinTokenBytes is the shortest token the auth file accepts written out.
// Tokens are secrets compared whole; short ones can be guessed.
const MinTokenBytes = 16

// AuthTable is a parsed auth file: what each token may do. It is never
// changed once built; a reload builds a new one.
type AuthTable struct {
	// grants is keyed by the token's SHA-256. A lookup therefore hashes the
	// presented token first, and the map's timing can only reveal something
	// about the digest of a guess, which says nothing usable about any
	// token; the final comparison is constant-time besides.
	grants    map[[sha256.Size]byte]*grant
	plaintext bool // some token is written out, not hashed
}

type grant struct {
	digest   [sha256.Size]byte
	admin    bool
	allNS    bool
	names    map[string]bool
	prefixes []string
}

func (g *grant) allows(ns string) bool {
	if g.admin || g.allNS || g.names[ns] {
		return true
	}
	for _, p := range g.prefixes {
		if strings.HasPrefix(ns, p) {
			return true
		}
	}
	return false
}

// Tokens reports how many distinct tokens the table knows.
func (t *AuthTable) Tokens() int { return len(t.grants) }

// LoadAuthFile reads and checks an auth file. It refuses a file anyone may
// write (anyone could make themselves admin), and a file anyone may read
// that holds tokens written out; hashed tokens may be world-readable, as a
// Kubernetes secret mounted with its default mode is.
func LoadAuthFile(path string) (*AuthTable, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("auth file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("auth file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("auth file %s is not a regular file", path)
	}
	if st.Mode().Perm()&0o002 != 0 {
		return nil, fmt.Errorf("auth file %s is writable by every user (mode %04o), so anyone could grant themselves admin: chmod 600 %s", path, st.Mode().Perm(), path)
	}
	t, err := ParseAuth(f, path)
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o004 != 0 && t.plaintext {
		return nil, fmt.Errorf("auth file %s is readable by every user (mode %04o) and holds tokens written out: chmod 600 %s, or store each token as sha256:<hex> (printf %%s \"$TOKEN\" | sha256sum)", path, st.Mode().Perm(), path)
	}
	return t, nil
}

// ParseAuth parses auth file text; name is used in error messages.
func ParseAuth(r io.Reader, name string) (*AuthTable, error) {
	t := &AuthTable{grants: make(map[[sha256.Size]byte]*grant)}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	line := 0
	for sc.Scan() {
		line++
		fields := strings.Fields(sc.Text())
		for i, f := range fields {
			if strings.HasPrefix(f, "#") {
				fields = fields[:i]
				break
			}
		}
		if len(fields) == 0 {
			continue
		}
		fail := func(format string, args ...any) error {
			return fmt.Errorf("auth file %s line %d: %s", name, line, fmt.Sprintf(format, args...))
		}
		var pattern, token string
		switch {
		case fields[0] == "admin" && len(fields) == 2:
			token = fields[1]
		case fields[0] == "ns" && len(fields) == 3:
			pattern, token = fields[1], fields[2]
		case fields[0] == "admin":
			return nil, fail("want `admin <token>`, got %d fields", len(fields))
		case fields[0] == "ns":
			return nil, fail("want `ns <namespace> <token>`, got %d fields", len(fields))
		default:
			return nil, fail("unknown kind %q; a line is `admin <token>` or `ns <namespace> <token>`", fields[0])
		}
		digest, hashed, err := tokenDigest(token)
		if err != nil {
			return nil, fail("%v", err)
		}
		t.plaintext = t.plaintext || !hashed
		g := t.grants[digest]
		if g == nil {
			g = &grant{digest: digest, names: make(map[string]bool)}
			t.grants[digest] = g
		}
		switch {
		case pattern == "":
			g.admin = true
		case pattern == "*":
			g.allNS = true
		case strings.HasSuffix(pattern, "*"):
			prefix := strings.TrimSuffix(pattern, "*")
			if err := checkNamespacePattern(prefix); err != nil {
				return nil, fail("namespace pattern %q: %v", pattern, err)
			}
			g.prefixes = append(g.prefixes, prefix)
		default:
			if err := checkNamespacePattern(pattern); err != nil {
				return nil, fail("namespace %q: %v", pattern, err)
			}
			g.names[pattern] = true
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("auth file %s line %d: %w", name, line+1, err)
	}
	if len(t.grants) == 0 {
		return nil, fmt.Errorf("auth file %s holds no tokens; every data and admin route would be refused (give at least `admin <token>`)", name)
	}
	return t, nil
}

// tokenDigest returns the SHA-256 a token is looked up by, and whether it
// was given hashed. Its errors never quote the token.
func tokenDigest(token string) (d [sha256.Size]byte, hashed bool, err error) {
	if hexDigest, ok := strings.CutPrefix(token, "sha256:"); ok {
		b, err := hex.DecodeString(hexDigest)
		if err != nil || len(b) != sha256.Size {
			return d, true, errors.New("sha256: must be followed by 64 hex digits, the SHA-256 of the token")
		}
		copy(d[:], b)
		return d, true, nil
	}
	if len(token) < MinTokenBytes {
		return d, false, fmt.Errorf("the token is %d bytes; use at least %d (for example: openssl rand -hex 32)", len(token), MinTokenBytes)
	}
	for i := 0; i < len(token); i++ {
		if !isTokenChar(token[i]) {
			return d, false, fmt.Errorf("the token has a character that cannot go in an Authorization header (byte %d); use A-Z a-z 0-9 - . _ ~ + / =", i)
		}
	}
	return sha256.Sum256([]byte(token)), false, nil
}

// isTokenChar reports whether c may appear in an RFC 6750 bearer token.
func isTokenChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/' || c == '='
}

func checkNamespacePattern(p string) error {
	if p == "" {
		return errors.New("empty")
	}
	lim := Limits{MaxNamespaceBytes: 1 << 30}
	if err := lim.checkNamespace(p); err != nil {
		return errors.New("a namespace may only hold letters, digits and the characters _ - . and colon")
	}
	return nil
}

// lookup returns the grant of a presented token, or nil.
func (t *AuthTable) lookup(token string) *grant {
	d := sha256.Sum256([]byte(token))
	g := t.grants[d]
	if g == nil || subtle.ConstantTimeCompare(g.digest[:], d[:]) != 1 {
		return nil
	}
	return g
}

// Route classes of the auth contract (docs/SECURITY.md).
type routeClass int

const (
	routeOpen      routeClass = iota // /ui, /metrics, /livez, /readyz, /version
	routeNamespace                   // /db/{env}, /req/{env}, /watch/{env}
	routeAdmin                       // /admin/... and every path not named above
)

// classify decides what a request path needs. Anything not known to be
// open or a namespace route needs the admin token, so a route added later
// is closed until it is classed here.
func classifyRoute(r *http.Request) (routeClass, string) {
	p := r.URL.EscapedPath()
	// Both forms: "/ui/..%2fadmin" is clean escaped but not decoded.
	if !cleanPath(p) || !cleanPath(r.URL.Path) {
		return routeAdmin, ""
	}
	switch p {
	case "/ui", "/metrics", "/livez", "/readyz", "/version":
		return routeOpen, ""
	}
	if strings.HasPrefix(p, "/ui/") {
		return routeOpen, ""
	}
	parts := strings.Split(p, "/")
	if len(parts) == 3 && parts[1] != "" && parts[2] != "" {
		switch parts[1] {
		case "db", "req", "watch":
			// The mux unescapes {env} the same way.
			ns, err := url.PathUnescape(parts[2])
			if err == nil {
				return routeNamespace, ns
			}
		}
	}
	return routeAdmin, ""
}

// cleanPath reports whether p has no "." or ".." segments and no empty
// segment but a trailing one: a path the mux will route as it is, rather
// than redirect.
func cleanPath(p string) bool {
	if !strings.HasPrefix(p, "/") {
		return false
	}
	segs := strings.Split(p[1:], "/")
	for i, s := range segs {
		if s == "." || s == ".." || (s == "" && i != len(segs)-1) {
			return false
		}
	}
	return true
}

// Auth checks bearer tokens against an AuthTable. The table can be
// replaced while serving (SIGHUP reloads the file).
type Auth struct {
	table atomic.Pointer[AuthTable]
}

// NewAuth returns an Auth over t.
func NewAuth(t *AuthTable) *Auth {
	a := &Auth{}
	a.table.Store(t)
	return a
}

// Store replaces the table; requests already checked are not affected.
func (a *Auth) Store(t *AuthTable) { a.table.Store(t) }

// Wrap returns next behind the token check.
func (a *Auth) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := a.check(r); err != nil {
			if err.status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="latch"`)
			} else {
				w.Header().Set("WWW-Authenticate", `Bearer realm="latch", error="insufficient_scope"`)
			}
			writeError(w, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (a *Auth) check(r *http.Request) *apiError {
	class, ns := classifyRoute(r)
	if class == routeOpen {
		return nil
	}
	token, ok := bearerToken(r)
	if !ok {
		return &apiError{status: http.StatusUnauthorized, code: CodeUnauthorized,
			msg: r.URL.Path + " needs a token: send Authorization: Bearer <token> (the server runs with --auth-file)"}
	}
	g := a.table.Load().lookup(token)
	if g == nil {
		return &apiError{status: http.StatusUnauthorized, code: CodeUnauthorized,
			msg: "the bearer token is not one this server knows (check for a typo, or whether the auth file changed)"}
	}
	if g.admin {
		return nil
	}
	if class == routeAdmin {
		return &apiError{status: http.StatusForbidden, code: CodeForbidden,
			msg: r.URL.Path + " needs the admin token; this token is for namespaces only"}
	}
	if !g.allows(ns) {
		return &apiError{status: http.StatusForbidden, code: CodeForbidden,
			msg: fmt.Sprintf("this token is not granted namespace %q (see the ns lines of the auth file)", ns)}
	}
	return nil
}

// bearerToken returns the token of an "Authorization: Bearer" header; the
// scheme is case-insensitive (RFC 7235).
func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}
