package engine

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/latchkv/latch/wal"
)

// Benchmarks of the apply + commit path: Engine.Do up to a durable reply,
// without HTTP. Every number is reported next to the median raw 64-byte
// write+fsync measured in the same temp directory in the same run, since
// the machine is shared and an fsync is what one durable write costs:
//
//	fsync-µs     the baseline
//	fsyncs/op    ns/op divided by the baseline: 1 means one fsync per op
//	             (serial), well below 1 means group commit is sharing them

// benchOpen opens an engine for a benchmark, without automatic snapshots
// so they do not land inside the measurement.
func benchOpen(b *testing.B) *Engine {
	b.Helper()
	e, err := Open(Config{Dir: b.TempDir(), SnapshotEveryRecords: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	return e
}

// benchMedianFsync is wal.ProbeFsync for a benchmark.
func benchMedianFsync(b *testing.B, dir string, n int) time.Duration {
	b.Helper()
	d, err := wal.ProbeFsync(dir, n)
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// benchReportFsync measures the baseline (timer stopped) and reports it
// with the ratio of the measured ns/op to it.
func benchReportFsync(b *testing.B, elapsed time.Duration) {
	b.StopTimer()
	fsync := benchMedianFsync(b, b.TempDir(), 200)
	b.ReportMetric(float64(fsync.Nanoseconds())/1e3, "fsync-µs")
	if b.N > 0 {
		b.ReportMetric(float64(elapsed.Nanoseconds())/float64(b.N)/float64(fsync.Nanoseconds()), "fsyncs/op")
	}
}

// value64 is a 64-byte JSON value, the size of the load-test rows.
var value64 = []byte(fmt.Sprintf(`"%062d"`, 0))

// benchNames precomputes namespace and key names so the loop measures
// the engine, not strconv.
func benchNames(prefix string, n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = prefix + strconv.Itoa(i)
	}
	return s
}

// BenchmarkEngineDo: one 64-byte KVSet per request, over 1000 namespaces
// x 1000 keys. serial waits for each reply (one fsync each); parallel has
// many goroutines per core in flight so group commit can batch them.
func BenchmarkEngineDo(b *testing.B) {
	nss, keys := benchNames("ns-", 1000), benchNames("key-", 1000)
	b.Run("serial", func(b *testing.B) {
		e := benchOpen(b)
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		start := time.Now()
		for i := 0; i < b.N; i++ {
			req := &Request{KVSet: []KVSet{{Key: keys[(i/1000)%1000], Value: value64}}}
			if _, err := e.Do(ctx, nss[i%1000], req); err != nil {
				b.Fatal(err)
			}
		}
		benchReportFsync(b, time.Since(start))
	})
	for _, perCPU := range []int{16, 200} {
		b.Run(fmt.Sprintf("parallel-%dperCPU", perCPU), func(b *testing.B) {
			e := benchOpen(b)
			ctx := context.Background()
			var next atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(perCPU)
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := int(next.Add(1))
					req := &Request{KVSet: []KVSet{{Key: keys[(i*7919)%1000], Value: value64}}}
					if _, err := e.Do(ctx, nss[i%1000], req); err != nil {
						b.Error(err)
						return
					}
				}
			})
			benchReportFsync(b, time.Since(start))
		})
	}
}

// BenchmarkEngineLockUnlock: take a lock and release it with its handle,
// two durable requests per op. serial on one key; parallel over many
// namespaces and keys (little contention).
func BenchmarkEngineLockUnlock(b *testing.B) {
	nss, keys := benchNames("ns-", 1000), benchNames("lock-", 1000)
	lockUnlock := func(e *Engine, ns, key string) error {
		resp, err := e.Do(context.Background(), ns, &Request{LockID: key, LockDurMs: 30_000, LockWaitMs: 10_000})
		if err != nil {
			return err
		}
		_, err = e.Do(context.Background(), ns, &Request{UnlockID: key, Unlock: resp.Lock})
		return err
	}
	b.Run("serial", func(b *testing.B) {
		e := benchOpen(b)
		b.ReportAllocs()
		b.ResetTimer()
		start := time.Now()
		for i := 0; i < b.N; i++ {
			if err := lockUnlock(e, "ns", "lock"); err != nil {
				b.Fatal(err)
			}
		}
		benchReportFsync(b, time.Since(start))
	})
	b.Run("parallel-200perCPU", func(b *testing.B) {
		e := benchOpen(b)
		var next atomic.Int64
		b.ReportAllocs()
		b.SetParallelism(200)
		b.ResetTimer()
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := int(next.Add(1))
				if err := lockUnlock(e, nss[i%1000], keys[(i*7919)%1000]); err != nil {
					b.Error(err)
					return
				}
			}
		})
		benchReportFsync(b, time.Since(start))
	})
}
