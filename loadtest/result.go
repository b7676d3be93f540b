package loadtest

import (
	"encoding/json"
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
	Target   string        // the target's Name: "latch"
	Unit     string        // what Ops counts: "req", "handoffs", "changes observed"
	Clients  int           // concurrent clients (watchers, waiters for those rows)
	Elapsed  time.Duration // the time Ops are divided by
	Ops      int64         // successful operations (Unit)
	Requests int64         // requests sent, successful or not
	Errors   map[string]int64
	// PayloadBytes is the value bytes carried by successful operations,
	// as the original's MB/sec column counted them.
	PayloadBytes int64
	// Violations lists every correctness check that failed. Empty is good.
	Violations []string
	// Skipped, when set, says why the scenario did not run (the target
	// lacks a feature); nothing else is set then.
	Skipped string
	// Stopped counts clients that gave up after repeated transport
	// errors; StopReason is the first such error.
	Stopped    int
	StopReason string
	// Extra holds scenario-specific numbers (watch rounds, parked
	// waiters), and Note says them in words on the text line.
	Extra map[string]float64
	Note  string
	// Options the run used, for the record.
	Rate    float64
	Latency time.Duration

	hist *Histogram // latencies of successful operations
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

// Histogram is the latency histogram of successful operations.
func (r *Result) Histogram() *Histogram {
	if r.hist == nil {
		r.hist = &Histogram{}
	}
	return r.hist
}

// Percentile returns the latency at or below which fraction p (0..1) of
// successful operations completed, within the histogram's precision.
func (r *Result) Percentile(p float64) time.Duration { return r.Histogram().Percentile(p) }

// Max is the slowest successful operation.
func (r *Result) Max() time.Duration { return r.Histogram().Max() }

// ErrorCount is the number of failed requests of every class.
func (r *Result) ErrorCount() int64 {
	var n int64
	for _, c := range r.Errors {
		n += c
	}
	return n
}

// Failed reports whether the run is not good: a check was violated, or
// requests were made and none succeeded.
func (r *Result) Failed() bool {
	return len(r.Violations) > 0 || (r.Skipped == "" && r.Ops == 0 && r.ErrorCount() > 0)
}

// ReportedPercentiles are the percentiles every output shows.
var ReportedPercentiles = []float64{0.5, 0.9, 0.99, 0.999}

// String is one line in the original benchmark's style, followed by
// latency percentiles, errors and a note, then one line per violation:
//
//	64byte write KV for 1000 accounts and 1000 keys: 105.3k req/sec 6.7 MB/sec p50 1.2ms p90 2ms p99 5ms p99.9 9ms max 21ms
func (r *Result) String() string {
	var b strings.Builder
	if r.Skipped != "" {
		fmt.Fprintf(&b, "%s: skipped: %s", r.Title, r.Skipped)
		return b.String()
	}
	fmt.Fprintf(&b, "%s: %s %s/sec", r.Title, human(r.Throughput()), r.Unit)
	if r.PayloadBytes > 0 {
		fmt.Fprintf(&b, " %.1f MB/sec", r.BytesPerSec()/1e6)
	}
	fmt.Fprintf(&b, " p50 %s p90 %s p99 %s p99.9 %s max %s", roundDur(r.Percentile(0.5)), roundDur(r.Percentile(0.9)),
		roundDur(r.Percentile(0.99)), roundDur(r.Percentile(0.999)), roundDur(r.Max()))
	if r.Note != "" {
		fmt.Fprintf(&b, " (%s)", r.Note)
	}
	if n := r.ErrorCount(); n > 0 {
		fmt.Fprintf(&b, " errors %d (%s)", n, r.errorList())
	}
	if r.Stopped > 0 {
		fmt.Fprintf(&b, " %d clients stopped: %s", r.Stopped, r.StopReason)
	}
	if r.Ops == 0 && r.ErrorCount() > 0 {
		b.WriteString(" FAILED: no operation succeeded")
	}
	if len(r.Violations) > 0 {
		fmt.Fprintf(&b, " VIOLATIONS: %d", len(r.Violations))
		for _, v := range r.Violations {
			fmt.Fprintf(&b, "\n  VIOLATION %s: %s", r.Scenario, v)
		}
	}
	return b.String()
}

func (r *Result) errorList() string {
	classes := make([]string, 0, len(r.Errors))
	for c := range r.Errors {
		classes = append(classes, c)
	}
	sort.Strings(classes)
	for i, c := range classes {
		classes[i] = fmt.Sprintf("%s=%d", c, r.Errors[c])
	}
	return strings.Join(classes, " ")
}

// MarshalJSON writes the result for machines: rates per second and
// latencies in milliseconds.
func (r *Result) MarshalJSON() ([]byte, error) {
	type latency struct {
		P50  float64 `json:"p50"`
		P90  float64 `json:"p90"`
		P99  float64 `json:"p99"`
		P999 float64 `json:"p99_9"`
		Max  float64 `json:"max"`
		Min  float64 `json:"min"`
		Mean float64 `json:"mean"`
	}
	ms := func(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }
	out := struct {
		Scenario     string             `json:"scenario"`
		Title        string             `json:"title"`
		Target       string             `json:"target"`
		Unit         string             `json:"unit"`
		Skipped      string             `json:"skipped,omitempty"`
		Clients      int                `json:"clients"`
		ElapsedSec   float64            `json:"elapsed_sec"`
		Ops          int64              `json:"ops"`
		Requests     int64              `json:"requests"`
		PerSec       float64            `json:"per_sec"`
		PayloadBytes int64              `json:"payload_bytes"`
		BytesPerSec  float64            `json:"bytes_per_sec"`
		LatencyMs    latency            `json:"latency_ms"`
		Errors       map[string]int64   `json:"errors"`
		Violations   []string           `json:"violations"`
		Stopped      int                `json:"stopped_clients,omitempty"`
		StopReason   string             `json:"stop_reason,omitempty"`
		Extra        map[string]float64 `json:"extra,omitempty"`
		Note         string             `json:"note,omitempty"`
		RatePerSec   float64            `json:"rate_per_sec,omitempty"`
		SimLatencyMs float64            `json:"simulated_latency_ms,omitempty"`
		CorrectedCO  bool               `json:"corrected_for_coordinated_omission"`
		OK           bool               `json:"ok"`
	}{
		Scenario: r.Scenario, Title: r.Title, Target: r.Target, Unit: r.Unit, Skipped: r.Skipped,
		Clients: r.Clients, ElapsedSec: r.Elapsed.Seconds(), Ops: r.Ops, Requests: r.Requests,
		PerSec: r.Throughput(), PayloadBytes: r.PayloadBytes, BytesPerSec: r.BytesPerSec(),
		LatencyMs: latency{
			P50: ms(r.Percentile(0.5)), P90: ms(r.Percentile(0.9)), P99: ms(r.Percentile(0.99)),
			P999: ms(r.Percentile(0.999)), Max: ms(r.Max()), Min: ms(r.Histogram().Min()), Mean: ms(r.Histogram().Mean()),
		},
		Errors: r.Errors, Violations: r.Violations, Stopped: r.Stopped, StopReason: r.StopReason,
		Extra: r.Extra, Note: r.Note, RatePerSec: r.Rate, SimLatencyMs: ms(r.Latency),
		CorrectedCO: r.Rate > 0, OK: !r.Failed(),
	}
	if out.Errors == nil {
		out.Errors = map[string]int64{}
	}
	if out.Violations == nil {
		out.Violations = []string{}
	}
	return json.Marshal(out)
}

// human formats a rate as the original did: 105.3k, 2.1M, 950.
func human(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.1f", v)
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
