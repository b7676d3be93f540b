package httpapi_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/latchkv/latch/engine"
	"github.com/latchkv/latch/httpapi"
)

// newSecServer serves an engine through httpapi.NewHTTPServer, the
// function `latch serve` builds its server with, on a real loopback
// listener. roots, if set, is what the client trusts for TLS.
func newSecServer(t testing.TB, cfg engine.Config, lim httpapi.Limits, hc httpapi.HTTPConfig, roots *x509.CertPool) (*testServer, *httpapi.HTTPServer) {
	t.Helper()
	cfg.Dir = t.TempDir()
	if cfg.SnapshotEveryRecords == 0 {
		cfg.SnapshotEveryRecords = -1
	}
	eng, err := engine.Open(cfg)
	if err != nil {
		t.Fatalf("engine.Open: %v", err)
	}
	api := httpapi.New(eng, lim)
	api.Observe(nil, httpapi.NewMetrics(httpapi.BuildVersion("test"))) // as serve.go does: /metrics is on
	srv, err := httpapi.NewHTTPServer(hc, api)
	if err != nil {
		eng.Close()
		t.Fatalf("NewHTTPServer: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		eng.Close()
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	tr := &http.Transport{MaxIdleConnsPerHost: 100, DisableCompression: true}
	scheme := "http://"
	if roots != nil {
		tr.TLSClientConfig = &tls.Config{RootCAs: roots}
		scheme = "https://"
	}
	ts := &testServer{eng: eng, url: scheme + ln.Addr().String(), client: &http.Client{Transport: tr}}
	t.Cleanup(func() {
		eng.Drain()
		srv.Close()
		<-served
		tr.CloseIdleConnections()
		if err := eng.Close(); err != nil {
			t.Errorf("engine.Close: %v", err)
		}
	})
	return ts, srv
}

// call does one request with a bearer token ("" sends none); auth
// overrides the whole Authorization header when not empty.
func call(t testing.TB, ts *testServer, method, path, token, body string) reply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, ts.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the reply: %v", method, path, err)
	}
	return reply{Status: resp.StatusCode, Header: resp.Header, Raw: raw}
}

// The tokens of the matrix. Real deployments use openssl rand -hex 32.
const (
	tokAdmin  = "admin-0123456789abcdef"
	tokDev    = "dev-0123456789abcdef00"
	tokTeam   = "team-0123456789abcdef0"
	tokAny    = "any-0123456789abcdef00"
	tokHashed = "hashed-0123456789abcdef"
	tokBoth   = "both-0123456789abcdef0" // two ns lines: grants add up
)

func sha256hex(s string) string {
	d := sha256.Sum256([]byte(s))
	return hex.EncodeToString(d[:])
}

func matrixAuthFile() string {
	return `# latch tokens
admin ` + tokAdmin + `   # the operators
ns dev ` + tokDev + `
ns team-* ` + tokTeam + `
ns * ` + tokAny + `
ns hashed sha256:` + sha256hex(tokHashed) + `

ns dev ` + tokBoth + `
ns prod ` + tokBoth + `
`
}

func newAuthServer(t testing.TB) (*testServer, *httpapi.Auth) {
	t.Helper()
	table, err := httpapi.ParseAuth(strings.NewReader(matrixAuthFile()), "matrix")
	if err != nil {
		t.Fatal(err)
	}
	auth := httpapi.NewAuth(table)
	hc := httpapi.DefaultHTTPConfig()
	hc.Auth = auth
	ts, _ := newSecServer(t, engine.Config{}, httpapi.DefaultLimits(), hc, nil)
	return ts, auth
}

// TestAuthMatrix: every route class against every kind of token.
func TestAuthMatrix(t *testing.T) {
	ts, _ := newAuthServer(t)
	const (
		db    = `{"KVSet":[{"Key":"k","Value":1}]}`
		watch = `{"ID":"k","Version":12345}` // differs from any version: returns at once
	)
	type route struct{ method, path, body string }
	nsRoutes := func(ns string) []route {
		return []route{{"POST", "/db/" + ns, db}, {"POST", "/req/" + ns, db}, {"POST", "/watch/" + ns, watch}}
	}
	admin := []route{{"GET", "/admin/snapshot", ""}, {"GET", "/admin/no-such-thing", ""}, {"GET", "/", ""}, {"POST", "/nope/dev", db}}
	// The open routes must get through the auth layer without a token.
	open := []route{{"GET", "/ui", ""}, {"GET", "/ui/app.js", ""}, {"GET", "/metrics", ""}, {"GET", "/livez", ""}, {"GET", "/readyz", ""}, {"GET", "/version", ""}}

	want := func(token string, routes []route, status int) {
		t.Helper()
		for _, rt := range routes {
			r := call(t, ts, rt.method, rt.path, token, rt.body)
			switch status {
			case http.StatusOK:
				if r.Status != http.StatusOK && !(rt.path == "/admin/no-such-thing" || rt.path == "/" || rt.path == "/nope/dev") {
					t.Fatalf("token %q %s %s: want 200, got %s", token, rt.method, rt.path, r)
				}
				if r.Status == http.StatusUnauthorized || r.Status == http.StatusForbidden {
					t.Fatalf("token %q %s %s: want through, got %s", token, rt.method, rt.path, r)
				}
			case http.StatusNotFound:
				wantErr(t, r, http.StatusNotFound, httpapi.CodeNotFound)
			case http.StatusUnauthorized:
				wantErr(t, r, http.StatusUnauthorized, httpapi.CodeUnauthorized)
				if h := r.Header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer") {
					t.Fatalf("%s %s: 401 without WWW-Authenticate: Bearer (got %q)", rt.method, rt.path, h)
				}
			case http.StatusForbidden:
				msg := wantErr(t, r, http.StatusForbidden, httpapi.CodeForbidden)
				if strings.Contains(msg, token) {
					t.Fatalf("the error message quotes the token: %s", msg)
				}
			}
		}
	}

	for _, tok := range []string{"", "not-a-known-token-at-all", tokHashed + "x", "sha256:" + sha256hex(tokHashed)} {
		want(tok, nsRoutes("dev"), http.StatusUnauthorized)
		want(tok, admin, http.StatusUnauthorized)
		want(tok, open, http.StatusOK)
	}
	want(tokDev, nsRoutes("dev"), http.StatusOK)
	want(tokDev, nsRoutes("prod"), http.StatusForbidden)
	want(tokDev, nsRoutes("dev2"), http.StatusForbidden)
	want(tokDev, admin, http.StatusForbidden)
	want(tokDev, open, http.StatusOK)

	want(tokTeam, nsRoutes("team-a"), http.StatusOK)
	want(tokTeam, nsRoutes("team-"), http.StatusOK)
	want(tokTeam, nsRoutes("teamx"), http.StatusForbidden)
	want(tokTeam, admin, http.StatusForbidden)

	want(tokAny, nsRoutes("dev"), http.StatusOK)
	want(tokAny, nsRoutes("prod"), http.StatusOK)
	want(tokAny, admin, http.StatusForbidden)

	want(tokHashed, nsRoutes("hashed"), http.StatusOK)
	want(tokHashed, nsRoutes("dev"), http.StatusForbidden)

	want(tokBoth, nsRoutes("dev"), http.StatusOK)
	want(tokBoth, nsRoutes("prod"), http.StatusOK)
	want(tokBoth, nsRoutes("qa"), http.StatusForbidden)

	want(tokAdmin, nsRoutes("dev"), http.StatusOK)
	want(tokAdmin, nsRoutes("anything.else"), http.StatusOK)
	want(tokAdmin, admin, http.StatusOK)
	want(tokAdmin, open, http.StatusOK)
	// The admin token gets the snapshot itself.
	if r := call(t, ts, "GET", "/admin/snapshot", tokAdmin, ""); r.Status != http.StatusOK || len(r.Raw) == 0 {
		t.Fatalf("admin snapshot: %d, %d bytes", r.Status, len(r.Raw))
	}
	// What the namespace tokens wrote is there.
	if d := ok(t, call(t, ts, "POST", "/db/prod", tokAdmin, `{"KVGet":["k"]}`)); d.KV[0].Version == 0 {
		t.Fatalf("prod/k was never written: %+v", d)
	}
}

// TestAuthHeaderForms: the scheme is case-insensitive; anything but a
// Bearer token is 401.
func TestAuthHeaderForms(t *testing.T) {
	ts, _ := newAuthServer(t)
	send := func(header string) reply {
		req, err := http.NewRequest("POST", ts.url+"/db/dev", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		if header != "" {
			req.Header.Set("Authorization", header)
		}
		resp, err := ts.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return reply{Status: resp.StatusCode, Header: resp.Header, Raw: raw}
	}
	for _, h := range []string{"bearer " + tokDev, "BEARER " + tokDev, "Bearer  " + tokDev + " "} {
		ok(t, send(h))
	}
	for _, h := range []string{"Bearer", "Bearer ", "Basic " + tokDev, tokDev, "Token " + tokDev, "Bearer " + strings.ToUpper(tokDev)} {
		wantErr(t, send(h), http.StatusUnauthorized, httpapi.CodeUnauthorized)
	}
}

// TestAuthPathTricks: paths that a mux would clean or unescape into
// another route class need the admin token.
func TestAuthPathTricks(t *testing.T) {
	ts, _ := newAuthServer(t)
	for _, p := range []string{
		"/ui/../admin/snapshot", "/ui/..%2fadmin/snapshot", "/ui/%2e%2e/admin/snapshot",
		"/db/dev/../../admin/snapshot", "/db//dev", "/./admin/snapshot", "/metrics/../admin/snapshot",
	} {
		for _, tok := range []string{"", tokDev, tokAny} {
			r := call(t, ts, "GET", p, tok, "")
			if r.Status == http.StatusOK {
				t.Fatalf("GET %s with token %q: 200; it must need the admin token", p, tok)
			}
			want := http.StatusForbidden
			if tok == "" {
				want = http.StatusUnauthorized
			}
			if r.Status != want {
				t.Fatalf("GET %s with token %q: want %d, got %s", p, tok, want, r)
			}
		}
	}
	// An escaped namespace is the namespace the route sees: "de%76" is dev.
	ok(t, call(t, ts, "POST", "/db/de%76", tokDev, `{"KVGet":["k"]}`))
	wantErr(t, call(t, ts, "POST", "/db/pro%64", tokDev, `{}`), http.StatusForbidden, httpapi.CodeForbidden)
	// A namespace token cannot reach another namespace through %2F.
	wantErr(t, call(t, ts, "POST", "/db/dev%2F..%2Fprod", tokDev, `{}`), http.StatusForbidden, httpapi.CodeForbidden)
}

// TestAuthReload: a stored table replaces the old one at once, as SIGHUP
// does in latch serve.
func TestAuthReload(t *testing.T) {
	ts, auth := newAuthServer(t)
	ok(t, call(t, ts, "POST", "/db/dev", tokDev, `{}`))
	const newTok = "rotated-0123456789abcdef"
	table, err := httpapi.ParseAuth(strings.NewReader("ns dev "+newTok+"\n"), "rotated")
	if err != nil {
		t.Fatal(err)
	}
	auth.Store(table)
	wantErr(t, call(t, ts, "POST", "/db/dev", tokDev, `{}`), http.StatusUnauthorized, httpapi.CodeUnauthorized)
	ok(t, call(t, ts, "POST", "/db/dev", newTok, `{}`))
}

// TestAuthFileErrors: a bad line is refused with its line number and what
// to fix, and never with the token in the message.
func TestAuthFileErrors(t *testing.T) {
	const good = "0123456789abcdef-good"
	cases := []struct {
		text, want string
	}{
		{"admin", "line 1: want `admin <token>`"},
		{"admin " + good + " extra", "line 1: want `admin <token>`"},
		{"# c\n\nns dev", "line 3: want `ns <namespace> <token>`"},
		{"ns dev x " + good, "line 1: want `ns <namespace> <token>`"},
		{"user bob " + good, `line 1: unknown kind "user"`},
		{"Admin " + good, `line 1: unknown kind "Admin"`},
		{"admin " + good + "\nadmin short-token", "line 2: the token is 11 bytes; use at least 16"},
		{"admin sha256:abcd", "line 1: sha256: must be followed by 64 hex digits"},
		{"admin sha256:" + strings.Repeat("zz", 32), "line 1: sha256: must be followed by 64 hex digits"},
		{"ns bad/ns " + good, `line 1: namespace "bad/ns"`},
		{"ns ** " + good, `line 1: namespace pattern "**"`},
		{"ns team*x " + good, `line 1: namespace "team*x"`},
		{"ns dev " + good + "\"quote", "line 1: the token has a character that cannot go in an Authorization header (byte 21)"},
		{"admin " + good + "é", "line 1: the token has a character"},
		{"", "holds no tokens"},
		{"# only comments\n   \n# more\n", "holds no tokens"},
	}
	for _, c := range cases {
		_, err := httpapi.ParseAuth(strings.NewReader(c.text), "tokens.conf")
		if err == nil {
			t.Fatalf("%q: parsed; want an error with %q", c.text, c.want)
		}
		if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "tokens.conf") {
			t.Fatalf("%q: error %q; want it to name the file and say %q", c.text, err, c.want)
		}
		if strings.Contains(err.Error(), good) || strings.Contains(err.Error(), "short-token") {
			t.Fatalf("%q: the error quotes the token: %v", c.text, err)
		}
	}
	// Comments after a grant, CRLF line ends, tabs and duplicates are fine.
	table, err := httpapi.ParseAuth(strings.NewReader("admin "+good+" # ops\r\n\tns\tdev\t"+good+"\r\nns dev "+good+"\n"), "ok")
	if err != nil || table.Tokens() != 1 {
		t.Fatalf("want one token, got %v, %v", table, err)
	}
}

// TestAuthFilePermissions: LoadAuthFile refuses files others may write,
// and files others may read that hold tokens written out.
func TestAuthFilePermissions(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	plain := "admin " + tokAdmin + "\n"
	hashed := "admin sha256:" + sha256hex(tokAdmin) + "\n"
	for _, c := range []struct {
		name, text string
		mode       os.FileMode
		want       string // "" = loads
	}{
		{"600", plain, 0o600, ""},
		{"640", plain, 0o640, ""},
		{"400", plain, 0o400, ""},
		{"644", plain, 0o644, "readable by every user (mode 0644)"},
		{"604", plain, 0o604, "readable by every user"},
		{"644-hashed", hashed, 0o644, ""},
		{"666-hashed", hashed, 0o666, "writable by every user"},
		{"602", plain, 0o602, "writable by every user"},
	} {
		p := write(c.name, c.text, c.mode)
		table, err := httpapi.LoadAuthFile(p)
		switch {
		case c.want == "" && err != nil:
			t.Fatalf("mode %s: %v", c.name, err)
		case c.want == "" && table.Tokens() != 1:
			t.Fatalf("mode %s: %d tokens", c.name, table.Tokens())
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "chmod")):
			t.Fatalf("mode %s: error %v; want one saying %q and how to fix it", c.name, err, c.want)
		}
	}
	if _, err := httpapi.LoadAuthFile(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("missing file: %v", err)
	}
	if _, err := httpapi.LoadAuthFile(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("directory: %v", err)
	}
	// A hashed token authenticates with the token itself.
	table, err := httpapi.LoadAuthFile(write("h", hashed, 0o600))
	if err != nil {
		t.Fatal(err)
	}
	hc := httpapi.DefaultHTTPConfig()
	hc.Auth = httpapi.NewAuth(table)
	ts, _ := newSecServer(t, engine.Config{}, httpapi.DefaultLimits(), hc, nil)
	ok(t, call(t, ts, "POST", "/db/x", tokAdmin, `{}`))
	wantErr(t, call(t, ts, "POST", "/db/x", "sha256:"+sha256hex(tokAdmin), `{}`), http.StatusUnauthorized, httpapi.CodeUnauthorized)
}

// TestNoAuthFileChecksNothing: without an Auth, no header is needed.
func TestNoAuthFileChecksNothing(t *testing.T) {
	ts, _ := newSecServer(t, engine.Config{}, httpapi.DefaultLimits(), httpapi.DefaultHTTPConfig(), nil)
	ok(t, call(t, ts, "POST", "/db/dev", "", `{}`))
	ok(t, call(t, ts, "POST", "/db/dev", "whatever-token-at-all", `{}`))
	if r := call(t, ts, "GET", "/admin/snapshot", "", ""); r.Status != http.StatusOK {
		t.Fatalf("snapshot without auth: %s", r)
	}
}

// TestSecurityDocAuthExample: the example auth file of docs/SECURITY.md
// parses, with the grants the page says.
func TestSecurityDocAuthExample(t *testing.T) {
	src, err := os.ReadFile("../docs/SECURITY.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(src), "### File format")
	if !ok {
		t.Fatal("docs/SECURITY.md has no File format section")
	}
	_, block, _ := strings.Cut(after, "```\n")
	block, _, _ = strings.Cut(block, "```")
	table, err := httpapi.ParseAuth(strings.NewReader(block), "SECURITY.md example")
	if err != nil {
		t.Fatal(err)
	}
	if table.Tokens() != 4 {
		t.Fatalf("the example has %d tokens, want 4", table.Tokens())
	}
}

// FuzzParseAuth: any auth file text parses or fails with the file and a
// line named, never panics, and never puts the failing line's token in
// the message.
func FuzzParseAuth(f *testing.F) {
	f.Add(matrixAuthFile())
	f.Add("admin short\n")
	f.Add("ns dev 0123456789abcdef0123 # c\r\nns * sha256:" + sha256hex("x") + "\n")
	f.Add("ns bad/0123456789abcdef 0123456789abcdef\n")
	f.Add("ns team-* 0123456789abcdef\x00\n")
	f.Fuzz(func(t *testing.T, text string) {
		table, err := httpapi.ParseAuth(strings.NewReader(text), "fuzz.conf")
		if err == nil {
			if table.Tokens() < 1 {
				t.Fatalf("%q: parsed with no tokens", text)
			}
			return
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "auth file fuzz.conf ") {
			t.Fatalf("%q: error %q does not name the file", text, msg)
		}
		var line int
		if _, scanErr := fmt.Sscanf(strings.TrimPrefix(msg, "auth file fuzz.conf "), "line %d:", &line); scanErr != nil {
			if !strings.Contains(msg, "holds no tokens") && !strings.Contains(msg, "token too long") {
				t.Fatalf("%q: error %q names no line", text, msg)
			}
			return
		}
		lines := strings.Split(text, "\n")
		if line < 1 || line > len(lines) {
			t.Fatalf("%q: error names line %d of %d", text, line, len(lines))
		}
		fields := strings.Fields(lines[line-1])
		tokenAt := map[string]int{"admin": 1, "ns": 2}
		if len(fields) == 0 {
			return
		}
		i, known := tokenAt[fields[0]]
		if !known || i >= len(fields) {
			return
		}
		tok := fields[i]
		for j, other := range fields {
			if j != i && strings.Contains(other, tok) {
				return // quoted as another field, not as the token
			}
		}
		// Another field quoted in the message may spell the token by
		// accident ("\x00" before "123..." reads "00123..."): look for
		// it only outside the other fields' quoted forms.
		rest := msg
		for j, other := range fields {
			if j != i {
				rest = strings.ReplaceAll(rest, strconv.Quote(other), "")
			}
		}
		// Short or hashed "tokens" can match the message's own words.
		if len(tok) >= httpapi.MinTokenBytes && !strings.HasPrefix(tok, "sha256:") && strings.Contains(rest, tok) {
			t.Fatalf("%q: the error quotes the token %q: %s", text, tok, msg)
		}
	})
}
