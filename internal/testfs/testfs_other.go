//go:build !linux

package testfs

import "testing"

// Small skips: tests that fill a disk mount a Linux tmpfs of their own.
func Small(t testing.TB, size int64) string {
	t.Skip("needs a small tmpfs to fill, which only Linux mounts here")
	return ""
}

// Free is never reached: Small skipped the test.
func Free(t testing.TB, dir string) int64 { t.Fatal("testfs: not on Linux"); return 0 }

// Fill is never reached: Small skipped the test.
func Fill(t testing.TB, dir string, leave int64) string { t.Fatal("testfs: not on Linux"); return "" }
