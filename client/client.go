package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultAddr is the server address when none is given (latch serve's default).
const DefaultAddr = "http://127.0.0.1:7070"

// DefaultNamespace is the namespace of a client that was given none.
const DefaultNamespace = "default"

// Retry is the retry policy: jittered exponential backoff between
// attempts of a request that is safe to repeat (doc.go says which).
type Retry struct {
	// MaxAttempts is how many times one call sends its request at most.
	// 1 turns retries off, and with them the automatic idempotency ids.
	MaxAttempts int
	// BaseDelay is the backoff before the second attempt; it doubles per
	// attempt up to MaxDelay, and each wait is a random time in [d/2, d].
	BaseDelay time.Duration
	MaxDelay  time.Duration
	// IDTTL is how long the server remembers an automatic idempotency id
	// (IdempotencyTTL). Ids only need to outlive the attempts of one call,
	// and each costs the server about 230 bytes while remembered, so the
	// default is 10 minutes rather than the server's 24 h. 0 leaves it to
	// the server (--idempotency-ttl).
	IDTTL time.Duration
}

// DefaultRetry is the policy of a new Client: 4 attempts, 50 ms to 1 s
// apart, automatic idempotency ids remembered for 10 minutes.
var DefaultRetry = Retry{MaxAttempts: 4, BaseDelay: 50 * time.Millisecond, MaxDelay: time.Second, IDTTL: 10 * time.Minute}

// Client talks to one latch server. It is safe for concurrent use.
type Client struct {
	base  string
	token string
	ns    string
	hc    *http.Client
	retry Retry
	tls   *tls.Config // WithTLSConfig, applied to the default transport
}

// Option configures a Client.
type Option func(*Client)

// WithToken sends "Authorization: Bearer token" on every request.
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// WithHTTPClient uses hc for every request. Do not give it a Timeout
// shorter than the longest lock wait or watch you will ask for: use
// contexts for deadlines instead.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithTLSConfig sets the TLS settings of the client's own transport, for
// an https:// server whose certificate is signed by a private CA:
// &tls.Config{RootCAs: pool}. It cannot be combined with WithHTTPClient
// (set TLSClientConfig on that client's transport instead).
func WithTLSConfig(cfg *tls.Config) Option { return func(c *Client) { c.tls = cfg } }

// WithNamespace sets the namespace the convenience methods use.
func WithNamespace(ns string) Option { return func(c *Client) { c.ns = ns } }

// WithRetry sets the retry policy.
func WithRetry(r Retry) Option { return func(c *Client) { c.retry = r } }

// New returns a client for the server at addr, e.g. "http://127.0.0.1:7070"
// (a bare host:port gets http://; "" means DefaultAddr).
func New(addr string, opts ...Option) (*Client, error) {
	if addr == "" {
		addr = DefaultAddr
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("latch: server address %q: want http://host:port", addr)
	}
	// net/http keeps only 2 idle connections per host by default; with
	// more concurrent callers every extra request would open (and leave in
	// TIME_WAIT) a new connection.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 256
	own := &http.Client{Transport: tr}
	c := &Client{base: strings.TrimRight(addr, "/"), ns: DefaultNamespace, hc: own, retry: DefaultRetry}
	for _, o := range opts {
		o(c)
	}
	if c.tls != nil {
		if c.hc != own {
			return nil, errors.New("latch: WithTLSConfig and WithHTTPClient together: set TLSClientConfig on your own client's transport")
		}
		tr.TLSClientConfig = c.tls.Clone()
	}
	if c.retry.MaxAttempts < 1 {
		c.retry.MaxAttempts = 1
	}
	return c, nil
}

// Namespace returns a client that shares c's connections and settings but
// whose convenience methods use namespace ns.
func (c *Client) Namespace(ns string) *Client {
	cp := *c
	cp.ns = ns
	return &cp
}

// DefaultNamespace is the namespace the convenience methods use.
func (c *Client) DefaultNamespace() string { return c.ns }

// Request is one atomic request (POST /db/{ns}); docs/API.md describes
// every field. Durations are sent in milliseconds, rounded up.
type Request struct {
	LockID         string        // acquire (or, with UnlockID equal to it, extend) this lock
	LockDur        time.Duration // how long the lock is held unless released
	LockWait       time.Duration // how long to wait in line; 0 fails at once
	UnlockID       string        // release this lock...
	Unlock         uint64        // ...held with this handle
	KVSet          []KVSet
	KVGet          []string
	Atomic         []AtomicOp
	Seq            []SeqOp
	IdempotencyIDs []string
	// IdempotencyTTL is how long the server remembers IdempotencyIDs; 0
	// means the server's --idempotency-ttl (24 h by default), the most
	// it allows.
	IdempotencyTTL time.Duration
}

// KVSet writes (or, with Delete, removes) a key. Value is any JSON.
type KVSet struct {
	Key    string
	Value  json.RawMessage `json:",omitempty"`
	Delete bool            `json:",omitempty"`
}

// AtomicOp adds to, sets or (with neither) reads a 64-bit counter; IfEq
// makes it conditional.
type AtomicOp struct {
	Key  string
	Add  *int64 `json:",omitempty"`
	Set  *int64 `json:",omitempty"`
	IfEq *int64 `json:",omitempty"`
}

// SeqOp takes Count (default 1) ids from a sequence.
type SeqOp struct {
	Key   string
	Count uint64 `json:",omitempty"`
}

// Response is the reply of a Request.
type Response struct {
	Lock   uint64    // the lock handle (fencing token), if the request took or extended a lock
	Till   time.Time // the lock's deadline
	KV     []KV
	Atomic []Counter
	Seq    []SeqRange
	// Deduplicated is true when a retried write found that an earlier
	// attempt had applied; the request asked for no results, so nothing
	// was lost.
	Deduplicated bool
}

// KV is a key's state. A missing key has Version 0 and Value null.
type KV struct {
	Key     string
	Value   json.RawMessage
	Version uint64
}

// Counter is a counter's value after a request.
type Counter struct {
	Key   string
	Value int64
}

// SeqRange is the ids a sequence handed out, First to Last inclusive.
type SeqRange struct {
	Key         string
	First, Last uint64
}

type wireRequest struct {
	LockID         string     `json:",omitempty"`
	LockDurMs      int64      `json:",omitempty"`
	LockWaitMs     int64      `json:",omitempty"`
	UnlockID       string     `json:",omitempty"`
	Unlock         uint64     `json:",omitempty"`
	KVSet          []KVSet    `json:",omitempty"`
	KVGet          []string   `json:",omitempty"`
	Atomic         []AtomicOp `json:",omitempty"`
	Seq            []SeqOp    `json:",omitempty"`
	IdempotencyIDs []string   `json:",omitempty"`
	// IdempotencyTTLMs is how long the server remembers IdempotencyIDs.
	IdempotencyTTLMs int64 `json:",omitempty"`
}

type wireResponse struct {
	Lock   uint64
	TillMs int64
	KV     []KV
	Atomic []Counter
	Seq    []SeqRange
}

// ceilMs is d in whole milliseconds, rounded up so a tiny positive
// duration does not become "none".
func ceilMs(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

// acquires reports whether r takes a lock (rather than extending one).
func (r *Request) acquires() bool { return r.LockID != "" && r.LockID != r.UnlockID }

// writes reports whether r changes state beyond a lock extension: such a
// request is repeated only under an idempotency id.
func (r *Request) writes() bool {
	if len(r.KVSet) > 0 || len(r.Seq) > 0 || (r.UnlockID != "" && r.UnlockID != r.LockID) {
		return true
	}
	for _, a := range r.Atomic {
		if a.Add != nil || a.Set != nil {
			return true
		}
	}
	return false
}

// wantsResults reports whether r's reply carries anything beyond "done".
func (r *Request) wantsResults() bool {
	return r.LockID != "" || len(r.KVGet) > 0 || len(r.Atomic) > 0 || len(r.Seq) > 0
}

// newID is a random idempotency id for one logical write.
func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("latch: crypto/rand failed: " + err.Error())
	}
	return "latch-client-" + hex.EncodeToString(b[:])
}

// Do sends one atomic request to namespace ns and returns its reply.
//
// Retries follow doc.go: a lock acquisition is sent once; a request that
// writes is repeated only under an idempotency id, which Do generates (one
// per call, reused by every attempt) unless the caller gave ids of its
// own; reads and lock extensions are repeated as they are.
func (c *Client) Do(ctx context.Context, ns string, req Request) (Response, error) {
	wr := wireRequest{
		LockID: req.LockID, LockDurMs: ceilMs(req.LockDur), LockWaitMs: ceilMs(req.LockWait),
		UnlockID: req.UnlockID, Unlock: req.Unlock,
		KVGet: req.KVGet, Atomic: req.Atomic, Seq: req.Seq,
		IdempotencyIDs: req.IdempotencyIDs, IdempotencyTTLMs: ceilMs(req.IdempotencyTTL),
	}
	attempts := c.retry.MaxAttempts
	autoID := false
	switch {
	case req.acquires():
		// A lost reply may hide a grant; a second attempt would queue
		// behind our own grant and time out (or take a second handle).
		attempts = 1
	case req.writes() && len(req.IdempotencyIDs) == 0 && attempts > 1:
		wr.IdempotencyIDs = []string{newID()}
		wr.IdempotencyTTLMs = ceilMs(c.retry.IDTTL)
		autoID = true
	}
	body, err := encodeRequest(wr, req.KVSet)
	if err != nil {
		return Response{}, err
	}
	var out wireResponse
	attempt, err := c.send(ctx, http.MethodPost, "/db/"+url.PathEscape(ns), body, attempts, &out)
	if err != nil {
		if autoID && attempt > 1 && errors.Is(err, ErrDuplicate) {
			// Our own random id was seen: an earlier attempt applied.
			if req.wantsResults() {
				return Response{}, fmt.Errorf("%w (attempt %d of the request found its idempotency id %s used: %v)", ErrReplyLost, attempt, wr.IdempotencyIDs[0], err)
			}
			return Response{Deduplicated: true}, nil
		}
		if req.acquires() && errors.Is(err, ErrNoReply) {
			return Response{}, fmt.Errorf("%w; lock %q may have been granted anyway, and if so it blocks others until its LockDur passes", err, req.LockID)
		}
		return Response{}, err
	}
	resp := Response{Lock: out.Lock, KV: out.KV, Atomic: out.Atomic, Seq: out.Seq}
	if out.TillMs != 0 {
		resp.Till = time.UnixMilli(out.TillMs)
	}
	return resp, nil
}

// encodeRequest marshals wr and adds kvSet by hand: encoding/json
// compacts a json.RawMessage, and values must reach the server byte-exact.
func encodeRequest(wr wireRequest, kvSet []KVSet) ([]byte, error) {
	body, err := json.Marshal(wr)
	if err != nil {
		return nil, fmt.Errorf("latch: encoding the request: %w", err)
	}
	if len(kvSet) == 0 {
		return body, nil
	}
	body = body[:len(body)-1] // the closing brace
	if len(body) > 1 {
		body = append(body, ',')
	}
	body = append(body, `"KVSet":[`...)
	for i, set := range kvSet {
		if i > 0 {
			body = append(body, ',')
		}
		key, err := json.Marshal(set.Key)
		if err != nil {
			return nil, fmt.Errorf("latch: encoding key %q: %w", set.Key, err)
		}
		body = append(append(body, `{"Key":`...), key...)
		switch {
		case set.Delete:
			body = append(body, `,"Delete":true`...)
		case set.Value != nil:
			if !json.Valid(set.Value) {
				return nil, fmt.Errorf("%w: the value of key %q is not valid JSON", ErrInvalidRequest, set.Key)
			}
			body = append(append(body, `,"Value":`...), set.Value...)
		}
		body = append(body, '}')
	}
	return append(body, "]}"...), nil
}

// send does the HTTP exchange with up to attempts tries, decoding a 200
// reply into out. It returns the attempt that produced the result.
func (c *Client) send(ctx context.Context, method, path string, body []byte, attempts int, out any) (int, error) {
	var lastErr error
	for attempt := 1; ; attempt++ {
		err := c.once(ctx, method, path, body, out)
		if err == nil || attempt >= attempts || !retryable(err) || ctx.Err() != nil {
			if err != nil && ctx.Err() != nil && lastErr != nil && errors.Is(err, context.Canceled) {
				err = fmt.Errorf("%w (the previous attempt: %v)", err, lastErr)
			}
			return attempt, err
		}
		lastErr = err
		if werr := sleepCtx(ctx, c.backoff(attempt)); werr != nil {
			return attempt, fmt.Errorf("%w (gave up retrying after: %v)", werr, err)
		}
	}
}

// retryable: no reply at all, or the server (or a proxy) said it is
// unavailable. Both leave the request unapplied or, for a write, covered
// by its idempotency id.
func retryable(err error) bool {
	var badCert *tls.CertificateVerificationError
	if errors.As(err, &badCert) {
		return false // the same certificate fails the same way next time
	}
	if errors.Is(err, ErrNoReply) {
		return true
	}
	var ae *APIError
	return errors.As(err, &ae) && (ae.Status == http.StatusServiceUnavailable || ae.Status == http.StatusBadGateway || ae.Status == http.StatusGatewayTimeout)
}

// backoff is the wait after the n-th failed attempt: full exponential
// growth from BaseDelay, capped at MaxDelay, jittered to [d/2, d].
func (c *Client) backoff(n int) time.Duration {
	d := c.retry.BaseDelay
	for i := 1; i < n && d < c.retry.MaxDelay; i++ {
		d *= 2
	}
	if c.retry.MaxDelay > 0 && d > c.retry.MaxDelay {
		d = c.retry.MaxDelay
	}
	if d <= 1 {
		return d
	}
	j, err := rand.Int(rand.Reader, big.NewInt(int64(d/2)))
	if err != nil {
		return d
	}
	return d/2 + time.Duration(j.Int64())
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// once is a single HTTP exchange.
func (c *Client) once(ctx context.Context, method, path string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	hr, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return fmt.Errorf("latch: %w", err)
	}
	if body != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		hr.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(hr)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: %s %s: %w", ErrNoReply, method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: %s %s: reading the reply: %w", ErrNoReply, method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		ae := &APIError{Status: resp.StatusCode}
		var e struct{ Code, Message string }
		if json.Unmarshal(data, &e) == nil && e.Code != "" {
			ae.Code, ae.Message = e.Code, e.Message
		} else {
			ae.Message = strings.TrimSpace(string(data))
			if len(ae.Message) > 200 {
				ae.Message = ae.Message[:200] + "..."
			}
		}
		return ae
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%w: %s %s: undecodable reply %q: %v", ErrNoReply, method, path, data, err)
	}
	return nil
}
