// Package loadtest drives a sync server and measures it the way the
// original Dragon Lock benchmark did: one line per scenario with
// throughput, payload bandwidth and latency percentiles, row for row the
// original table (see Scenarios), plus correctness checks. `latch
// loadtest` (Main, ParseCLI) is its command line.
//
// # Targets
//
// Scenarios never speak a protocol themselves: they call a Target, which
// hands each simulated client a Conn with the few operations the table
// needs (KV set/get, counter add/read, lock with a FIFO wait and unlock,
// watch on a key's version). *Client is the latch Target over HTTP; it
// builds request bodies by appending to per-connection buffers and scans
// success replies for the one number it needs instead of decoding them.
// To measure another server (Redis, etcd), implement Target for it:
//
//   - Name labels its results.
//   - Supports(f) returns nil for every Feature it can do and an error
//     saying why not for the others; scenarios needing a missing feature
//     are skipped with that reason (Result.Skipped), not failed.
//     FeatureFencing says lock handles strictly increase server-wide, and
//     turns on the checks that they do.
//   - Conn returns a per-client connection; one goroutine uses it.
//     Refusals the server explains should come back as *APIError (its
//     Code is the error class in the output), unreadable replies wrapped
//     in ErrBadReply, anything else is counted as "transport".
//
// Simulated latency (Options.Latency) wraps any target's Conn, so every
// target pays the same simulated round trip.
//
// # Measuring
//
// Latencies go into a log-bucketed Histogram per client (about 0.4%
// precision, merged at the end), so long runs cost no memory per
// request. With Options.Rate the clients start operations on a shared
// open-loop schedule and latency counts from each operation's scheduled
// start, so a server that stalls is charged for the requests it delayed
// (coordinated omission) instead of looking faster. Watch rows time each
// watcher's reply from the moment its key's write was sent; the
// idle-waiters row times each grant from the first holder's release.
//
// # Checking
//
// Every scenario also checks what it can while it runs: requests add up
// to successes plus errors, no two clients hold one lock at once, lock
// handles strictly increase per lock and per client (on fencing targets),
// counters end at the number of acknowledged adds, every watcher sees
// every change (its reply's version is above the one it held, and comes
// after the write was sent), and every idle waiter is granted exactly
// once with a distinct handle. Violations are reported in
// Result.Violations and make `latch loadtest` exit 1; timing is never a
// violation.
//
// Measurements in bench_test.go are ratios against a baseline taken in
// the same process and run, because the machines this runs on are shared
// and noisy: absolute numbers move from minute to minute, ratios much
// less.
package loadtest
