package wal

import (
	"os"
	"slices"
	"time"
)

// ProbeFsync appends 64 bytes to a temporary file in dir and fsyncs it, n
// times (at least 1), and returns the median: the floor under one durable
// write on that file system. Benchmarks report their numbers against it,
// since absolute timings on a shared machine drift.
func ProbeFsync(dir string, n int) (time.Duration, error) {
	f, err := os.CreateTemp(dir, "fsync-probe-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 64)
	samples := make([]time.Duration, max(n, 1))
	for i := range samples {
		start := time.Now()
		if _, err := f.Write(buf); err != nil {
			return 0, err
		}
		if err := f.Sync(); err != nil {
			return 0, err
		}
		samples[i] = time.Since(start)
	}
	slices.Sort(samples)
	return samples[len(samples)/2], nil
}
