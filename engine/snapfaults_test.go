package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
)

// TestSnapshotFaultSteps fails each step of a snapshot's publish and of the
// truncation after it. Before the rename the failure is reported and the
// engine keeps serving (the next snapshot succeeds); after it the engine
// stops like a failed log (ErrStorageFailed, OnFatal once). Either way a
// reopen has every acknowledged write. docs/OPERATIONS.md gives the why.
func TestSnapshotFaultSteps(t *testing.T) {
	for _, tc := range []struct {
		step  string
		fatal bool
	}{
		{"snapshot-write", false}, {"snapshot-fsync", false}, {"snapshot-rename", false},
		{"snapshot-dirsync", true}, {"truncate", true},
	} {
		t.Run(tc.step, func(t *testing.T) {
			dir := t.TempDir()
			var armed atomic.Bool
			var fatals atomic.Int64
			e, err := Open(Config{Dir: dir, Shards: 2, SegmentSize: 4096, SnapshotEveryRecords: -1, SnapshotKeep: 1,
				FaultHook: func(s string) error {
					if s == tc.step && armed.CompareAndSwap(true, false) {
						return fmt.Errorf("injected %s failure", s)
					}
					return nil
				},
				OnFatal: func(error) { fatals.Add(1) },
			})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			n := 0
			write := func(count int) error {
				for i := 0; i < count; i++ {
					req := &Request{}
					for j := 0; j < 5; j++ {
						key := fmt.Sprintf("k%d", n+j)
						req.KVSet = append(req.KVSet, KVSet{Key: key, Value: []byte(key)})
					}
					if _, err := e.Do(context.Background(), "ns", req); err != nil {
						return err
					}
					n += 5
				}
				return nil
			}
			// Enough for several segments and a first snapshot, so that
			// the second one has an old snapshot and segments to remove.
			if err := write(60); err != nil {
				t.Fatal(err)
			}
			if _, err := e.Snapshot(); err != nil {
				t.Fatal(err)
			}
			if err := write(60); err != nil {
				t.Fatal(err)
			}
			armed.Store(true)
			_, err = e.Snapshot()
			if err == nil || armed.Load() {
				t.Fatalf("Snapshot with a failing %s: err %v, fault used %v", tc.step, err, !armed.Load())
			}
			tmps, _ := filepath.Glob(filepath.Join(dir, "snap", "*.tmp-*"))
			if len(tmps) > 0 {
				t.Errorf("temporary files left after the failure: %v", tmps)
			}
			werr := write(1)
			if tc.fatal {
				if !errors.Is(err, ErrStorageFailed) || fatals.Load() != 1 {
					t.Errorf("err %v, OnFatal %d times; want ErrStorageFailed and once", err, fatals.Load())
				}
				if !errors.Is(werr, ErrStorageFailed) {
					t.Errorf("a write after the failure: %v, want ErrStorageFailed", werr)
				}
			} else {
				if errors.Is(err, ErrStorageFailed) || fatals.Load() != 0 || werr != nil {
					t.Errorf("err %v (OnFatal %d times), then a write got %v; want a reported failure and service as usual", err, fatals.Load(), werr)
				}
				if _, err := e.Snapshot(); err != nil {
					t.Errorf("the next snapshot: %v", err)
				}
			}
			acked := n
			e.Close()
			e2 := openTest(t, dir, 2)
			e2.Close()
			st := dumpState(e2)
			for i := 0; i < acked; i++ {
				if _, ok := st.kv["ns"][fmt.Sprintf("k%d", i)]; !ok {
					t.Fatalf("k%d, acknowledged, is missing after reopening", i)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "snap")); err != nil {
				t.Error(err)
			}
		})
	}
}
