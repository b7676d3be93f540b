package main

import (
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/latchkv/latch/wal"
)

// probeRTT is the median time of n sequential GET /livez on one kept-alive
// connection: a round trip through the network stack and the server's
// HTTP layer with no work and no fsync behind it.
func probeRTT(url string, n int) (time.Duration, error) {
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}}
	defer c.CloseIdleConnections()
	samples := make([]time.Duration, n)
	for i := range samples {
		start := time.Now()
		resp, err := c.Get(url + "/livez")
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		samples[i] = time.Since(start)
	}
	slices.Sort(samples)
	return samples[n/2], nil
}

// probeFsync is the median of a 64-byte append and fsync in dir, on the
// file system the server's log is on.
func probeFsync(dir string) (time.Duration, error) { return wal.ProbeFsync(dir, 200) }
