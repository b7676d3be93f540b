package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Restart and snapshot measurements for the snapshot issue. Sizes come from
// LATCH_BENCH_KEYS (default 1,000,000), LATCH_BENCH_LOCKS (default 100,000)
// and LATCH_BENCH_WRITES_PER_KEY (default 3: the log holds that many
// single-key writes per key, as a store that has been running a while
// does); run with `make bench-snapshot`.

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// populate writes each of keys 64-byte values writesPerKey times, one key
// per request, over 1000 namespaces, then takes locks held for an hour,
// from many goroutines.
func populate(b *testing.B, e *Engine, keys, locks int) {
	b.Helper()
	writes := keys * envInt("LATCH_BENCH_WRITES_PER_KEY", 3)
	value := []byte(fmt.Sprintf(`"%062d"`, 0)) // 64 bytes of JSON
	run := func(n int, do func(i int) error) {
		var next atomic.Int64
		var wg sync.WaitGroup
		for g := 0; g < 128; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
					if err := do(i); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
	}
	run(writes, func(i int) error {
		k := i % keys
		_, err := e.Do(context.Background(), "ns-"+strconv.Itoa(k%1000), &Request{KVSet: []KVSet{{Key: "key-" + strconv.Itoa(k), Value: value}}})
		return err
	})
	run(locks, func(i int) error {
		_, err := e.Do(context.Background(), "ns-"+strconv.Itoa(i%1000), &Request{LockID: "lock-" + strconv.Itoa(i), LockDurMs: 3_600_000})
		return err
	})
}

func dirSize(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			n += info.Size()
		}
		return nil
	})
	return n
}

func timedOpen(b *testing.B, cfg Config) (*Engine, time.Duration) {
	b.Helper()
	start := time.Now()
	e, err := Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return e, time.Since(start)
}

// BenchmarkRestart compares a restart that replays the whole log with one
// that loads a snapshot, on the same data, in the same process.
func BenchmarkRestart(b *testing.B) {
	keys, locks := envInt("LATCH_BENCH_KEYS", 1_000_000), envInt("LATCH_BENCH_LOCKS", 100_000)
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		cfg := Config{Dir: dir, SnapshotEveryRecords: -1}
		e, _ := timedOpen(b, cfg)
		populate(b, e, keys, locks)
		e.Close()
		logBytes := dirSize(dir)

		e, fromLog := timedOpen(b, cfg)
		if got := e.Recovered().HeldLocks; got != locks {
			b.Fatalf("log replay restored %d held locks, want %d", got, locks)
		}
		info, err := e.Snapshot()
		if err != nil {
			b.Fatal(err)
		}
		e.Close()
		e, fromSnap := timedOpen(b, cfg)
		if got := e.Recovered().HeldLocks; got != locks {
			b.Fatalf("snapshot restored %d held locks, want %d", got, locks)
		}
		e.Close()
		b.ReportMetric(fromLog.Seconds(), "s-restart-from-log")
		b.ReportMetric(fromSnap.Seconds(), "s-restart-from-snapshot")
		b.ReportMetric(fromLog.Seconds()/fromSnap.Seconds(), "x-faster")
		b.ReportMetric(float64(info.Pause.Microseconds()), "us-loop-pause")
		b.Logf("%d keys written %d times each, %d locks: log %.1f MB, snapshot %.1f MB (%d entries, taken in %v, loops paused %v); "+
			"restart from log %v, from snapshot %v (%.1fx); data dir %.1f MB after the snapshot",
			keys, envInt("LATCH_BENCH_WRITES_PER_KEY", 3), locks, float64(logBytes)/1e6, float64(info.Bytes)/1e6, info.Entries, info.Took, info.Pause,
			fromLog, fromSnap, fromLog.Seconds()/fromSnap.Seconds(), float64(dirSize(dir))/1e6)
	}
}

// BenchmarkWriteP99DuringSnapshot measures single-key write latency from 64
// writers on a loaded store, first with no snapshot running, then while
// snapshots are taken back to back.
func BenchmarkWriteP99DuringSnapshot(b *testing.B) {
	keys, locks := envInt("LATCH_BENCH_KEYS", 1_000_000), envInt("LATCH_BENCH_LOCKS", 100_000)
	phase := 5 * time.Second
	for i := 0; i < b.N; i++ {
		e, _ := timedOpen(b, Config{Dir: b.TempDir(), SnapshotEveryRecords: -1})
		populate(b, e, keys, locks)
		measure := func(snapshots bool) (p50, p99 time.Duration, pauses []time.Duration) {
			stop := make(chan struct{})
			var mu sync.Mutex
			var lat []time.Duration
			var wg sync.WaitGroup
			for g := 0; g < 64; g++ {
				wg.Add(1)
				go func(g int) {
					defer wg.Done()
					var mine []time.Duration
					for n := 0; ; n++ {
						select {
						case <-stop:
							mu.Lock()
							lat = append(lat, mine...)
							mu.Unlock()
							return
						default:
						}
						t0 := time.Now()
						_, err := e.Do(context.Background(), "ns-"+strconv.Itoa((g*7919+n)%1000), &Request{
							KVSet: []KVSet{{Key: "w-" + strconv.Itoa(n%1000), Value: []byte(`"x"`)}}})
						if err != nil {
							b.Error(err)
						}
						mine = append(mine, time.Since(t0))
					}
				}(g)
			}
			deadline := time.Now().Add(phase)
			for snapshots && time.Now().Before(deadline) {
				info, err := e.Snapshot()
				if err != nil {
					b.Fatal(err)
				}
				pauses = append(pauses, info.Pause)
			}
			time.Sleep(time.Until(deadline))
			close(stop)
			wg.Wait()
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			return lat[len(lat)/2], lat[len(lat)*99/100], pauses
		}
		p50a, p99a, _ := measure(false)
		p50b, p99b, pauses := measure(true)
		sort.Slice(pauses, func(i, j int) bool { return pauses[i] < pauses[j] })
		e.Close()
		b.ReportMetric(float64(p99a.Microseconds()), "us-p99-no-snapshot")
		b.ReportMetric(float64(p99b.Microseconds()), "us-p99-during-snapshot")
		b.ReportMetric(float64(pauses[len(pauses)-1].Microseconds()), "us-max-loop-pause")
		b.Logf("write latency without snapshots p50 %v p99 %v; during %d back-to-back snapshots p50 %v p99 %v; loop pause median %v max %v",
			p50a, p99a, len(pauses), p50b, p99b, pauses[len(pauses)/2], pauses[len(pauses)-1])
	}
}

// TestDataDirBounded: with snapshots taken as writes continue, the log does
// not grow without bound.
func TestDataDirBounded(t *testing.T) {
	dir := t.TempDir()
	e := openTestCfg(t, Config{Dir: dir, Shards: 2, SegmentSize: 16 << 10, SnapshotEveryRecords: -1})
	maxSegs := 0
	for round := 0; round < 10; round++ {
		writeKeys(t, e, round*300, (round+1)*300)
		if _, err := e.Snapshot(); err != nil {
			t.Fatal(err)
		}
		maxSegs = max(maxSegs, segmentCount(t, dir))
	}
	// 3000 records of ~60 bytes fill about 12 segments of 16 KiB; two
	// snapshots' worth of log (600 records) is about 3.
	if maxSegs > 5 {
		t.Fatalf("the log grew to %d segments while snapshots were taken", maxSegs)
	}
}
