//go:build latch_nofsync

package wal

import "testing"

// fsyncEnabled is false under the latch_nofsync build tag: the committer
// writes batches and resolves Tickets without fsyncing the segment or the
// directory, and SyncHook hears of no fsync. It exists only for the
// power-loss harness's reverse check (engine/powerloss_nofsync_test.go):
// with fsync off the harness must report lost acknowledged writes.
const fsyncEnabled = false

// A binary built with this tag would acknowledge writes that a power loss
// erases. Refuse to run anywhere but in a test binary, so the tag can never
// leak into a server.
func init() {
	if !testing.Testing() {
		panic("wal: built with the latch_nofsync tag, which disables fsync; it is for the power-loss harness's tests only")
	}
}

// FsyncDisabled reports that this build skips the committer's fsyncs.
const FsyncDisabled = true
