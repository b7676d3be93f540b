package engine

import (
	"context"
	"testing"
	"time"
)

func TestSmokeReopen(t *testing.T) {
	dir := t.TempDir()
	e, err := Open(Config{Dir: dir, Shards: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r, err := e.Do(ctx, "a", &Request{LockID: "L", LockDurMs: 60000, KVSet: []KVSet{{Key: "k", Value: []byte(`"v"`)}}, Atomic: []AtomicOp{{Key: "c", Add: ptr(int64(5))}}, Seq: []SeqOp{{Key: "s", Count: 3}}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Lock == 0 || r.Atomic[0].Value != 5 || r.Seq[0].Last != 3 {
		t.Fatalf("%+v", r)
	}
	_, err = e.Do(ctx, "a", &Request{LockID: "L", LockDurMs: 1000, LockWaitMs: 50})
	if err == nil {
		t.Fatal("want timeout")
	}
	w, err := e.Watch(ctx, "a", "k", 0, time.Second)
	if err != nil || w.Version != 1 {
		t.Fatalf("%v %+v", err, w)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e, err = Open(Config{Dir: dir, Shards: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, err := e.Do(ctx, "a", &Request{LockID: "L", LockDurMs: 1000}); err == nil {
		t.Fatal("lock should still be held after reopen")
	}
	r2, err := e.Do(ctx, "a", &Request{LockID: "L2", LockDurMs: 1000, KVGet: []string{"k"}, Seq: []SeqOp{{Key: "s", Count: 1}}})
	if err != nil || r2.Lock <= r.Lock || string(r2.KV[0].Value) != `"v"` || r2.Seq[0].First != 4 {
		t.Fatalf("%v %+v", err, r2)
	}
}

func ptr[T any](v T) *T { return &v }
