package engine

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BenchmarkWatchFanout: n watches parked on one key, one write wakes them
// all; one op is one such round, parking included. Reported besides:
//
//	ms-ack-to-last  from the write's reply to the last watch's return
//	ms-send-to-last from sending the write to the last watch's return
//	cpu-ms-wake     the process's CPU time (user+system) over the same span
//
// Without HTTP: this is the engine's share of a fan-out (the loop
// claiming the watches, their goroutines waking once the write is
// durable).
func BenchmarkWatchFanout(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			e, err := Open(Config{Dir: b.TempDir(), SnapshotEveryRecords: -1, MaxWatchersPerKey: n})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			ctx := context.Background()
			set := func(v int) *Response {
				resp, err := e.Do(ctx, "fan", &Request{KVSet: []KVSet{{Key: "k", Value: []byte(fmt.Sprint(v))}}})
				if err != nil {
					b.Fatal(err)
				}
				return resp
			}
			set(0)
			version := uint64(1)
			var fromAck, fromSend, cpu time.Duration
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				var wg sync.WaitGroup
				var mu sync.Mutex
				var last time.Time
				for range n {
					wg.Add(1)
					go func() {
						defer wg.Done()
						res, err := e.Watch(ctx, "fan", "k", version, time.Minute)
						now := time.Now()
						if err != nil || res.Version == version {
							b.Errorf("watch: %+v %v", res, err)
						}
						mu.Lock()
						if now.After(last) {
							last = now
						}
						mu.Unlock()
					}()
				}
				for e.KeyWatchers("fan", "k") < n {
					time.Sleep(time.Millisecond)
				}
				cpu0 := cpuTime()
				sent := time.Now()
				set(i + 1)
				acked := time.Now()
				wg.Wait()
				cpu += cpuTime() - cpu0
				version++
				fromAck += last.Sub(acked)
				fromSend += last.Sub(sent)
			}
			b.ReportMetric(float64(fromAck.Microseconds())/1e3/float64(b.N), "ms-ack-to-last")
			b.ReportMetric(float64(fromSend.Microseconds())/1e3/float64(b.N), "ms-send-to-last")
			b.ReportMetric(float64(cpu.Microseconds())/1e3/float64(b.N), "cpu-ms-wake")
		})
	}
}

// cpuTime is the CPU time this process has used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
