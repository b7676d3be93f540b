//go:build race

package httpapi_test

// raceEnabled: the race detector slows encoding/json on the 1 MiB bodies
// of TestBadInput about tenfold, so under it the table runs twice, for
// correctness; `make test`'s non-race step runs it 20 times, for the
// heap check.
const raceEnabled = true
