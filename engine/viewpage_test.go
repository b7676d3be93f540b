package engine

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"
)

// loopVisits sums, on each loop, the index entries admin views visited
// there so far.
func loopVisits(t *testing.T, e *Engine) int64 {
	t.Helper()
	var sum int64
	for _, s := range e.shards {
		n, err := onLoop(context.Background(), s, func() int64 { return s.viewVisits })
		if err != nil {
			t.Fatal(err)
		}
		sum += n
	}
	return sum
}

// fillNamespaces makes n namespaces ns0000.. each with one key and one
// held lock, plus n namespaces that were only read (no state), using a
// few goroutines so the writes share fsyncs.
func fillNamespaces(t *testing.T, e *Engine, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += 16 {
				ns := fmt.Sprintf("ns%04d", i)
				if _, err := e.Do(context.Background(), ns, &Request{LockID: "L", LockDurMs: 600_000, KVSet: []KVSet{{Key: "k", Value: []byte("1")}}}); err != nil {
					errs <- err
					return
				}
				if _, err := e.Do(context.Background(), fmt.Sprintf("read%04d", i), &Request{KVGet: []string{"k"}}); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestViewPagesStayOnTheirPage: with 3,000 namespaces over 4 shards, a
// page of 7 namespaces or locks visits at most 4 * (7+1) entries on the
// loops, whatever the total, and walking the pages by their cursors
// yields every namespace and lock exactly once, in order. Namespaces that
// were only read are never listed. (Before paging, one view visited every
// namespace of every shard on its loop, then sorted them all.)
func TestViewPagesStayOnTheirPage(t *testing.T) {
	const n, limit, shards = 3000, 7, 4
	e := openTest(t, t.TempDir(), shards)
	ctx := context.Background()
	fillNamespaces(t, e, n)

	var names []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > n {
			t.Fatal("paging namespaces does not end")
		}
		before := loopVisits(t, e)
		p, err := e.NamespacesPage(ctx, after, limit)
		if err != nil {
			t.Fatal(err)
		}
		if v := loopVisits(t, e) - before; v > shards*(limit+1) {
			t.Fatalf("a page of %d namespaces visited %d index entries on the loops; want at most %d", limit, v, shards*(limit+1))
		}
		if len(p.Namespaces) > limit || (p.More && len(p.Namespaces) != limit) {
			t.Fatalf("page of %d namespaces (limit %d), More %v", len(p.Namespaces), limit, p.More)
		}
		for _, info := range p.Namespaces {
			if info.Keys != 1 || info.Locks != 1 || info.Revision != 1 {
				t.Fatalf("namespace info %+v", info)
			}
			names = append(names, info.Name)
		}
		if !p.More {
			break
		}
		after = p.Namespaces[len(p.Namespaces)-1].Name
	}
	if len(names) != n || !sort.StringsAreSorted(names) || names[0] != "ns0000" || names[n-1] != fmt.Sprintf("ns%04d", n-1) {
		t.Fatalf("walked %d namespaces (want %d, sorted, ns0000 first): %v ... ", len(names), n, names[:min(5, len(names))])
	}
	for i := 1; i < len(names); i++ {
		if names[i] == names[i-1] {
			t.Fatalf("%s listed twice", names[i])
		}
	}

	var locks []Cursor
	var cur Cursor
	for pages := 0; ; pages++ {
		if pages > n {
			t.Fatal("paging locks does not end")
		}
		before := loopVisits(t, e)
		p, err := e.LocksPage(ctx, "", cur, limit)
		if err != nil {
			t.Fatal(err)
		}
		if v := loopVisits(t, e) - before; v > shards*(limit+1) {
			t.Fatalf("a page of %d locks visited %d index entries on the loops; want at most %d", limit, v, shards*(limit+1))
		}
		for _, l := range p.Locks {
			locks = append(locks, Cursor{l.Namespace, l.Key})
		}
		if !p.More {
			break
		}
		cur = locks[len(locks)-1]
	}
	if len(locks) != n || locks[0] != (Cursor{"ns0000", "L"}) || locks[n-1] != (Cursor{fmt.Sprintf("ns%04d", n-1), "L"}) {
		t.Fatalf("walked %d locks, want %d from ns0000/L", len(locks), n)
	}

	st, err := e.Overview(ctx)
	if err != nil || st.Namespaces != n || st.LocksHeld != n {
		t.Fatalf("Overview %+v %v; want %d namespaces and locks", st, err, n)
	}
	if _, err := e.NamespacesPage(ctx, "", MaxPageLimit+1); err == nil {
		t.Fatal("a limit over MaxPageLimit was accepted")
	}
}

// TestViewIndexFollowsState: a namespace leaves the namespace view when
// its last state goes (its only lock released, its only watch done), a
// restart lists the same, and
// the lock and watch views page within one namespace from a cursor.
func TestViewIndexFollowsState(t *testing.T) {
	dir := t.TempDir()
	e := openTest(t, dir, 2)
	ctx := context.Background()
	h := doOK(t, e, "only-lock", &Request{LockID: "L", LockDurMs: 60_000}).Lock
	for _, k := range []string{"a", "b", "c"} {
		doOK(t, e, "many", &Request{LockID: k, LockDurMs: 60_000})
	}
	wctx, cancel := context.WithCancel(ctx)
	watched := make(chan error, 1)
	go func() { _, err := e.Watch(wctx, "only-watch", "w", 0, time.Minute); watched <- err }()
	waitFor(t, "the watch parked", func() bool { return e.KeyWatchers("only-watch", "w") == 1 })

	names := func() []string {
		nss, err := e.Namespaces(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, n := range nss {
			out = append(out, n.Name)
		}
		return out
	}
	if got := fmt.Sprint(names()); got != "[many only-lock only-watch]" {
		t.Fatalf("namespaces %s", got)
	}
	p, err := e.LocksPage(ctx, "many", Cursor{"many", "a"}, 1)
	if err != nil || len(p.Locks) != 1 || p.Locks[0].Key != "b" || !p.More {
		t.Fatalf("locks of many after a, one per page: %+v %v", p, err)
	}
	p, err = e.LocksPage(ctx, "many", Cursor{"a-namespace-before", "z"}, 10)
	if err != nil || len(p.Locks) != 3 || p.More {
		t.Fatalf("locks of many from a cursor before it: %+v %v", p, err)
	}
	if w, err := e.WatchesPage(ctx, "", Cursor{}, 10); err != nil || len(w.Watches) != 1 || w.Watches[0] != (WatchInfo{"only-watch", "w", 1}) {
		t.Fatalf("watches %+v %v", w, err)
	}

	doOK(t, e, "only-lock", &Request{UnlockID: "L", Unlock: h})
	cancel()
	<-watched
	waitFor(t, "the watch gone from the views", func() bool {
		w, err := e.WatchesPage(ctx, "", Cursor{}, 10)
		return err == nil && len(w.Watches) == 0 && e.KeyWatchers("only-watch", "w") == 0
	})
	if got := fmt.Sprint(names()); got != "[many]" {
		t.Fatalf("namespaces after their state went: %s", got)
	}
	if st, _ := e.Overview(ctx); st.Namespaces != 1 {
		t.Fatalf("Overview counts %d namespaces, want 1", st.Namespaces)
	}

	// Replay rebuilds the index: the same namespace and locks after a restart.
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e = openTest(t, dir, 2)
	if got := fmt.Sprint(names()); got != "[many]" {
		t.Fatalf("namespaces after a restart: %s", got)
	}
	if l, err := e.Locks(ctx, ""); err != nil || len(l) != 3 {
		t.Fatalf("locks after a restart: %+v %v", l, err)
	}
}
