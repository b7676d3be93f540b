package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// fanoutClient is an HTTP client for many parked requests at once: over
// HTTP/1.1 one connection each, over h2c (HTTP/2 without TLS, by prior
// knowledge) as many streams per connection as the server allows.
func fanoutClient(h2c bool, n int) *http.Client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 30 * time.Second}).DialContext,
		MaxIdleConns:        n + 100,
		MaxIdleConnsPerHost: n + 100,
		IdleConnTimeout:     5 * time.Minute,
		DisableCompression:  true,
	}
	if h2c {
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
	}
	return &http.Client{Transport: tr}
}

// post sends body and decodes a 2xx JSON reply into out (if not nil).
func post(ctx context.Context, c *http.Client, url, body string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader([]byte(body)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return &statusError{fmt.Sprintf("%s: %d %s", url, resp.StatusCode, bytes.TrimSpace(b))}
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// statusError is a reply that is not 2xx, as opposed to a failure to
// connect or to read, which postRetry tries again.
type statusError struct{ msg string }

func (e *statusError) Error() string { return e.msg }

// postRetry is post, tried again while the connection fails: when
// thousands of clients dial at once on a loaded machine, some
// connections are refused or reset before their request gets through.
func postRetry(ctx context.Context, c *http.Client, url, body string, out any) error {
	for {
		err := post(ctx, c, url, body, out)
		var se *statusError
		if err == nil || errors.As(err, &se) || ctx.Err() != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

type adminStats struct{ Waiters, Watchers int }

// waitStat polls GET /admin/stats until want says yes: the server's own
// count of parked requests, so a timed write starts only when all of
// them are in place.
func waitStat(url string, d time.Duration, want func(adminStats) bool) (adminStats, error) {
	var st adminStats
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url + "/admin/stats")
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if err == nil && want(st) {
				return st, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return st, fmt.Errorf("/admin/stats still %+v after %s", st, d)
}

// runFanout parks cfg.watchers watches of one key, writes the key, and
// times the last watcher's reply from the write's acknowledgement (and
// from its sending). One untimed round opens the connections; the run's
// figure is the median of cfg.fanoutRounds timed rounds.
func runFanout(cfg *config, t target, h2c bool, extra []string) (metrics, error) {
	s, err := startServer(t, cfg.tmp, extra...)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	n := cfg.watchers
	c := fanoutClient(h2c, n)
	defer c.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	url := s.url()
	var version uint64
	write := func() error {
		return post(ctx, c, url+"/db/fan", `{"KVSet":[{"Key":"k","Value":"`+fmt.Sprint(time.Now().UnixNano())+`"}]}`, nil)
	}
	if err := write(); err != nil {
		if h2c {
			return nil, fmt.Errorf("%w: %v", errNoH2C, err)
		}
		return nil, err
	}
	var first struct{ Version uint64 }
	if err := post(ctx, c, url+"/watch/fan", `{"ID":"k","Version":0}`, &first); err != nil {
		return nil, err
	}
	version = first.Version
	var fromAck, fromSend []float64
	for round := 0; round <= cfg.fanoutRounds; round++ {
		done := make([]time.Time, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		body := fmt.Sprintf(`{"ID":"k","Version":%d,"Timeout":120}`, version)
		got := make([]uint64, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var rep struct{ Version uint64 }
				errs[i] = postRetry(ctx, c, url+"/watch/fan", body, &rep)
				done[i] = time.Now()
				got[i] = rep.Version
			}()
		}
		if _, err := waitStat(url, 2*time.Minute, func(st adminStats) bool { return st.Watchers >= n }); err != nil {
			cancel()
			wg.Wait()
			return nil, fmt.Errorf("%d watchers did not all park: %v (first error: %v)", n, err, firstErr(errs))
		}
		sent := time.Now()
		if err := write(); err != nil {
			return nil, err
		}
		acked := time.Now()
		wg.Wait()
		if err := firstErr(errs); err != nil {
			return nil, fmt.Errorf("a watcher failed: %v", err)
		}
		last := slices.MaxFunc(done, func(a, b time.Time) int { return a.Compare(b) })
		for i, v := range got {
			if v <= version {
				return nil, fmt.Errorf("watcher %d got version %d, not past %d", i, v, version)
			}
		}
		version = got[0]
		if round > 0 {
			fromAck = append(fromAck, float64(last.Sub(acked))/1e6)
			fromSend = append(fromSend, float64(last.Sub(sent))/1e6)
		}
	}
	rss, _ := s.rssMiB()
	return metrics{"ms": median(fromAck), "ms_send": median(fromSend), "rss": rss}, nil
}

// errNoH2C ends a fan-out row's runs on a server without h2c at the
// first round: the later ones would fail the same way.
var errNoH2C = errors.New("the server does not answer h2c (HTTP/2 without TLS, by prior knowledge)")

func firstErr(errs []error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
