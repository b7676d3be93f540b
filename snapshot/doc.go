// Package snapshot is latch's snapshot file format: one file holding the
// whole state at one cut of the write-ahead log, so a restart loads it and
// replays only the log after the cut. The engine supplies the content
// through Writer and reads it back through Read; this package knows nothing
// of locks or keys beyond their encoding.
//
// Status: the format, its writer, reader and checks are built and tested.
// Wiring into the engine (periodic snapshots, log truncation, recovery from
// a snapshot) and the `latch snapshot` CLI are not built yet.
//
// # File layout
//
//	 0         8      12     16       24            32           40      44
//	+---------+------+------+--------+-------------+------------+-------+
//	| magic   | ver  | flags| cut    | last handle | created ms | crc   |  header, 44 bytes
//	+---------+------+------+--------+-------------+------------+-------+
//	| zstd frame: the body, a sequence of entries (below)                |
//	+---------+---------+----------+----------+-------+-----------------+
//	| raw len | entries | body crc | zstd crc | crc   | end magic       |  trailer, 36 bytes
//	+---------+---------+----------+----------+-------+-----------------+
//	  8 bytes   8 bytes   4 bytes    4 bytes   4 bytes  8 bytes
//
// All integers are little endian. magic is "LATCHSNP", end magic
// "LATCHEND". ver is Version. cut is the sequence number of the last log
// record the snapshot covers; recovery replays records after it. last
// handle is the highest lock handle ever issued, so handles keep increasing
// after a restore (DESIGN I4). The header crc (CRC32C) covers bytes [0:40];
// the trailer crc covers the 24 bytes before it. body crc is the CRC32C of
// the uncompressed body, raw len its length and entries its entry count;
// zstd crc is the CRC32C of the compressed bytes, checked before any
// decompression, so every flipped bit in the file is caught even where zstd
// would decode it to the same body.
//
// # Body entries
//
//	entry     = tag(1 byte) fields
//	Namespace = name  uvarint(revision)        starts a namespace; the
//	                                           entries after it belong to it
//	KV        = key   uvarint(version) bytes(value)
//	Counter   = key   varint(value)
//	Seq       = key   uvarint(next id)
//	Lock      = key   uvarint(handle) varint(deadline unix ms)
//	Idem      = id    varint(expiry unix ms)
//	name, key, id, bytes = uvarint(length) + raw bytes
//
// # Hostile files
//
// A reader never trusts the file: the trailer is checked before any
// decompression, decompression stops at raw len bytes (a zstd bomb that
// expands further is rejected), the zstd window is capped at MaxWindow,
// every length field is bounded by what is left of the body, and the body
// crc must match at the end. Any failure is an error wrapping ErrCorrupt
// naming the file and what is wrong; a partially read snapshot must not be
// used.
//
// # Publishing
//
// WriteFile writes to a temporary file in the target directory, fsyncs it,
// renames it into place and fsyncs the directory (DESIGN I8), so a crash
// leaves either the old set of snapshots or the new one, never a torn file
// under a snapshot's name.
package snapshot
