package wal

import (
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// rawFsync is ProbeFsync for a benchmark.
func rawFsync(b *testing.B, dir string) time.Duration {
	b.Helper()
	d, err := ProbeFsync(dir, 101)
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// benchAppend runs run against a fresh log and reports, next to ns/op:
// fsync-µs, the median raw write+fsync in the same directory; fsyncs/op,
// ns/op divided by that (about 1 when every op pays its own fsync, well
// below 1 when group commit shares them); and commits/op, the batches the
// log actually wrote per op.
func benchAppend(b *testing.B, run func(l *Log, payload []byte)) {
	dir := b.TempDir()
	fsync := rawFsync(b, dir)
	var commits atomic.Int64
	l, err := Open(filepath.Join(dir, "wal"), Options{FaultHook: func(step string) error {
		if step == "fsync" {
			commits.Add(1)
		}
		return nil
	}})
	if err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 64)
	for i := range payload {
		payload[i] = byte(i)
	}
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	b.ResetTimer()
	run(l, payload)
	b.StopTimer()
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	nsPerOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(float64(fsync.Nanoseconds())/1e3, "fsync-µs")
	b.ReportMetric(nsPerOp/float64(fsync.Nanoseconds()), "fsyncs/op")
	b.ReportMetric(float64(commits.Load())/float64(b.N), "commits/op")
}

// BenchmarkAppendSerial: one writer, Append then Wait, 64-byte records:
// every op waits for its own fsync.
func BenchmarkAppendSerial(b *testing.B) {
	benchAppend(b, func(l *Log, payload []byte) {
		for i := 0; i < b.N; i++ {
			if err := l.Append(payload).Wait(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkAppendParallel: 16 writers per CPU, each Append then Wait:
// group commit lets one fsync acknowledge many of them.
func BenchmarkAppendParallel(b *testing.B) {
	benchAppend(b, func(l *Log, payload []byte) {
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := l.Append(payload).Wait(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkNewSegment: one writer, one record of 64 KiB per op into 64 KiB
// segments, so every op creates a segment and pays its directory fsync;
// with-marker also moves the tail marker (a temp file, its fsync, a
// rename and a directory fsync). The difference per op is the marker's
// cost per segment; at the default 20 MiB it is paid once per 20 MiB.
func BenchmarkNewSegment(b *testing.B) {
	for _, marker := range []bool{false, true} {
		name := "no-marker"
		if marker {
			name = "with-marker"
		}
		b.Run(name, func(b *testing.B) {
			dir := b.TempDir()
			opts := Options{SegmentSize: 64 << 10}
			if marker {
				opts.TailFile = filepath.Join(dir, "wal-tail")
			}
			l, err := Open(filepath.Join(dir, "wal"), opts)
			if err != nil {
				b.Fatal(err)
			}
			payload := make([]byte, 64<<10)
			b.SetBytes(int64(len(payload)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := l.Append(payload).Wait(); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if err := l.Close(); err != nil {
				b.Fatal(err)
			}
		})
	}
}
