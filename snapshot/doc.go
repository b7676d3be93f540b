// Package snapshot will hold latch's snapshot file format (zstd via
// github.com/klauspost/compress) and its atomic publish.
//
// Status: not built yet. Today a restart replays the whole write-ahead log;
// snapshots, log truncation and the `latch snapshot` CLI are the subject of
// the snapshot issue. This file exists so the package layout is fixed.
package snapshot
