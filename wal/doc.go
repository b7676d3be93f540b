// Package wal is latch's durable, ordered record log. It sits on
// github.com/tidwall/wal for segment files and adds what that library lacks:
// a checksum and sequence number in every record, group commit, a directory
// fsync when a segment is created, torn-tail repair at open, and fail-stop
// on any write or fsync error. It knows nothing of commands: a record is an
// opaque payload.
//
// # Record format
//
// tidwall/wal stores each entry as uvarint(len(data)) + data, with no
// checksum. Our data is framed as:
//
//	 0        4                12      13
//	+--------+----------------+-------+------------------+
//	| crc32c |   seq (u64 LE) | kind  | payload ...      |
//	+--------+----------------+-------+------------------+
//	  crc32c (Castagnoli) covers bytes [4:], i.e. seq, kind and payload.
//
// seq equals the tidwall/wal index of the entry, so a record that was moved,
// duplicated or zero-filled is detected. kind is RecordKindV1 today; it
// gives the format room to change.
//
// # What durable means
//
// Append queues a framed record and returns a Ticket. A Ticket is done once
// the batch holding its record has been written and fsynced (and, if the
// batch opened a new segment file, the directory fsynced too). Nothing may
// be acknowledged to a client before its Ticket is done without error.
//
// # Group commit
//
// One committer goroutine takes everything appended since the last batch
// (across all callers), writes it with one WriteBatch and one fsync, then
// resolves every Ticket of that batch. While it is in fsync, new records
// collect in the next batch: no timers, no sleeps; the batch size adapts to
// load.
//
// # Fail stop
//
// After any write or fsync error the Log is failed forever: that batch and
// every later Append resolve with ErrFailed, and OnFail is called once. We
// never retry on the same tidwall/wal object because its in-memory state has
// already advanced past what reached disk.
//
// # Recovery and crash safety
//
// Open scans every segment itself before handing the directory to
// tidwall/wal:
//
//   - A crash during a write can leave the end of the last segment torn: a
//     partial entry, a partial length prefix, or zeros where the file system
//     extended the file but data never arrived. Such damage in the last
//     segment, with no valid later record after it, is a torn tail: the
//     bytes from the damage to the end are kept aside as
//     <name>.broken-at-<offset>, the segment is truncated to its last valid
//     record, fsynced, and the log opens. Those records were never
//     acknowledged, because a Ticket resolves only after fsync. Cutting
//     needs no free space; keeping the cut bytes does, and on a full disk
//     they are dropped (Repair.NotKept) rather than refusing to start.
//   - Damage that is followed by a valid record with a higher sequence
//     number, damage in any segment but the last, or a record whose
//     sequence number is not the one expected, is corruption: Open returns a
//     *CorruptError naming the file and byte offset and refuses to start,
//     because acknowledged data may be lost.
//   - A power loss during the last write can also leave a sector of it
//     unwritten (zeros) while later sectors of the same write reached the
//     disk: damage followed by valid records. Only the batch being written
//     can look like that, and it was never acknowledged, so when the damage
//     holds a whole sector-aligned run of SectorSize zero bytes, or zeros
//     from the damaged entry's first byte (never 0 in a written entry) up to
//     a sector boundary, it is a torn tail too. A flipped bit does not zero
//     a sector and is still refused.
//   - A crash while a new segment is being created leaves an empty or
//     partial last segment; this is a torn tail like any other. tidwall/wal
//     fsyncs a segment before it creates the next, so every segment but the
//     last is complete.
//   - A log whose newest segments are missing looks like a log that ended
//     there. Options.TailFile, a marker outside the log directory, holds
//     the first sequence of the newest segment, moved before anything in a
//     new segment is acknowledged; Open refuses (*EndsEarlyError) a log with
//     no segment at or after it. Salvage is the way out (latch recover).
//
// # Room on disk
//
// When the log opens its tail segment or creates a new one, it reserves
// the segment's full size on disk with fallocate(FALLOC_FL_KEEP_SIZE): the
// blocks are allocated but the file's length does not change, so the scan
// and tidwall/wal see exactly what was written. Appends inside a segment
// then never meet a full disk, whatever else (a snapshot) fills it. Where
// the file system cannot reserve, or is too full, the log works on without
// and Options.OnNoRoom hears of it once.
//
// # Observing durability
//
// Options.SyncHook hears of every completed fsync: the tail segment and
// its durable size after each batch, each segment tidwall/wal closed (and
// fsynced) during the batch, and each directory fsync. The power-loss
// harness (engine/powerloss_test.go) builds crash images from exactly this.
// The latch_nofsync build tag turns the committer's fsyncs off, for that
// harness's reverse check only; a binary built with it refuses to start
// outside a test.
//
// tidwall/wal's truncation files (*.START, *.END) are not produced by this
// package yet; Open refuses a directory holding them rather than guess.
package wal
