package httpapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// HTTPConfig is what `latch serve` configures about connections, as
// opposed to requests (Limits). NewHTTPServer turns it into the
// *http.Server the binary runs, so tests run the same configuration.
type HTTPConfig struct {
	// ReadHeaderTimeout cuts off a client that has not sent its request
	// headers within it (slowloris). --read-header-timeout.
	ReadHeaderTimeout time.Duration
	// BodyReadTimeout cuts off a request whose body has not arrived within
	// it, with 408 request_timeout. It runs from the end of the headers and
	// stops when the body is read, so long polls are not affected.
	// --body-read-timeout.
	BodyReadTimeout time.Duration
	// IdleTimeout closes a keep-alive connection idle this long. --idle-timeout.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request line and headers; over it net/http
	// replies 431. --max-header-bytes.
	MaxHeaderBytes int
	// MaxConnections bounds open connections; a connection over it gets one
	// 503 too_many_connections reply and is closed. At most RefusalSlots
	// such connections are held at once; one beyond them is closed as soon
	// as it is accepted, so the process never holds more than
	// MaxConnections+RefusalSlots sockets. 0: no bound (latch serve always
	// sets one, from the open-file limit). --max-connections.
	MaxConnections int
	// TLSCertFile and TLSKeyFile, both or neither, serve HTTPS with
	// crypto/tls defaults. --tls-cert, --tls-key.
	TLSCertFile, TLSKeyFile string
	// Auth, if set, checks bearer tokens (--auth-file); nil checks nothing.
	Auth *Auth
	// H2C serves HTTP/2 without TLS to clients that start with its
	// preface (prior knowledge), beside HTTP/1.1 on the same port. --h2c.
	H2C bool
	// MaxStreamsPerConnection bounds the requests one HTTP/2 connection
	// (h2c or over TLS) has open at once; a client needing more opens
	// another connection. --max-streams-per-connection.
	MaxStreamsPerConnection int
}

// DefaultHTTPConfig is what `latch serve` starts with.
func DefaultHTTPConfig() HTTPConfig {
	return HTTPConfig{
		ReadHeaderTimeout:       10 * time.Second,
		BodyReadTimeout:         30 * time.Second,
		IdleTimeout:             2 * time.Minute,
		MaxHeaderBytes:          64 << 10,
		MaxConnections:          50_000,
		H2C:                     true,
		MaxStreamsPerConnection: DefaultMaxStreamsPerConnection,
	}
}

// DefaultMaxStreamsPerConnection is the default of
// HTTPConfig.MaxStreamsPerConnection, net/http's own. More streams a
// connection cost every frame written on it: net/http's HTTP/2 writer
// looks through the connection's open streams for the next frame, so a
// fan-out to 10,000 watches took about a tenth more CPU at 1000 streams a
// connection than at 250.
const DefaultMaxStreamsPerConnection = 250

// HTTPServer is an *http.Server with latch's connection limit, body
// timeout, auth and optional TLS around the API handler.
type HTTPServer struct {
	*http.Server
	cfg   HTTPConfig
	open  atomic.Int64 // connections accepted and not yet closed
	conns sync.Map     // net.Conn -> struct{}: counted in open
	cert  atomic.Pointer[tls.Certificate]
}

type overLimitKey struct{}

// RefusalSlots is how many connections over MaxConnections are held at
// once to be answered 503 too_many_connections. Each holds a file
// descriptor until its request arrives or the header timeout passes, so
// without a bound a crowd of silent connections over the limit could take
// every fd of the process, and the log could not open its next segment.
const RefusalSlots = 64

// NewHTTPServer builds the server for h. With TLS files it loads them now,
// so a bad certificate is an error at start, not at the first handshake.
func NewHTTPServer(cfg HTTPConfig, h http.Handler) (*HTTPServer, error) {
	if (cfg.TLSCertFile == "") != (cfg.TLSKeyFile == "") {
		return nil, errors.New("give both --tls-cert and --tls-key, or neither")
	}
	if cfg.Auth != nil {
		h = cfg.Auth.Wrap(h)
	}
	if cfg.BodyReadTimeout > 0 {
		h = bodyDeadline(cfg.BodyReadTimeout, h)
	}
	s := &HTTPServer{cfg: cfg}
	s.Server = &http.Server{
		Handler:           s.limitConnections(h),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		// No ReadTimeout or WriteTimeout: they would also bound the long
		// polls (LockWait, watches); BodyReadTimeout covers the body.
		ConnContext: s.connContext,
		ConnState:   s.connState,
		Protocols:   new(http.Protocols),
		HTTP2:       &http.HTTP2Config{MaxConcurrentStreams: cfg.MaxStreamsPerConnection},
	}
	// HTTP/2 over TLS is negotiated by ALPN, as net/http does by default.
	// h2c is told apart by its 24-byte preface, which no HTTP/1.1 request
	// line can begin with, so both share the port. Either way each
	// connection is one counted connection (connContext and connState see
	// the socket), and each stream one request with its own context: a
	// reset stream cancels its request as a closed HTTP/1.1 connection
	// does.
	s.Protocols.SetHTTP1(true)
	s.Protocols.SetHTTP2(true)
	s.Protocols.SetUnencryptedHTTP2(cfg.H2C)
	if cfg.TLSCertFile != "" {
		if err := s.ReloadTLS(); err != nil {
			return nil, err
		}
		s.TLSConfig = &tls.Config{
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.cert.Load(), nil },
		}
	}
	return s, nil
}

// TLS reports whether the server serves HTTPS.
func (s *HTTPServer) TLS() bool { return s.cfg.TLSCertFile != "" }

// ReloadTLS reads the certificate and key files again; new handshakes use
// them. On error the old pair stays.
func (s *HTTPServer) ReloadTLS() error {
	if !s.TLS() {
		return nil
	}
	cert, err := tls.LoadX509KeyPair(s.cfg.TLSCertFile, s.cfg.TLSKeyFile)
	if err != nil {
		return fmt.Errorf("--tls-cert %s / --tls-key %s: %w", s.cfg.TLSCertFile, s.cfg.TLSKeyFile, err)
	}
	s.cert.Store(&cert)
	return nil
}

// Serve serves on ln, over TLS when configured.
func (s *HTTPServer) Serve(ln net.Listener) error {
	if s.cfg.MaxConnections > 0 {
		ln = &boundedListener{Listener: ln, s: s, max: int64(s.cfg.MaxConnections) + RefusalSlots}
	}
	if s.TLS() {
		return s.Server.ServeTLS(ln, "", "") // the certificate comes from TLSConfig
	}
	return s.Server.Serve(ln)
}

// Connections reports the connections open now, over-limit ones included.
func (s *HTTPServer) Connections() int { return int(s.open.Load()) }

// boundedListener closes a connection at once, without a reply, when
// MaxConnections plus RefusalSlots are already open. http.Server accepts
// in one goroutine and counts the connection (connContext) before it
// accepts the next, so the count it reads is never behind.
type boundedListener struct {
	net.Listener
	s   *HTTPServer
	max int64
}

func (l *boundedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil || l.s.open.Load() < l.max {
			// An error, EMFILE included, goes to http.Server, which
			// retries with a growing pause instead of spinning.
			return c, err
		}
		c.Close()
	}
}

func (s *HTTPServer) connContext(ctx context.Context, c net.Conn) context.Context {
	s.conns.Store(c, struct{}{})
	if n := s.open.Add(1); s.cfg.MaxConnections > 0 && n > int64(s.cfg.MaxConnections) {
		return context.WithValue(ctx, overLimitKey{}, true)
	}
	return ctx
}

func (s *HTTPServer) connState(c net.Conn, st http.ConnState) {
	if st == http.StateClosed || st == http.StateHijacked {
		if _, ok := s.conns.LoadAndDelete(c); ok {
			s.open.Add(-1)
		}
	}
}

// limitConnections answers every request on a connection accepted over
// MaxConnections with 503 too_many_connections and closes it, as Redis
// answers "max number of clients reached": the client learns why at once
// instead of hanging in the accept queue.
func (s *HTTPServer) limitConnections(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if over, _ := r.Context().Value(overLimitKey{}).(bool); over {
			w.Header().Set("Connection", "close")
			w.Header().Set("Retry-After", "1")
			writeError(w, &apiError{status: http.StatusServiceUnavailable, code: CodeTooManyConnections,
				msg: "the server has " + strconv.Itoa(s.cfg.MaxConnections) + " connections open, its limit (--max-connections); retry later or reuse a connection"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// bodyDeadline bounds the time to read a request's body: the connection's
// read deadline is set when the handler starts and cleared when the body
// ends, before a long poll parks. A body cut off by it is answered 408
// request_timeout by the route (see post).
//
// Over HTTP/1.x net/http clears the deadline itself when the body ends
// (it then starts watching the connection for a disconnect), so there
// the deadline is set once and the body left as it is: one deadline call
// and no allocation per request. HTTP/2 streams have no such step, so
// their body is wrapped to clear it.
func bodyDeadline(d time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
			next.ServeHTTP(w, r)
			return
		}
		if r.ProtoMajor == 1 {
			if rd, ok := w.(readDeadliner); ok {
				rd.SetReadDeadline(time.Now().Add(d)) //nolint:errcheck // a transport without deadlines: the body is unbounded, as before
				next.ServeHTTP(w, r)
				return
			}
		}
		rc := http.NewResponseController(w)
		if err := rc.SetReadDeadline(time.Now().Add(d)); err != nil {
			next.ServeHTTP(w, r) // a transport without deadlines
			return
		}
		if r.ProtoMajor != 1 {
			r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
		}
		next.ServeHTTP(w, r)
	})
}

// readDeadliner is net/http's HTTP/1 ResponseWriter, reached without
// http.NewResponseController's allocation.
type readDeadliner interface {
	SetReadDeadline(time.Time) error
}

// deadlineBody clears the read deadline once an HTTP/2 body has ended, so
// a long poll that parks after it has none.
type deadlineBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	cleared bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	// Only at the end of the body: after a timeout the deadline stays
	// passed, so the server's attempt to drain the rest fails at once and
	// it closes the connection instead of waiting on the slow client.
	if err == io.EOF && !b.cleared {
		b.cleared = true
		b.rc.SetReadDeadline(time.Time{}) //nolint:errcheck // it worked when set
	}
	return n, err
}

// isBodyTimeout reports whether a body read failed on the read deadline.
func isBodyTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }
