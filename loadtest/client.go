package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// APIError is an error reply of the latch API: {"Code", "Message"}.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("loadtest: HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// Client is a minimal latch HTTP client tuned for load: one keep-alive
// connection per concurrent caller, no compression, no HTTP/2.
type Client struct {
	base string
	hc   *http.Client
}

// NewClient returns a client for the server at base (http://host:port; a
// bare host:port gets http://). conns is the least number of idle
// connections it keeps for reuse; it opens as many as callers need.
func NewClient(base string, conns int) *Client {
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	if conns < 1 {
		conns = 1
	}
	// No cap on open connections: watch and idle-waiter scenarios park
	// one request per simulated client, thousands of them, and each
	// needs its own connection. Idle connections are kept (up to 20,000)
	// so those clients reuse theirs instead of redialling every round.
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        max(conns, 20000),
		MaxIdleConnsPerHost: max(conns, 20000),
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	return &Client{base: strings.TrimRight(base, "/"), hc: &http.Client{Transport: tr}}
}

// Close drops the client's idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// Post sends body to path and appends the reply body to dst. A non-2xx
// reply is returned as *APIError (with the reply still in the result).
func (c *Client) Post(ctx context.Context, path string, body, dst []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(body))
	if err != nil {
		return dst, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return dst, err
	}
	dst, err = readAll(resp.Body, dst)
	resp.Body.Close()
	if err != nil {
		return dst, err
	}
	if resp.StatusCode/100 != 2 {
		apiErr := &APIError{Status: resp.StatusCode, Code: "http_" + fmt.Sprint(resp.StatusCode)}
		var wire struct{ Code, Message string }
		if json.Unmarshal(dst, &wire) == nil && wire.Code != "" {
			apiErr.Code, apiErr.Message = wire.Code, wire.Message
		}
		return dst, apiErr
	}
	return dst, nil
}

// readAll appends r to dst, reusing dst's capacity.
func readAll(r io.Reader, dst []byte) ([]byte, error) {
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		n, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}

// Request is the body of POST /db/{env}, as far as the scenarios use it.
type Request struct {
	LockID     string     `json:",omitempty"`
	LockDurMs  int64      `json:",omitempty"`
	LockWaitMs int64      `json:",omitempty"`
	UnlockID   string     `json:",omitempty"`
	Unlock     uint64     `json:",omitempty"`
	KVSet      []KVSet    `json:",omitempty"`
	KVGet      []string   `json:",omitempty"`
	Atomic     []AtomicOp `json:",omitempty"`
}

// KVSet writes one key; Value is raw JSON.
type KVSet struct {
	Key   string
	Value json.RawMessage
}

// AtomicOp adds Add to a counter; with Add nil it reads the counter.
type AtomicOp struct {
	Key string
	Add *int64 `json:",omitempty"`
}

// Response is the reply of POST /db/{env}.
type Response struct {
	Lock   uint64
	TillMs int64
	KV     []struct {
		Key     string
		Value   json.RawMessage
		Version uint64
	}
	Atomic []struct {
		Key   string
		Value int64
	}
}

// Do sends req to namespace ns and decodes the reply.
func (c *Client) Do(ctx context.Context, ns string, req *Request) (*Response, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	out, err := c.Post(ctx, "/db/"+ns, body, nil)
	if err != nil {
		return nil, err
	}
	var resp Response
	if err := json.Unmarshal(out, &resp); err != nil {
		return nil, fmt.Errorf("loadtest: bad reply %q: %w", out, err)
	}
	return &resp, nil
}

// errorClass names an error for the per-class error counts: the API's
// code, "timeout", "canceled", "bad_reply" or "transport".
func errorClass(err error) string {
	var apiErr *APIError
	switch {
	case errors.As(err, &apiErr):
		return apiErr.Code
	case errors.Is(err, ErrBadReply):
		return "bad_reply"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case isNetTimeout(err):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	default:
		return "transport"
	}
}

func isNetTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
