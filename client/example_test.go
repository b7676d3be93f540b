package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/latchkv/latch/client"
)

// The README's "Using latch from Go" section is this example's body; keep
// them identical (TestReadmeGoSnippet checks).
func Example() {
	ctx := context.Background()
	c, err := client.New(exampleURL, client.WithNamespace("app"))
	if err != nil {
		log.Fatal(err)
	}

	// Take the lock "deploy" for 30 s, waiting up to a minute, and keep
	// extending it until Unlock. l.Handle() is a fencing token.
	l, err := c.Lock(ctx, "deploy", client.LockOptions{TTL: 30 * time.Second, Wait: time.Minute, KeepAlive: true})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("holding deploy:", l.Handle() > 0)

	// Work under the lock; stop if it is lost.
	select {
	case <-l.Done():
		log.Fatal("lost the lock: ", l.Err())
	default:
	}
	if err := c.Set(ctx, "feature_x", map[string]bool{"enabled": true}); err != nil {
		log.Fatal(err)
	}
	n, err := c.Incr(ctx, "deploys")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("deploys:", n)
	if err := l.Unlock(ctx); err != nil {
		log.Fatal(err)
	}

	kv, err := c.Get(ctx, "feature_x")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(kv.Value))
	// Output:
	// holding deploy: true
	// deploys: 1
	// {"enabled":true}
}

func ExampleClient_Lock() {
	ctx := context.Background()
	c, _ := client.New(exampleURL, client.WithNamespace("example-lock"))

	l, err := c.Lock(ctx, "job", client.LockOptions{TTL: 10 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	// A second taker with no Wait fails at once.
	_, err = c.Lock(ctx, "job", client.LockOptions{TTL: 10 * time.Second})
	fmt.Println(errors.Is(err, client.ErrLockTimeout))

	fmt.Println(l.Unlock(ctx))
	// Output:
	// true
	// <nil>
}

func ExampleClient_CompareAndSet() {
	ctx := context.Background()
	c, _ := client.New(exampleURL, client.WithNamespace("example-cas"))

	c.Add(ctx, "stock", 10) //nolint:errcheck
	fmt.Println(c.CompareAndSet(ctx, "stock", 10, 9))
	err := c.CompareAndSet(ctx, "stock", 10, 8)
	fmt.Println(errors.Is(err, client.ErrPreconditionFailed))
	v, _ := c.Counter(ctx, "stock")
	fmt.Println(v)
	// Output:
	// <nil>
	// true
	// 9
}

func ExampleClient_NextSeq() {
	ctx := context.Background()
	c, _ := client.New(exampleURL, client.WithNamespace("example-seq"))

	first, last, _ := c.NextSeq(ctx, "order_ids", 5)
	fmt.Println(first, last)
	first, _, _ = c.NextSeq(ctx, "order_ids", 1)
	fmt.Println(first)
	// Output:
	// 1 5
	// 6
}

func ExampleClient_Changes() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, _ := client.New(exampleURL, client.WithNamespace("example-watch"))

	w := c.Changes(ctx, "config", 0) // version 0: from "does not exist"
	c.Set(ctx, "config", "v1")       //nolint:errcheck
	kv := <-w.C()
	fmt.Println(string(kv.Value), kv.Version)
	c.Set(ctx, "config", "v2") //nolint:errcheck
	kv = <-w.C()
	fmt.Println(string(kv.Value), kv.Version)
	// Output:
	// "v1" 1
	// "v2" 2
}

func ExampleClient_Do() {
	ctx := context.Background()
	c, _ := client.New(exampleURL)

	// One atomic request: write a key, bump a counter, read the key back.
	one := int64(1)
	r, err := c.Do(ctx, "example-do", client.Request{
		KVSet:  []client.KVSet{{Key: "a", Value: []byte(`{"x": 1}`)}},
		Atomic: []client.AtomicOp{{Key: "writes", Add: &one}},
		KVGet:  []string{"a"},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(r.KV[0].Value), r.KV[0].Version, r.Atomic[0].Value)
	// Output:
	// {"x": 1} 1 1
}
