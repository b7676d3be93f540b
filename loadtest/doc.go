// Package loadtest drives a latch server over HTTP and measures it the way
// the original Dragon Lock benchmark did: one line per scenario with
// throughput, payload bandwidth and latency percentiles.
//
// It is black-box: it speaks only the HTTP API (through the small Client
// in this package) and never imports the engine or httpapi, so the same
// scenarios run against `latch serve`, against an in-process server in
// tests, and against a bare net/http handler used as a baseline.
//
// Every scenario also checks what it can of correctness while it runs:
// requests add up to successes plus errors, lock handles strictly increase
// for every client, no two clients hold one lock at once, and counters
// end at the number of acknowledged adds. Violations are reported in
// Result.Violations; timing is never a violation.
//
// Measurements (see bench_test.go) are always ratios against a baseline
// taken in the same process and run, because the machines this runs on
// are shared and noisy: absolute numbers move from minute to minute,
// ratios much less.
package loadtest
