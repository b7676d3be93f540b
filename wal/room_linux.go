package wal

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// reserveRoom allocates path's blocks up to size without changing its
// length (FALLOC_FL_KEEP_SIZE), so appends up to size need no free space:
// recovery and tidwall/wal see the file exactly as written. It returns
// errors.ErrUnsupported where the file system cannot do it.
func reserveRoom(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	for {
		err = unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, 0, size)
		if err != unix.EINTR {
			break
		}
	}
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
		return errors.ErrUnsupported
	}
	return err
}

// FreeBytes is the space left for an unprivileged writer on the file
// system holding dir.
func FreeBytes(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
