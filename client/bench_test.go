package client_test

import (
	"context"
	"testing"

	"github.com/latchkv/latch/client"
)

// The cost of the automatic idempotency id on a write: the same Set with
// retries on (an id per call) and off (no id). 64 callers in parallel, so
// group commit shares fsyncs as it does in production.
func BenchmarkSet(b *testing.B) {
	for _, bc := range []struct {
		name  string
		retry client.Retry
	}{{"auto-id", client.DefaultRetry}, {"no-id", client.Retry{MaxAttempts: 1}}} {
		b.Run(bc.name, func(b *testing.B) {
			c, err := client.New(exampleURL, client.WithNamespace("bench-"+bc.name), client.WithRetry(bc.retry))
			if err != nil {
				b.Fatal(err)
			}
			b.SetParallelism(32)
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					if err := c.Set(ctx, "k", 1); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
