//go:build latch_nofsync

package engine

import (
	"testing"

	"github.com/latchkv/latch/wal"
)

// TestPowerLossNoFsync is the harness's first reverse check: built with
// latch_nofsync the log acknowledges batches without fsyncing them, and the
// harness must see acknowledged writes lost in its crash images. If it did
// not, its durability model would be trusting something other than fsync.
// Run by `make test` as `go test -tags latch_nofsync -run TestPowerLossNoFsync ./engine`.
func TestPowerLossNoFsync(t *testing.T) {
	if !wal.FsyncDisabled {
		t.Fatal("the latch_nofsync tag did not turn fsync off")
	}
	seed := plSeed(t)
	rec, wl := plRun(t, t.TempDir(), 4, 30, 10, 2048)
	rep := plCheck(t, rec, wl, 300, seed)
	t.Log(rep.summary())
	if len(rep.lost) == 0 {
		t.Fatal("with fsync disabled the harness found no lost acknowledged write: it cannot tell durable from written")
	}
	t.Logf("as expected, e.g.: %s", rep.lost[0])
}
