// Package testfs gives tests a small file system of their own, so that they
// can fill it and see what a full disk does. Only tests import it.
package testfs

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// Small mounts a tmpfs of size bytes on a fresh temporary directory and
// unmounts it when the test ends. Mounting needs root (or CAP_SYS_ADMIN);
// where it is refused the test is skipped with a message saying so, since
// only a file system of its own can be filled without harming the machine.
func Small(t testing.TB, size int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+strconv.FormatInt(size, 10)); err != nil {
		t.Skipf("needs a small tmpfs to fill, and mounting one was refused (%v): run as root or with CAP_SYS_ADMIN", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			// Something still holds a file open; detach so the
			// temporary directory can go, and say so.
			t.Logf("unmounting %s: %v; detaching it", dir, err)
			if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
				t.Errorf("detaching %s: %v", dir, err)
			}
		}
	})
	return dir
}

// Free is the space in bytes that an unprivileged writer can still use on
// the file system holding dir.
func Free(t testing.TB, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// Fill allocates a file in dir (name "filler", or "filler2", ... if taken)
// so that at most leave bytes stay free, rounded to the file system's
// block. It returns the file's path; removing it gives the space back.
func Fill(t testing.TB, dir string, leave int64) string {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	block := int64(st.Bsize)
	take := Free(t, dir) - leave
	take = (take + block - 1) / block * block
	path := filepath.Join(dir, "filler")
	for n := 2; ; n++ {
		if _, err := os.Lstat(path); os.IsNotExist(err) {
			break
		}
		path = filepath.Join(dir, "filler"+strconv.Itoa(n))
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if take > 0 {
		if err := syscall.Fallocate(int(f.Fd()), 0, 0, take); err != nil {
			t.Fatalf("filling %s with %d bytes: %v", dir, take, err)
		}
	}
	if got := Free(t, dir); got > leave {
		t.Fatalf("filled %s, yet %d bytes are free, want at most %d", dir, got, leave)
	}
	return path
}
