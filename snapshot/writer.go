package snapshot

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/zstd"
)

// Writer streams a snapshot: header, then entries through zstd, then the
// trailer on Close. Errors are sticky: after one, every call returns it.
type Writer struct {
	out     *crcWriter
	zw      *zstd.Encoder
	crc     uint32
	raw     uint64
	entries uint64
	buf     []byte
	err     error
}

// NewWriter writes the header for h to w and returns a Writer for the body.
func NewWriter(w io.Writer, h Header) (*Writer, error) {
	if _, err := w.Write(encodeHeader(h)); err != nil {
		return nil, err
	}
	out := &crcWriter{w: w}
	zw, err := zstd.NewWriter(out, zstd.WithEncoderLevel(zstd.SpeedDefault),
		zstd.WithWindowSize(MaxWindow), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	return &Writer{out: out, zw: zw}, nil
}

// crcWriter checksums the compressed bytes on their way out.
type crcWriter struct {
	w   io.Writer
	crc uint32
}

func (c *crcWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.crc = crc32.Update(c.crc, castagnoli, p[:n])
	return n, err
}

func (w *Writer) put(tag byte, key string) {
	w.buf = append(w.buf[:0], tag)
	w.buf = binary.AppendUvarint(w.buf, uint64(len(key)))
	w.buf = append(w.buf, key...)
}

func (w *Writer) flush() error {
	if w.err != nil {
		return w.err
	}
	if _, err := w.zw.Write(w.buf); err != nil {
		w.err = err
		return err
	}
	w.crc = crc32.Update(w.crc, castagnoli, w.buf)
	w.raw += uint64(len(w.buf))
	w.entries++
	return nil
}

// Namespace starts a namespace; the entries after it belong to it.
func (w *Writer) Namespace(name string, revision uint64) error {
	w.put(TagNamespace, name)
	w.buf = binary.AppendUvarint(w.buf, revision)
	return w.flush()
}

// KV writes one key.
func (w *Writer) KV(key string, version uint64, value []byte) error {
	w.put(TagKV, key)
	w.buf = binary.AppendUvarint(w.buf, version)
	w.buf = binary.AppendUvarint(w.buf, uint64(len(value)))
	w.buf = append(w.buf, value...)
	return w.flush()
}

// Counter writes one counter.
func (w *Writer) Counter(key string, value int64) error {
	w.put(TagCounter, key)
	w.buf = binary.AppendVarint(w.buf, value)
	return w.flush()
}

// Seq writes one sequence's next id.
func (w *Writer) Seq(key string, next uint64) error {
	w.put(TagSeq, key)
	w.buf = binary.AppendUvarint(w.buf, next)
	return w.flush()
}

// Lock writes one held lock.
func (w *Writer) Lock(key string, handle uint64, deadlineMs int64) error {
	w.put(TagLock, key)
	w.buf = binary.AppendUvarint(w.buf, handle)
	w.buf = binary.AppendVarint(w.buf, deadlineMs)
	return w.flush()
}

// Idem writes one idempotency id and its expiry.
func (w *Writer) Idem(id string, expiryMs int64) error {
	w.put(TagIdem, id)
	w.buf = binary.AppendVarint(w.buf, expiryMs)
	return w.flush()
}

// Close ends the zstd stream and writes the trailer. It does not close or
// sync the underlying writer.
func (w *Writer) Close() (Trailer, error) {
	if w.err != nil {
		w.zw.Close()
		return Trailer{}, w.err
	}
	if err := w.zw.Close(); err != nil {
		w.err = err
		return Trailer{}, err
	}
	t := Trailer{RawLen: w.raw, Entries: w.entries, BodyCRC: w.crc, ZstdCRC: w.out.crc}
	if _, err := w.out.w.Write(encodeTrailer(t)); err != nil {
		w.err = err
		return Trailer{}, err
	}
	w.err = fmt.Errorf("snapshot: writer closed")
	return t, nil
}

// WriteFile publishes a snapshot atomically as dir/name: it writes a
// temporary file in dir through fill, fsyncs it, renames it into place and
// fsyncs dir (DESIGN I8). On any error the temporary file is removed and
// dir/name is untouched.
//
// hook, if not nil, is called with "written" (temporary file complete and
// fsynced, not yet renamed) and "renamed" (renamed, directory not yet
// fsynced); crash tests kill the process there.
func WriteFile(dir, name string, h Header, fill func(*Writer) error, hook func(step string)) (Trailer, error) {
	return WriteFileSteps(dir, name, h, fill, PublishSteps{Reached: hook})
}

// PublishSteps lets tests watch, and fail, each step of WriteFileSteps.
// Every field may be nil.
type PublishSteps struct {
	// Before runs before each step: "write" (create and fill the temporary
	// file), "fsync" (of that file), "rename" (into place) and "dirsync"
	// (of dir). An error it returns fails that step as a real error would.
	Before func(step string) error
	// Synced is told after each successful fsync: ("fsync", temporary
	// file, its size) and ("dirsync", dir, 0).
	Synced func(step, file string, size int64)
	// Reached is WriteFile's hook: "written" and "renamed".
	Reached func(step string)
	// Room, if set, is asked before the temporary file is created (n = 0)
	// and before each write of n bytes to it (at most about 1 MiB at a
	// time); an error it returns fails the write step, and the temporary
	// file is removed. The engine uses it to keep the log's free space.
	Room func(n int) error
}

// ErrPublishUncertain wraps a failure after the rename (the directory
// fsync): the snapshot is in place but may not survive a power loss, and
// after a failed fsync nothing says what the disk holds.
var ErrPublishUncertain = errors.New("snapshot: renamed into place, but its directory could not be fsynced")

// WriteFileSteps is WriteFile with every step observable (PublishSteps).
// A failure before the rename leaves dir as it was; one after it wraps
// ErrPublishUncertain.
func WriteFileSteps(dir, name string, h Header, fill func(*Writer) error, steps PublishSteps) (Trailer, error) {
	before := func(step string) error {
		if steps.Before == nil {
			return nil
		}
		return steps.Before(step)
	}
	reached := func(step string) {
		if steps.Reached != nil {
			steps.Reached(step)
		}
	}
	if err := before("write"); err != nil {
		return Trailer{}, fmt.Errorf("snapshot: writing %s: %w", name, err)
	}
	if steps.Room != nil {
		if err := steps.Room(0); err != nil {
			return Trailer{}, fmt.Errorf("snapshot: writing %s: %w", name, err)
		}
	}
	tmp, err := os.CreateTemp(dir, name+".tmp-*")
	if err != nil {
		return Trailer{}, err
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	bw := bufio.NewWriterSize(&roomWriter{w: tmp, room: steps.Room}, 1<<20)
	cw := &countWriter{w: bw}
	w, err := NewWriter(cw, h)
	if err != nil {
		return Trailer{}, err
	}
	if err := fill(w); err != nil {
		w.Close()
		return Trailer{}, err
	}
	t, err := w.Close()
	if err != nil {
		return Trailer{}, err
	}
	if err := bw.Flush(); err != nil {
		return Trailer{}, err
	}
	if err := before("fsync"); err != nil {
		return Trailer{}, fmt.Errorf("snapshot: fsync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		return Trailer{}, fmt.Errorf("snapshot: fsync %s: %w", tmp.Name(), err)
	}
	if steps.Synced != nil {
		steps.Synced("fsync", tmp.Name(), cw.n)
	}
	if err := tmp.Close(); err != nil {
		return Trailer{}, err
	}
	reached("written")
	final := filepath.Join(dir, name)
	if err := before("rename"); err != nil {
		return Trailer{}, fmt.Errorf("snapshot: renaming %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return Trailer{}, err
	}
	ok = true
	reached("renamed")
	if err := before("dirsync"); err != nil {
		return Trailer{}, fmt.Errorf("%w: %s: %w", ErrPublishUncertain, dir, err)
	}
	if err := syncDir(dir); err != nil {
		return Trailer{}, fmt.Errorf("%w: %w", ErrPublishUncertain, err)
	}
	if steps.Synced != nil {
		steps.Synced("dirsync", dir, 0)
	}
	return t, nil
}

// roomWriter asks room before each write whether it may take n more bytes.
type roomWriter struct {
	w    io.Writer
	room func(n int) error
}

func (r *roomWriter) Write(p []byte) (int, error) {
	if r.room != nil {
		if err := r.room(len(p)); err != nil {
			return 0, err
		}
	}
	return r.w.Write(p)
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("snapshot: fsync of directory %s: %w", dir, err)
	}
	return nil
}
