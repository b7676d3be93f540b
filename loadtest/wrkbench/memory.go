package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// settleRSS is how long the server idles before its RSS is read, so
// buffers of the last requests are collected.
const settleRSS = 2 * time.Second

// runMemoryPerKey writes cfg.keys keys of 64-byte values spread over
// cfg.keyNamespaces namespaces, cfg.fillBatch keys a request from 8
// clients, and reads the server's RSS once it idles.
func runMemoryPerKey(cfg *config, t target, extra []string) (metrics, error) {
	s, err := startServer(t, cfg.tmp, extra...)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	idle, err := s.rssMiB()
	if err != nil {
		return nil, err
	}
	c := fanoutClient(false, 8)
	defer c.CloseIdleConnections()
	ctx := context.Background()
	perNS := cfg.keys / cfg.keyNamespaces
	batches := make(chan [2]int) // namespace, first key
	go func() {
		for ns := range cfg.keyNamespaces {
			for k := 0; k < perNS; k += cfg.fillBatch {
				batches <- [2]int{ns, k}
			}
		}
		close(batches)
	}()
	start := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			var b strings.Builder
			for job := range batches {
				b.Reset()
				b.WriteString(`{"KVSet":[`)
				for k := job[1]; k < min(job[1]+cfg.fillBatch, perNS); k++ {
					if k > job[1] {
						b.WriteByte(',')
					}
					fmt.Fprintf(&b, `{"Key":"k%07d","Value":"%s"}`, k, letters(rng, 64))
				}
				b.WriteString(`]}`)
				if err := post(ctx, c, fmt.Sprintf("%s/db/n%d", s.url(), job[0]), b.String(), nil); err != nil {
					failed.CompareAndSwap(nil, &err)
				}
			}
		}()
	}
	wg.Wait()
	if e := failed.Load(); e != nil {
		return nil, *e
	}
	fill := time.Since(start)
	c.CloseIdleConnections()
	time.Sleep(settleRSS)
	rss, err := s.rssMiB()
	if err != nil {
		return nil, err
	}
	return metrics{"rss": rss, "idle_rss": idle, "fill_s": fill.Seconds()}, nil
}

func letters(rng *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + rng.IntN(26))
	}
	return string(b)
}

// runIdleWaiters holds a lock and parks cfg.waiters requests for it over
// HTTP/1.1 (one connection each), and reads the server's RSS once the
// server counts them all as waiting.
func runIdleWaiters(cfg *config, t target, extra []string) (metrics, error) {
	s, err := startServer(t, cfg.tmp, extra...)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	idle, err := s.rssMiB()
	if err != nil {
		return nil, err
	}
	n := cfg.waiters
	c := fanoutClient(false, n)
	defer c.CloseIdleConnections()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := post(ctx, c, s.url()+"/db/idle", `{"LockID":"one","LockDur":600}`, nil); err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel, which ends the parked requests
	defer cancel()
	var refused atomic.Pointer[error]
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := postRetry(ctx, c, s.url()+"/db/idle", `{"LockID":"one","LockDur":30,"LockWait":300}`, nil)
			if err != nil && ctx.Err() == nil {
				refused.CompareAndSwap(nil, &err)
			}
		}()
	}
	start := time.Now()
	if _, err := waitStat(s.url(), 2*time.Minute, func(st adminStats) bool { return st.Waiters >= n || refused.Load() != nil }); err != nil {
		return nil, fmt.Errorf("%d waiters did not all park: %v", n, err)
	}
	if e := refused.Load(); e != nil {
		return nil, fmt.Errorf("a waiter was refused: %v", *e)
	}
	parked := time.Since(start)
	time.Sleep(settleRSS)
	rss, err := s.rssMiB()
	if err != nil {
		return nil, err
	}
	return metrics{"rss": rss, "idle_rss": idle, "park_s": parked.Seconds()}, nil
}
