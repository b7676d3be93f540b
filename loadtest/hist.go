package loadtest

import (
	"math"
	"math/bits"
	"time"
)

// Histogram records durations in log-spaced buckets, as HdrHistogram
// does: values below 256 ns are exact, larger ones fall in buckets
// 1/128 of their power of two wide, so any percentile is within 0.4% of
// the true value (the bucket's midpoint is reported). Buckets are
// allocated per power of two on first use, so a histogram that only
// ever sees milliseconds costs a few KB. Histograms of separate workers
// merge exactly with Merge. The zero value is ready to use; it is not
// safe for concurrent use.
type Histogram struct {
	groups [64]*[2 * histSub]uint64
	count  uint64
	sum    float64 // ns, for the mean
	min    int64
	max    int64
}

const (
	histSubBits = 7
	histSub     = 1 << histSubBits // buckets per power of two
)

// histIndex is the group and slot of v >= 0: group 0 holds 0..255
// exactly; group g > 0 holds [128<<g, 256<<g) in steps of 1<<g.
func histIndex(v int64) (g, slot int) {
	g = bits.Len64(uint64(v)) - (histSubBits + 1)
	if g < 0 {
		g = 0
	}
	return g, int(uint64(v) >> uint(g))
}

// histValue is the value a bucket stands for: its midpoint.
func histValue(g, slot int) int64 {
	if g == 0 {
		return int64(slot)
	}
	return int64(slot)<<uint(g) + int64(1)<<uint(g-1)
}

// Record adds one duration (negative durations count as 0).
func (h *Histogram) Record(d time.Duration) { h.RecordN(d, 1) }

// RecordN adds n occurrences of d.
func (h *Histogram) RecordN(d time.Duration, n uint64) {
	if n == 0 {
		return
	}
	v := max(int64(d), 0)
	g, slot := histIndex(v)
	b := h.groups[g]
	if b == nil {
		b = new([2 * histSub]uint64)
		h.groups[g] = b
	}
	b[slot] += n
	if h.count == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.count += n
	h.sum += float64(v) * float64(n)
}

// Merge adds every value recorded in o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.count == 0 {
		return
	}
	for g, ob := range o.groups {
		if ob == nil {
			continue
		}
		b := h.groups[g]
		if b == nil {
			b = new([2 * histSub]uint64)
			h.groups[g] = b
		}
		for i, n := range ob {
			b[i] += n
		}
	}
	if h.count == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.count += o.count
	h.sum += o.sum
}

// Count is the number of recorded values.
func (h *Histogram) Count() uint64 { return h.count }

// Min and Max are the exact extremes (0 when empty).
func (h *Histogram) Min() time.Duration { return time.Duration(h.min) }

// Max is the largest recorded value, exactly.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean is the exact mean.
func (h *Histogram) Mean() time.Duration {
	if h.count == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.count))
}

// Percentile returns the value at or below which fraction p (0..1) of
// the values lie (nearest rank), within the bucket precision, clamped to
// the exact min and max. 0 when empty.
func (h *Histogram) Percentile(p float64) time.Duration {
	if h.count == 0 {
		return 0
	}
	if p >= 1 {
		return time.Duration(h.max)
	}
	rank := uint64(math.Ceil(p * float64(h.count)))
	rank = max(rank, 1)
	var seen uint64
	for g, b := range h.groups {
		if b == nil {
			continue
		}
		for slot, n := range b {
			if n == 0 {
				continue
			}
			seen += n
			if seen >= rank {
				v := histValue(g, slot)
				return time.Duration(min(max(v, h.min), h.max))
			}
		}
	}
	return time.Duration(h.max)
}
