package loadtest

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// watchTimeout is how long a watcher's long poll waits; a round waits
// watchTimeout plus watchSlack for every watcher's reply.
const (
	watchTimeout = 20 * time.Second
	watchSlack   = 10 * time.Second
)

// watchReaction: perKey watchers long-poll each of keys keys; in rounds,
// once every watcher has sent its poll (and a short settle for them to
// reach the server), writers change every key and each watcher's reply
// is timed from the moment its key's write was sent. Reaction latency is
// that time; changes observed/sec is replies per second of the rounds'
// windows (first write sent to last reply). Checks: every watcher saw
// every change (its reply's version is above the one it held).
//
// Scale multiplies the watchers of the 1-key rows and the keys of the
// many-key row (watchers per key stay as named). Clients is the number
// of concurrent writers (at most one per key).
func watchReaction(keys, perKey int) Scenario {
	title := fmt.Sprintf("WatchReaction %d key %d %s", keys, perKey, plural(perKey, "watcher"))
	if keys > 1 {
		title = fmt.Sprintf("WatchReaction %d keys %d %s per key", keys, perKey, plural(perKey, "watcher"))
	}
	return Scenario{
		Name:           fmt.Sprintf("watch-%dx%d", keys, perKey),
		Title:          title,
		DefaultClients: 400,
		Needs:          []Feature{FeatureKV, FeatureWatch},
		unit:           "changes observed",
		run: func(ctx context.Context, r *runner) *Result {
			nKeys, nWatch := keys, perKey
			if keys == 1 {
				nWatch = r.scaled(perKey)
			} else {
				nKeys = r.scaled(keys)
			}
			res := runWatch(ctx, r, nKeys, nWatch)
			if nKeys != keys || nWatch != perKey {
				if nKeys == 1 {
					res.Title = fmt.Sprintf("WatchReaction 1 key %d %s", nWatch, plural(nWatch, "watcher"))
				} else {
					res.Title = fmt.Sprintf("WatchReaction %d keys %d %s per key", nKeys, nWatch, plural(nWatch, "watcher"))
				}
			}
			return res
		},
	}
}

type watchReply struct {
	i         int
	held, got uint64
	at        time.Time
	err       error
}

// barrier lets the coordinator release every watcher into the next round.
type barrier struct {
	mu sync.Mutex
	ch chan struct{}
}

func (b *barrier) current() chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ch
}

func (b *barrier) release() {
	b.mu.Lock()
	close(b.ch)
	b.ch = make(chan struct{})
	b.mu.Unlock()
}

func runWatch(ctx context.Context, r *runner, nKeys, nWatch int) *Result {
	total := nKeys * nWatch
	ns := r.namespace(0)
	keyNames := names("w", nKeys)
	writers := make([]*worker, max(1, min(r.clients, nKeys)))
	for i := range writers {
		writers[i] = newWorker(r, i)
	}
	value := letters(writers[0].rng, 64)
	sendAt := make([]time.Time, nKeys)
	writeOK := make([]bool, nKeys)
	// writeAll writes every key once, concurrently, noting when each
	// write was sent.
	writeAll := func() {
		var wg sync.WaitGroup
		for j, w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := j; k < nKeys; k += len(writers) {
					sendAt[k] = time.Now()
					err := w.conn.SetKV(ctx, ns, keyNames[k], value)
					writeOK[k] = w.count(ctx, err)
				}
			}()
		}
		wg.Wait()
	}

	res := newResult(r, total, 0)
	watchErrs := map[string]int64{}
	var watchRequests int64
	defer func() {
		for _, w := range writers {
			res.addWorker(w)
		}
		res.Requests += watchRequests
		for k, v := range watchErrs {
			res.Errors[k] += v
		}
	}()

	writeAll() // every key exists before anyone watches
	if ctx.Err() != nil {
		return res
	}

	wctx, cancel := context.WithCancel(ctx)
	tokens := make(chan struct{}, total)
	replies := make(chan watchReply, total)
	bar := &barrier{ch: make(chan struct{})}
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for i := 0; i < total; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn := r.t.Conn()
			key := keyNames[i%nKeys]
			var held uint64 // 0: the first poll returns at once with the current version
			for {
				tokens <- struct{}{}
				v, err := conn.Watch(wctx, ns, key, held, watchTimeout)
				if wctx.Err() != nil {
					return
				}
				next := bar.current()
				replies <- watchReply{i: i, held: held, got: v, at: time.Now(), err: err}
				if err == nil {
					held = v
				}
				select {
				case <-next:
				case <-wctx.Done():
					return
				}
			}
		}()
	}

	// waitTokens waits until every watcher is about to send its poll,
	// or gives up after d (false).
	waitTokens := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		for n := 0; n < total; n++ {
			select {
			case <-tokens:
			case <-t.C:
				res.Violations = append(res.Violations, fmt.Sprintf("only %d of %d watchers got to send a poll within %s", n, total, d))
				return false
			case <-ctx.Done():
				return false
			}
		}
		return true
	}
	// collect takes one reply from every watcher; timed rounds check
	// and time them.
	var roundTimes Histogram
	collect := func(round int, timed bool) bool {
		t := time.NewTimer(watchTimeout + watchSlack)
		defer t.Stop()
		var first, last time.Time
		for n := 0; n < total; n++ {
			var rep watchReply
			select {
			case rep = <-replies:
			case <-t.C:
				res.Violations = append(res.Violations, fmt.Sprintf("round %d: %d of %d watchers did not reply within %s", round, total-n, total, watchTimeout+watchSlack))
				return false
			case <-ctx.Done():
				return false
			}
			watchRequests++
			k := rep.i % nKeys
			if rep.err != nil {
				watchErrs[errorClass(rep.err)]++
				r.liveErrs.Add(1)
				continue
			}
			if !timed {
				if rep.got == 0 {
					res.Violations = append(res.Violations, fmt.Sprintf("watcher %d: %s has version 0 after it was written", rep.i, keyNames[k]))
				}
				continue
			}
			switch {
			case !writeOK[k]:
				// The write failed (an error counted above): no change to see.
			case rep.got <= rep.held:
				if len(res.Violations) < 20 {
					res.Violations = append(res.Violations, fmt.Sprintf("round %d: watcher %d of %s did not see the change: version %d, it held %d",
						round, rep.i, keyNames[k], rep.got, rep.held))
				}
			case rep.at.Before(sendAt[k]):
				if len(res.Violations) < 20 {
					res.Violations = append(res.Violations, fmt.Sprintf("round %d: watcher %d of %s saw version %d before the write was sent",
						round, rep.i, keyNames[k], rep.got))
				}
			default:
				res.Ops++
				r.liveOps.Add(1)
				res.hist.Record(rep.at.Sub(sendAt[k]))
				if first.IsZero() || sendAt[k].Before(first) {
					first = sendAt[k]
				}
				if rep.at.After(last) {
					last = rep.at
				}
			}
		}
		if timed && !first.IsZero() {
			res.Elapsed += last.Sub(first)
			roundTimes.Record(last.Sub(first))
		}
		return true
	}

	// Warm-up: every watcher polls with version 0 and returns at once,
	// which opens its connection and learns the current version.
	if !waitTokens(watchTimeout+watchSlack) || !collect(-1, false) {
		return res
	}
	settle := 20*time.Millisecond + time.Duration(total)*20*time.Microsecond + r.o.Latency/2
	start := time.Now()
	rounds := 0
	for ctx.Err() == nil {
		bar.release()
		if !waitTokens(watchTimeout + watchSlack) {
			break
		}
		time.Sleep(settle) // let the polls reach the server and park
		writeAll()
		if !collect(rounds, true) {
			break
		}
		rounds++
		if len(res.Violations) > 0 {
			break // the checks failed: more rounds would only repeat it
		}
		if r.o.Ops > 0 && res.Ops >= r.o.Ops {
			break
		}
		if r.o.Duration > 0 && time.Since(start) >= r.o.Duration {
			break
		}
	}
	cancel()
	res.Extra = map[string]float64{
		"rounds": float64(rounds), "keys": float64(nKeys), "watchers": float64(total),
		"round_ms_avg": float64(roundTimes.Mean()) / 1e6, "round_ms_max": float64(roundTimes.Max()) / 1e6,
	}
	res.Note = fmt.Sprintf("%d %s, %d %s, all replies of a round within avg %s max %s",
		rounds, plural(rounds, "round"), total, plural(total, "watcher"), roundDur(roundTimes.Mean()), roundDur(roundTimes.Max()))
	return res
}
