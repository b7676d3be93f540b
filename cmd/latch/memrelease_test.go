package main

import "testing"

// TestIdleReleaserReleasesOncePerBurst: a release needs a quiet look, more
// than the slack kept beyond the live heap, and a slack's worth of
// allocation since the last release, so an idle server whose heap stays
// fragmented does not collect at every look.
func TestIdleReleaserReleasesOncePerBurst(t *testing.T) {
	const mib = 1 << 20
	var r idleReleaser
	steps := []struct {
		name string
		m    memSample
		want bool
	}{
		{"busy: 100 MiB allocated since the last look", memSample{allocs: 100 * mib, retained: 300 * mib, live: 150 * mib}, false},
		{"quiet, 150 MiB over the live heap", memSample{allocs: 100*mib + mib/2, retained: 300 * mib, live: 150 * mib}, true},
		{"quiet, still 50 MiB over it, nothing allocated since", memSample{allocs: 100*mib + mib, retained: 200 * mib, live: 150 * mib}, false},
		{"busy again", memSample{allocs: 300 * mib, retained: 300 * mib, live: 150 * mib}, false},
		{"quiet after a new burst", memSample{allocs: 300*mib + mib/2, retained: 300 * mib, live: 150 * mib}, true},
		{"busy once more", memSample{allocs: 500 * mib, retained: 300 * mib, live: 150 * mib}, false},
		{"quiet, within the slack of a quarter of the live heap", memSample{allocs: 500*mib + mib/2, retained: 180 * mib, live: 150 * mib}, false},
	}
	for _, s := range steps {
		if got := r.shouldRelease(s.m); got != s.want {
			t.Fatalf("%s: shouldRelease = %v, want %v", s.name, got, s.want)
		}
	}
}
