//go:build !linux

package wal

import "errors"

// reserveRoom needs fallocate, which only Linux offers this way.
func reserveRoom(string, int64) error { return errors.ErrUnsupported }

// FreeBytes is not known here; callers skip checks that need it.
func FreeBytes(string) (int64, error) { return 0, errors.ErrUnsupported }
