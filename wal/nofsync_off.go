//go:build !latch_nofsync

package wal

// fsyncEnabled is true in every real build. The latch_nofsync build tag
// (nofsync_on.go) turns the committer's fsyncs off, only so that the
// power-loss harness can prove it notices the loss (engine/powerloss_*).
const fsyncEnabled = true

// FsyncDisabled reports whether this build skips the committer's fsyncs
// (only under the latch_nofsync test tag).
const FsyncDisabled = false
