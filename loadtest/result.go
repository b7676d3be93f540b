package loadtest

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
)

// Result is what one scenario run measured and checked.
type Result struct {
	Scenario string        // the scenario's name, e.g. "kv64-1000x1000"
	Title    string        // the Dragon Lock style description
	Unit     string        // what Ops counts: "req", "handoffs"
	Clients  int           // concurrent clients
	Elapsed  time.Duration // from the first request to the last reply
	Ops      int64         // successful operations (Unit)
	Requests int64         // HTTP requests sent, successful or not
	Errors   map[string]int64
	// PayloadBytes is the value bytes carried by successful operations,
	// as the original's MB/sec column counted them.
	PayloadBytes int64
	// Violations lists every correctness check that failed. Empty is good.
	Violations []string

	lat []time.Duration // latencies of successful operations, sorted
}

// Throughput is successful operations per second.
func (r *Result) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Elapsed.Seconds()
}

// BytesPerSec is payload bytes per second.
func (r *Result) BytesPerSec() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.PayloadBytes) / r.Elapsed.Seconds()
}

// Percentile returns the latency at or below which fraction p (0..1) of
// successful operations completed (nearest rank), or 0 with no samples.
func (r *Result) Percentile(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(r.lat)))) - 1
	i = max(0, min(i, len(r.lat)-1))
	return r.lat[i]
}

// Max is the slowest successful operation.
func (r *Result) Max() time.Duration { return r.Percentile(1) }

// ErrorCount is the number of failed requests of every class.
func (r *Result) ErrorCount() int64 {
	var n int64
	for _, c := range r.Errors {
		n += c
	}
	return n
}

// String is one line in the original benchmark's style, followed by
// latency percentiles, errors and violations when there are any:
//
//	64byte write KV for 1000 accounts and 1000 keys: 105.3k req/sec 6.7 MB/sec p50 1.2ms p90 2ms p99 5ms max 21ms
func (r *Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s %s/sec", r.Title, human(r.Throughput()), r.Unit)
	if r.PayloadBytes > 0 {
		fmt.Fprintf(&b, " %.1f MB/sec", r.BytesPerSec()/1e6)
	}
	fmt.Fprintf(&b, " p50 %s p90 %s p99 %s max %s", roundDur(r.Percentile(0.5)), roundDur(r.Percentile(0.9)),
		roundDur(r.Percentile(0.99)), roundDur(r.Max()))
	if n := r.ErrorCount(); n > 0 {
		classes := make([]string, 0, len(r.Errors))
		for c := range r.Errors {
			classes = append(classes, c)
		}
		sort.Strings(classes)
		for i, c := range classes {
			classes[i] = fmt.Sprintf("%s=%d", c, r.Errors[c])
		}
		fmt.Fprintf(&b, " errors %d (%s)", n, strings.Join(classes, " "))
	}
	if len(r.Violations) > 0 {
		fmt.Fprintf(&b, " VIOLATIONS %d: %s", len(r.Violations), strings.Join(r.Violations, "; "))
	}
	return b.String()
}

// human formats a rate as the original did: 105.3k, 2.1M, 950.
func human(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

// roundDur keeps two or three significant digits: 1.23ms, 512µs, 1.2s.
func roundDur(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}
