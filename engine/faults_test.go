package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// TestFailStop injects a failure at each persistence step and checks DESIGN
// I2: the failing request and every later one get ErrStorageFailed, OnFatal
// runs once, nothing that got a success reply is lost after reopening.
func TestFailStop(t *testing.T) {
	for _, step := range []string{"write", "fsync"} {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			var calls, fatals atomic.Int64
			const failAt = 20
			e, err := Open(Config{Dir: dir, Shards: 2,
				FaultHook: func(s string) error {
					if s == step && calls.Add(1) == failAt {
						return fmt.Errorf("injected %s failure", s)
					}
					return nil
				},
				OnFatal: func(error) { fatals.Add(1) },
			})
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			acked := map[string]bool{}
			var failed atomic.Int64
			var wg sync.WaitGroup
			for g := 0; g < 8; g++ {
				wg.Add(1)
				go func(g int) {
					defer wg.Done()
					for i := 0; i < 40; i++ {
						key := fmt.Sprintf("g%d-%d", g, i)
						_, err := e.Do(context.Background(), "ns", &Request{KVSet: []KVSet{{Key: key, Value: []byte("1")}}})
						switch {
						case err == nil:
							mu.Lock()
							acked[key] = true
							mu.Unlock()
						case errors.Is(err, ErrStorageFailed):
							failed.Add(1)
						default:
							t.Errorf("unexpected error: %v", err)
						}
					}
				}(g)
			}
			wg.Wait()
			if failed.Load() == 0 || fatals.Load() != 1 {
				t.Fatalf("failures %d, OnFatal calls %d; want >0 and 1", failed.Load(), fatals.Load())
			}
			// After the failure nothing more is acknowledged, reads included.
			if _, err := e.Do(context.Background(), "ns", &Request{KVGet: []string{"g0-0"}}); !errors.Is(err, ErrStorageFailed) {
				t.Fatalf("request after the failure: %v, want ErrStorageFailed", err)
			}
			if err := e.Close(); err == nil {
				t.Fatal("Close after a storage failure returned nil")
			}
			e2 := openTest(t, dir, 2)
			for key := range acked {
				r, err := e2.Do(context.Background(), "ns", &Request{KVGet: []string{key}})
				if err != nil || r.KV[0].Version == 0 {
					t.Fatalf("acknowledged key %s lost after the %s failure (err %v)", key, step, err)
				}
			}
			t.Logf("%s: %d acknowledged, %d failed", step, len(acked), failed.Load())
		})
	}
}
