package loadtest

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// exactPercentile is the nearest-rank percentile of sorted values.
func exactPercentile(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func within(got, want time.Duration, rel float64) bool {
	return math.Abs(float64(got-want)) <= rel*float64(want)+1
}

// TestHistogramPercentiles: for uniform, exponential and log-normal
// latencies the histogram's percentiles are within 1% of the exact ones,
// and min, max, count and mean are exact.
func TestHistogramPercentiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	dists := map[string]func() time.Duration{
		"uniform 0-10ms": func() time.Duration { return time.Duration(rng.Int64N(int64(10 * time.Millisecond))) },
		"exponential 2ms": func() time.Duration {
			return time.Duration(rng.ExpFloat64() * float64(2*time.Millisecond))
		},
		"lognormal": func() time.Duration {
			return time.Duration(math.Exp(rng.NormFloat64()*1.5) * float64(time.Millisecond))
		},
		"small ns": func() time.Duration { return time.Duration(rng.IntN(300)) },
	}
	for name, gen := range dists {
		t.Run(name, func(t *testing.T) {
			var h Histogram
			vals := make([]time.Duration, 100000)
			var sum float64
			for i := range vals {
				vals[i] = gen()
				h.Record(vals[i])
				sum += float64(vals[i])
			}
			slices.Sort(vals)
			for _, p := range []float64{0, 0.01, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999, 1} {
				if got, want := h.Percentile(p), exactPercentile(vals, p); !within(got, want, 0.01) {
					t.Errorf("p%v = %v, want %v within 1%%", p*100, got, want)
				}
			}
			if h.Count() != uint64(len(vals)) || h.Min() != vals[0] || h.Max() != vals[len(vals)-1] {
				t.Errorf("count %d min %v max %v, want %d %v %v", h.Count(), h.Min(), h.Max(), len(vals), vals[0], vals[len(vals)-1])
			}
			if mean := time.Duration(sum / float64(len(vals))); !within(h.Mean(), mean, 1e-9) {
				t.Errorf("mean %v, want %v", h.Mean(), mean)
			}
		})
	}
}

// TestHistogramMerge: merging per-worker histograms gives exactly the
// histogram of all values recorded in one.
func TestHistogramMerge(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var all Histogram
	parts := make([]Histogram, 7)
	for i := 0; i < 50000; i++ {
		d := time.Duration(rng.ExpFloat64() * float64(time.Duration(1+i%7)*time.Millisecond))
		all.Record(d)
		parts[i%7].Record(d)
	}
	var merged Histogram
	merged.Merge(&Histogram{}) // empty: no effect
	for i := range parts {
		merged.Merge(&parts[i])
	}
	merged.Merge(nil)
	if merged.Count() != all.Count() || merged.Min() != all.Min() || merged.Max() != all.Max() || !within(merged.Mean(), all.Mean(), 1e-9) {
		t.Fatalf("merged histogram differs: count %d/%d min %v/%v max %v/%v", merged.Count(), all.Count(), merged.Min(), all.Min(), merged.Max(), all.Max())
	}
	for g := range all.groups {
		if (all.groups[g] == nil) != (merged.groups[g] == nil) || all.groups[g] != nil && *all.groups[g] != *merged.groups[g] {
			t.Fatalf("group %d differs", g)
		}
	}
}

func TestHistogramEdges(t *testing.T) {
	var h Histogram
	if h.Percentile(0.5) != 0 || h.Max() != 0 || h.Mean() != 0 {
		t.Error("empty histogram is not all zero")
	}
	h.Record(-5) // counts as 0
	h.RecordN(time.Hour, 3)
	if h.Count() != 4 || h.Min() != 0 || h.Max() != time.Hour || h.Percentile(0.25) != 0 || !within(h.Percentile(0.5), time.Hour, 0.01) {
		t.Errorf("count %d min %v max %v p25 %v p50 %v", h.Count(), h.Min(), h.Max(), h.Percentile(0.25), h.Percentile(0.5))
	}
	h.Record(math.MaxInt64)
	if h.Max() != math.MaxInt64 || h.Percentile(1) != math.MaxInt64 {
		t.Errorf("max %v", h.Max())
	}
}
