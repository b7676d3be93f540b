package engine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/latchkv/latch/wal"
)

// # The handle floor
//
// Handles strictly increase for the life of the data (I4) because replay
// restores the counter past every handle in the snapshot and the log. That
// argument fails wherever state goes back in time: a backup restored over
// a server that kept issuing handles after the backup was taken, or a log
// whose damaged end an operator gave up. Nothing in the older state knows
// what was issued later, and no operator remembers it.
//
// The wall clock does. Whatever moves state back in time (snapshot restore,
// latch recover) writes a floor into the data directory: the next handle
// is above it. The floor is TimeFloor(now), HandlesPerMs for every
// millisecond since the Unix epoch, and never below the restored state's
// own last handle. A server that issued handles from an earlier floor F0,
// at time T0, has issued at most F0 + rate*(T-T0) by time T; that stays
// below TimeFloor(T) = F0 + HandlesPerMs*(T-T0) as long as it issued fewer
// than HandlesPerMs handles per millisecond on average. One fsync per grant
// batch keeps latch three orders of magnitude below that. The clock of the
// restoring machine must not be behind the old server's clock; restore
// refuses a backup created in what its clock calls the future.
//
// HandlesPerMs*now stays below 2^53 (exact in a JavaScript number) until
// the year 2255.

// HandleFloorFile is the file in the data directory that holds the floor:
// a decimal number and a newline. Every handle issued is above it.
const HandleFloorFile = "handle-floor"

// HandlesPerMs is how many handles the time-derived floor allows a server
// to issue per millisecond without ever reaching a later floor.
const HandlesPerMs = 1000

// MaxSafeHandle is the largest integer a JavaScript number holds exactly;
// no floor is allowed above it.
const MaxSafeHandle = 1<<53 - 1

// TimeFloor is the handle floor derived from the wall clock at t.
func TimeFloor(t time.Time) uint64 {
	ms := t.UnixMilli()
	if ms < 0 {
		return 0
	}
	return uint64(ms) * HandlesPerMs
}

// ReadHandleFloor reads dir's handle floor, 0 if it has none.
func ReadHandleFloor(dir string) (uint64, error) {
	path := filepath.Join(dir, HandleFloorFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n > MaxSafeHandle {
		return 0, fmt.Errorf("engine: %s does not hold a handle floor (a decimal number up to 2^53-1): %q; "+
			"it is written by latch snapshot restore and latch recover, never by hand", path, strings.TrimSpace(string(b)))
	}
	return n, nil
}

// RaiseHandleFloor makes dir's handle floor at least floor, durably: a
// temp file, fsynced, renamed over the old one, and the directory fsynced.
// It never lowers the floor. It returns the floor now in force. The caller
// must hold the data directory's lock (LockDataDir).
func RaiseHandleFloor(dir string, floor uint64) (uint64, error) {
	if floor > MaxSafeHandle {
		return 0, fmt.Errorf("engine: a handle floor of %d is above 2^53-1, which JavaScript clients cannot hold exactly", floor)
	}
	cur, err := ReadHandleFloor(dir)
	if err != nil {
		return 0, err
	}
	if cur >= floor {
		return cur, nil
	}
	if err := wal.WriteUintFile(filepath.Join(dir, HandleFloorFile), floor); err != nil {
		return 0, err
	}
	return floor, nil
}
