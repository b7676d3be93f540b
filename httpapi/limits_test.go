package httpapi_test

import (
	"bufio"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/latchkv/latch/engine"
	"github.com/latchkv/latch/httpapi"
	"github.com/latchkv/latch/internal/testcert"
)

// These tests hit each transport and request limit of docs/SECURITY.md
// on a server built by httpapi.NewHTTPServer, check the status and code,
// and check the server still serves afterwards.

// writeCert writes a self-signed certificate for 127.0.0.1 and its key as
// PEM files in dir, and returns their paths and the certificate.
func writeCert(t testing.TB, dir, name string, serial int64) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	certFile, keyFile, cert, err := testcert.Write(dir, name, serial)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, cert
}

// TestTLS: HTTPS round trip with a certificate made here, plain HTTP to
// the TLS port refused, an untrusted client refused, and a reload.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, cert1 := writeCert(t, dir, "one", 1)
	roots := x509.NewCertPool()
	roots.AddCert(cert1)
	hc := httpapi.DefaultHTTPConfig()
	hc.TLSCertFile, hc.TLSKeyFile = certFile, keyFile
	ts, srv := newSecServer(t, engine.Config{}, httpapi.DefaultLimits(), hc, roots)
	if !srv.TLS() || !strings.HasPrefix(ts.url, "https://") {
		t.Fatalf("not serving TLS: %s", ts.url)
	}

	served := func() (*x509.Certificate, reply) {
		resp, err := ts.client.Post(ts.url+"/db/tls", "application/json", strings.NewReader(`{"KVSet":[{"Key":"k","Value":"secret"}]}`))
		if err != nil {
			t.Fatalf("HTTPS request: %v", err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 {
			t.Fatal("the reply did not come over TLS")
		}
		return resp.TLS.PeerCertificates[0], reply{Status: resp.StatusCode, Header: resp.Header, Raw: raw}
	}
	got, r := served()
	ok(t, r)
	if got.SerialNumber.Int64() != 1 {
		t.Fatalf("served certificate serial %v, want 1", got.SerialNumber)
	}

	// Plain HTTP to the TLS port: crypto/tls's 400, and nothing applied.
	plainURL := "http://" + strings.TrimPrefix(ts.url, "https://")
	resp, err := http.Post(plainURL+"/db/tls", "application/json", strings.NewReader(`{"KVSet":[{"Key":"plain","Value":1}]}`))
	if err != nil {
		t.Fatalf("plain HTTP to the TLS port: %v", err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(raw), "HTTPS") {
		t.Fatalf("plain HTTP to the TLS port: %d %q; want 400 saying to use HTTPS", resp.StatusCode, raw)
	}

	// A client that does not trust the certificate fails the handshake.
	if _, err := http.Post(ts.url+"/db/tls", "application/json", strings.NewReader(`{}`)); err == nil ||
		!strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusting client: want a certificate error, got %v", err)
	}

	// Reload: new handshakes get the new pair.
	certFile2, keyFile2, cert2 := writeCert(t, t.TempDir(), "two", 2)
	for _, f := range [][2]string{{certFile2, certFile}, {keyFile2, keyFile}} {
		b, err := os.ReadFile(f[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f[1], b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	roots.AddCert(cert2)
	ts.client.Transport.(*http.Transport).CloseIdleConnections()
	got, r = served()
	ok(t, r)
	if got.SerialNumber.Int64() != 2 {
		t.Fatalf("after ReloadTLS the certificate served is serial %v, want 2", got.SerialNumber)
	}
	// A broken pair on reload keeps the old one.
	if err := os.WriteFile(keyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := srv.ReloadTLS(); err == nil || !strings.Contains(err.Error(), keyFile) {
		t.Fatalf("reload of a broken key: %v; want an error naming %s", err, keyFile)
	}
	ts.client.Transport.(*http.Transport).CloseIdleConnections()
	got, r = served()
	ok(t, r)
	if got.SerialNumber.Int64() != 2 {
		t.Fatalf("after a failed reload the certificate served is serial %v, want 2 still", got.SerialNumber)
	}
	d := ok(t, call(t, ts, "POST", "/db/tls", "", `{"KVGet":["k","plain"]}`))
	if d.KV[0].Version == 0 || d.KV[1].Version != 0 {
		t.Fatalf("want k written over TLS and nothing from plain HTTP: %+v", d.KV)
	}
}

// TestTLSConfigErrors: TLS needs both files, and bad ones fail at build
// time with the file named.
func TestTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, _ := writeCert(t, dir, "x", 1)
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("-----BEGIN NOTHING-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ cert, key, want string }{
		{certFile, "", "both --tls-cert and --tls-key"},
		{"", keyFile, "both --tls-cert and --tls-key"},
		{filepath.Join(dir, "missing.pem"), keyFile, "missing.pem"},
		{certFile, garbage, "garbage.pem"},
		{keyFile, certFile, "key.pem"},
	} {
		hc := httpapi.DefaultHTTPConfig()
		hc.TLSCertFile, hc.TLSKeyFile = c.cert, c.key
		if _, err := httpapi.NewHTTPServer(hc, http.NotFoundHandler()); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("cert %q key %q: error %v; want one saying %q", c.cert, c.key, err, c.want)
		}
	}
}

// TestValueAndNamespaceLimits: --max-value-bytes and --max-namespace-bytes.
func TestValueAndNamespaceLimits(t *testing.T) {
	lim := httpapi.DefaultLimits()
	lim.MaxValueBytes = 10
	lim.MaxNamespaceBytes = 4
	ts, _ := newSecServer(t, engine.Config{}, lim, httpapi.DefaultHTTPConfig(), nil)
	ok(t, call(t, ts, "POST", "/db/abcd", "", `{"KVSet":[{"Key":"a","Value":1234567890}]}`))
	msg := wantErr(t, call(t, ts, "POST", "/db/abcd", "", `{"KVSet":[{"Key":"b","Value":1},{"Key":"a","Value":"123456789"}]}`),
		http.StatusBadRequest, httpapi.CodeValueTooLong)
	if !strings.Contains(msg, "KVSet[1]") || !strings.Contains(msg, "--max-value-bytes") {
		t.Fatalf("the message should name the item and the flag: %s", msg)
	}
	d := ok(t, call(t, ts, "POST", "/db/abcd", "", `{"KVGet":["a","b"]}`))
	if d.KV[0].Version != 1 || d.KV[1].Version != 0 {
		t.Fatalf("a refused request applied something: %+v", d.KV)
	}
	ok(t, call(t, ts, "POST", "/db/abcd", "", `{"KVSet":[{"Key":"a","Delete":true}]}`))
	msg = wantErr(t, call(t, ts, "POST", "/db/abcde", "", `{}`), http.StatusBadRequest, httpapi.CodeInvalidNamespace)
	if !strings.Contains(msg, "--max-namespace-bytes") {
		t.Fatalf("the message should name the flag: %s", msg)
	}
}

// TestWatchersPerKey: the watch over --max-watchers-per-key is 429
// too_many_watchers; other keys and, once a slot frees, the same key
// still take watches.
func TestWatchersPerKey(t *testing.T) {
	ts, _ := newSecServer(t, engine.Config{MaxWatchersPerKey: 2}, httpapi.DefaultLimits(), httpapi.DefaultHTTPConfig(), nil)
	w := `{"ID":"k","Version":0,"Timeout":60}`
	a1, a2 := ts.start("/watch/w", w), ts.start("/watch/w", w)
	waitUntil(t, "2 watches parked on k", func() bool { return ts.eng.KeyWatchers("w", "k") == 2 })
	msg := wantErr(t, ts.post(t, "/watch/w", w), http.StatusTooManyRequests, httpapi.CodeTooManyWatchers)
	if !strings.Contains(msg, "--max-watchers-per-key") {
		t.Fatalf("the message should name the flag: %s", msg)
	}
	other := ts.start("/watch/w", `{"ID":"k2","Version":0,"Timeout":60}`)
	waitUntil(t, "a watch parked on k2", func() bool { return ts.eng.KeyWatchers("w", "k2") == 1 })
	ok(t, ts.post(t, "/db/w", `{"KVSet":[{"Key":"k","Value":1},{"Key":"k2","Value":2}]}`))
	for _, a := range []*async{a1, a2, other} {
		var kv kvItem
		r := a.wait(t)
		if err := json.Unmarshal(r.Raw, &kv); r.Status != http.StatusOK || err != nil || kv.Version != 1 {
			t.Fatalf("woken watch: %s", r)
		}
	}
	a3 := ts.start("/watch/w", `{"ID":"k","Version":1,"Timeout":60}`)
	waitUntil(t, "k takes watches again", func() bool { return ts.eng.KeyWatchers("w", "k") == 1 })
	ok(t, ts.post(t, "/db/w", `{"KVSet":[{"Key":"k","Value":3}]}`))
	if r := a3.wait(t); r.Status != http.StatusOK {
		t.Fatalf("watch after the limit freed: %s", r)
	}
}

// TestWatchersTotal: --max-watchers bounds watches across all keys.
func TestWatchersTotal(t *testing.T) {
	ts, _ := newSecServer(t, engine.Config{MaxWatchers: 3}, httpapi.DefaultLimits(), httpapi.DefaultHTTPConfig(), nil)
	var parked []*async
	for _, k := range []string{"a", "b", "c"} {
		parked = append(parked, ts.start("/watch/w"+k, `{"ID":"`+k+`","Timeout":60}`))
		waitUntil(t, "a watch parked on "+k, func() bool { return ts.eng.KeyWatchers("w"+k, k) == 1 })
	}
	msg := wantErr(t, ts.post(t, "/watch/wd", `{"ID":"d","Timeout":60}`), http.StatusTooManyRequests, httpapi.CodeTooManyWatchers)
	if !strings.Contains(msg, "--max-watchers") {
		t.Fatalf("the message should name the flag: %s", msg)
	}
	// Requests other than watches are not limited by it.
	ok(t, ts.post(t, "/db/wa", `{"KVSet":[{"Key":"a","Value":1}]}`))
	if r := parked[0].wait(t); r.Status != http.StatusOK {
		t.Fatalf("woken watch: %s", r)
	}
	waitUntil(t, "2 watches in flight", func() bool { return ts.eng.WatchesInFlight() == 2 })
	d := ts.start("/watch/wd", `{"ID":"d","Timeout":60}`)
	waitUntil(t, "a watch parked on d", func() bool { return ts.eng.KeyWatchers("wd", "d") == 1 })
	for _, k := range []string{"b", "c", "d"} {
		ok(t, ts.post(t, "/db/w"+k, `{"KVSet":[{"Key":"`+k+`","Value":1}]}`))
	}
	for _, a := range append(parked[1:], d) {
		if r := a.wait(t); r.Status != http.StatusOK {
			t.Fatalf("woken watch: %s", r)
		}
	}
}

// rawConn is a client connection driven by hand.
type rawConn struct {
	net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, ts *testServer) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(hangGuard)) //nolint:errcheck
	return &rawConn{Conn: c, br: bufio.NewReader(c)}
}

// roundTrip sends one POST on the connection and reads the reply.
func (c *rawConn) roundTrip(t testing.TB, path, body string) reply {
	t.Helper()
	if _, err := fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: latch\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", path, len(body), body); err != nil {
		t.Fatalf("write: %v", err)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatalf("read reply to POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{Status: resp.StatusCode, Header: resp.Header, Raw: raw}
}

// closedByServer reports whether the server has closed the connection:
// a read returns EOF or a reset rather than data or a timeout.
func (c *rawConn) closedByServer() bool {
	c.SetReadDeadline(time.Now().Add(hangGuard)) //nolint:errcheck
	_, err := c.br.ReadByte()
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return err != nil
}

// TestConnectionLimit: a connection over --max-connections gets one 503
// too_many_connections and is closed; those within keep working, and a
// freed slot is taken again.
func TestConnectionLimit(t *testing.T) {
	hc := httpapi.DefaultHTTPConfig()
	hc.MaxConnections = 2
	ts, srv := newSecServer(t, engine.Config{}, httpapi.DefaultLimits(), hc, nil)
	c1, c2 := dialRaw(t, ts), dialRaw(t, ts)
	ok(t, c1.roundTrip(t, "/db/c", `{}`))
	ok(t, c2.roundTrip(t, "/db/c", `{}`))

	c3 := dialRaw(t, ts)
	r := c3.roundTrip(t, "/db/c", `{"KVSet":[{"Key":"over","Value":1}]}`)
	msg := wantErr(t, r, http.StatusServiceUnavailable, httpapi.CodeTooManyConnections)
	if !strings.Contains(msg, "--max-connections") || r.Header.Get("Retry-After") == "" {
		t.Fatalf("want the flag named and Retry-After: %s %v", r, r.Header)
	}
	if !c3.closedByServer() {
		t.Fatal("the over-limit connection was left open")
	}
	// The connections within the limit still serve.
	ok(t, c1.roundTrip(t, "/db/c", `{}`))
	ok(t, c2.roundTrip(t, "/db/c", `{}`))

	c1.Close()
	waitUntil(t, "the closed connections are no longer counted", func() bool { return srv.Connections() <= 1 })
	c4 := dialRaw(t, ts)
	d := ok(t, c4.roundTrip(t, "/db/c", `{"KVGet":["over"]}`))
	if d.KV[0].Version != 0 {
		t.Fatal("the refused request was applied")
	}
}

// TestConnectionLimitRefusalSlots: connections over --max-connections that
// send nothing hold a file descriptor until the header timeout; only
// RefusalSlots of them are held, and one beyond is closed as soon as it is
// accepted, so silent connections cannot take every fd of the process.
func TestConnectionLimitRefusalSlots(t *testing.T) {
	hc := httpapi.DefaultHTTPConfig()
	hc.MaxConnections = 1
	hc.ReadHeaderTimeout = 2 * hangGuard // so only the limit can close a silent connection
	ts, srv := newSecServer(t, engine.Config{}, httpapi.DefaultLimits(), hc, nil)
	c1 := dialRaw(t, ts)
	ok(t, c1.roundTrip(t, "/db/s", `{}`))
	silent := make([]*rawConn, httpapi.RefusalSlots)
	for i := range silent {
		silent[i] = dialRaw(t, ts)
	}
	// The server accepts in order: once these are counted, the next
	// connection is one too many.
	waitUntil(t, "the silent connections counted", func() bool { return srv.Connections() == 1+httpapi.RefusalSlots })
	beyond := dialRaw(t, ts)
	if !beyond.closedByServer() {
		t.Fatal("a connection beyond the refusal slots was left open")
	}
	if n := srv.Connections(); n != 1+httpapi.RefusalSlots {
		t.Fatalf("%d connections counted, want %d", n, 1+httpapi.RefusalSlots)
	}
	// A held one is still answered 503 when its request comes.
	wantErr(t, silent[0].roundTrip(t, "/db/s", `{}`), http.StatusServiceUnavailable, httpapi.CodeTooManyConnections)
	if !silent[0].closedByServer() {
		t.Fatal("the answered over-limit connection was left open")
	}
	ok(t, c1.roundTrip(t, "/db/s", `{}`))
}

// TestSlowHeaders: a client dribbling its headers (slowloris) is cut off
// at --read-header-timeout, long before it would finish.
func TestSlowHeaders(t *testing.T) {
	hc := httpapi.DefaultHTTPConfig()
	hc.ReadHeaderTimeout = 300 * time.Millisecond
	ts, _ := newSecServer(t, engine.Config{}, httpapi.DefaultLimits(), hc, nil)
	c := dialRaw(t, ts)
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(c.br) // until the server closes
		got <- b
	}()
	head := "POST /db/slow HTTP/1.1\r\nHost: latch\r\nX-Pad: " + strings.Repeat("x", 600)
	sent := 0
	var cut []byte
dribble:
	for ; sent < len(head); sent++ {
		select {
		case cut = <-got:
			break dribble
		case <-time.After(100 * time.Millisecond): // 60 s for all of it
		}
		if _, err := c.Write([]byte{head[sent]}); err != nil {
			cut = <-got
			break
		}
	}
	if sent == len(head) {
		t.Fatalf("the server read %d header bytes at one per 100 ms without cutting the client off", sent)
	}
	if strings.Contains(string(cut), "200 OK") {
		t.Fatalf("the slow request was served: %q", cut)
	}
	ok(t, call(t, ts, "POST", "/db/slow", "", `{}`))
}

// TestSlowBody: a body dribbled after quick headers is answered 408
// request_timeout at --body-read-timeout, and nothing of it applies.
func TestSlowBody(t *testing.T) {
	hc := httpapi.DefaultHTTPConfig()
	hc.BodyReadTimeout = 300 * time.Millisecond
	ts, _ := newSecServer(t, engine.Config{}, httpapi.DefaultLimits(), hc, nil)
	c := dialRaw(t, ts)
	body := `{"KVSet":[{"Key":"slow","Value":"` + strings.Repeat("x", 600) + `"}]}`
	if _, err := fmt.Fprintf(c, "POST /db/slow HTTP/1.1\r\nHost: latch\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body)); err != nil {
		t.Fatal(err)
	}
	type result struct {
		r   reply
		err error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.ReadResponse(c.br, nil)
		if err != nil {
			got <- result{err: err}
			return
		}
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- result{reply{Status: resp.StatusCode, Header: resp.Header, Raw: raw}, err}
	}()
	var res result
	sent := 0
dribble:
	for ; sent < len(body); sent++ {
		select {
		case res = <-got:
			break dribble
		case <-time.After(100 * time.Millisecond):
		}
		if _, err := c.Write([]byte{body[sent]}); err != nil {
			res = <-got
			break
		}
	}
	if sent == len(body) {
		t.Fatalf("the server read a %d-byte body at one byte per 100 ms without cutting it off", sent)
	}
	if res.err != nil {
		t.Fatalf("no reply to the slow body: %v", res.err)
	}
	wantErr(t, res.r, http.StatusRequestTimeout, httpapi.CodeRequestTimeout)
	if !c.closedByServer() {
		t.Fatal("the connection of the slow body was left open")
	}
	d := ok(t, call(t, ts, "POST", "/db/slow", "", `{"KVGet":["slow"]}`))
	if d.KV[0].Version != 0 {
		t.Fatal("the cut-off body was applied")
	}
}

// TestLongPollOutlivesBodyTimeout: the body deadline ends with the body,
// so a watch and a lock wait longer than it are not cut off.
func TestLongPollOutlivesBodyTimeout(t *testing.T) {
	hc := httpapi.DefaultHTTPConfig()
	hc.BodyReadTimeout = 100 * time.Millisecond
	ts, _ := newSecServer(t, engine.Config{}, httpapi.DefaultLimits(), hc, nil)
	held := ok(t, call(t, ts, "POST", "/db/lp", "", `{"LockID":"L","LockDur":60}`))
	waiter := ts.start("/db/lp", `{"LockID":"L","LockDur":60,"LockWait":60}`)
	watch := ts.start("/watch/lp", `{"ID":"k","Version":0,"Timeout":60}`)
	ts.waitLockWaiters(t, "lp", "L", 1)
	waitUntil(t, "the watch parked", func() bool { return ts.eng.KeyWatchers("lp", "k") == 1 })
	// Well past the body timeout; the parked requests must still be there.
	time.Sleep(5 * hc.BodyReadTimeout)
	if waiter.returned() || watch.returned() {
		t.Fatalf("a long poll returned early: waiter %v watch %v", waiter.r, watch.r)
	}
	if n := ts.eng.LockWaiters("lp", "L"); n != 1 {
		t.Fatalf("the lock waiter was withdrawn (%d waiters): its request was canceled", n)
	}
	ok(t, call(t, ts, "POST", "/db/lp", "", unlockBody("L", held.Lock)))
	ok(t, call(t, ts, "POST", "/db/lp", "", `{"KVSet":[{"Key":"k","Value":1}]}`))
	if d := ok(t, waiter.wait(t)); d.Lock == 0 {
		t.Fatalf("the waiter was not granted: %+v", d)
	}
	if r := watch.wait(t); r.Status != http.StatusOK {
		t.Fatalf("watch: %s", r)
	}
}

// TestHeaderTooLarge: headers over --max-header-bytes get net/http's 431.
func TestHeaderTooLarge(t *testing.T) {
	hc := httpapi.DefaultHTTPConfig()
	hc.MaxHeaderBytes = 1 << 10
	ts, _ := newSecServer(t, engine.Config{}, httpapi.DefaultLimits(), hc, nil)
	req, err := http.NewRequest("POST", ts.url+"/db/h", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	// net/http allows 4096 bytes of slack over MaxHeaderBytes.
	req.Header.Set("X-Big", strings.Repeat("x", 16<<10))
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("oversized headers: %d, want 431", resp.StatusCode)
	}
	ok(t, call(t, ts, "POST", "/db/h", "", `{}`))
}

// TestLongPollOutlivesBodyTimeoutHTTP2: the same over HTTP/2 (TLS), where
// the body deadline is the stream's, not the connection's, and net/http
// does not clear it when the body ends: a watch parked past
// --body-read-timeout still gets its change.
func TestLongPollOutlivesBodyTimeoutHTTP2(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, cert := writeCert(t, dir, "h2", 1)
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	hc := httpapi.DefaultHTTPConfig()
	hc.TLSCertFile, hc.TLSKeyFile = certFile, keyFile
	hc.BodyReadTimeout = 100 * time.Millisecond
	ts, _ := newSecServer(t, engine.Config{}, httpapi.DefaultLimits(), hc, roots)
	ts.client.Transport.(*http.Transport).ForceAttemptHTTP2 = true
	type result struct {
		proto int
		r     reply
		err   error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := ts.client.Post(ts.url+"/watch/h2", "application/json", strings.NewReader(`{"ID":"k","Version":0,"Timeout":60}`))
		if err != nil {
			done <- result{err: err}
			return
		}
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{resp.ProtoMajor, reply{Status: resp.StatusCode, Header: resp.Header, Raw: raw}, err}
	}()
	waitUntil(t, "the watch parked", func() bool { return ts.eng.KeyWatchers("h2", "k") == 1 })
	time.Sleep(5 * hc.BodyReadTimeout)
	select {
	case res := <-done:
		t.Fatalf("the watch returned before its key changed: HTTP/%d %s %v", res.proto, res.r, res.err)
	default:
	}
	ok(t, call(t, ts, "POST", "/db/h2", "", `{"KVSet":[{"Key":"k","Value":1}]}`))
	res := <-done
	if res.err != nil || res.r.Status != http.StatusOK || res.proto != 2 {
		t.Fatalf("watch: HTTP/%d %s %v, want an HTTP/2 200", res.proto, res.r, res.err)
	}
}
