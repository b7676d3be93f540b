package engine

import (
	"strings"

	"github.com/tidwall/btree"
)

// viewIndex keeps, per shard, what the admin views page through in order:
// the namespaces with state, and the lock keys and watched keys of all of
// them. Without it a view would have to visit and sort every namespace of
// the shard on the loop, which with hundreds of thousands of namespaces
// stalls every request of the shard for as long as the view takes. With
// it a page starts at its cursor and stops after limit+1 entries. Only the
// loop touches it.
type viewIndex struct {
	names   btree.Set[string] // namespaces with state (hasState)
	locks   btree.Set[string] // indexKey(ns, key) of every entry of a namespace's locks map
	watches btree.Set[string] // indexKey(ns, key) of every key with a watch queue
	// touched are the namespaces the current input may have given state
	// or taken it from; syncNames settles their place in names after it.
	touched []*namespace
}

// indexKey orders (namespace, key) pairs by namespace, then key: the NUL
// sorts below every byte a namespace can hold, and namespaces never
// contain it (the HTTP layer allows letters, digits and _ - . : only).
func indexKey(ns, key string) string { return ns + "\x00" + key }

func splitIndexKey(k string) (ns, key string) {
	ns, key, _ = strings.Cut(k, "\x00")
	return ns, key
}

// touch notes that ns may have gained or lost state in this input.
func (v *viewIndex) touch(ns *namespace) {
	if v != nil {
		v.touched = append(v.touched, ns)
	}
}

// syncNames puts each touched namespace in names or out of it, by whether
// it has state now. The loop calls it after every input.
func (v *viewIndex) syncNames() {
	for i, ns := range v.touched {
		if has := ns.hasState(); has != ns.listed {
			ns.listed = has
			if has {
				v.names.Insert(ns.name)
			} else {
				v.names.Delete(ns.name)
			}
		}
		v.touched[i] = nil
	}
	v.touched = v.touched[:0]
}

// addLock and dropLock take the lock's own indexKey, made once when the
// lock entry is, since locks come and go with every acquire and release.
func (v *viewIndex) addLock(l *lockState) {
	if v != nil {
		v.locks.Insert(l.viewKey)
	}
}

func (v *viewIndex) dropLock(l *lockState) {
	if v != nil {
		v.locks.Delete(l.viewKey)
	}
}

func (v *viewIndex) addWatch(ns, key string) {
	if v != nil {
		v.watches.Insert(indexKey(ns, key))
	}
}

func (v *viewIndex) dropWatch(ns, key string) {
	if v != nil {
		v.watches.Delete(indexKey(ns, key))
	}
}

// ascendAfter calls f for the entries of set after after, in order, until
// f returns false. Visits are counted in visits, which tests read to hold
// a view to its page's worth of work on the loop.
func ascendAfter(set *btree.Set[string], after string, visits *int64, f func(string) bool) {
	set.Ascend(after, func(k string) bool {
		if k == after {
			return true
		}
		*visits++
		return f(k)
	})
}

// hasState tells a namespace worth listing from one that only a read or a
// finished wait ever touched (the loop creates namespaces on first use).
func (ns *namespace) hasState() bool {
	return ns.rev != 0 || ns.kv.Len() > 0 || ns.counters.Len() > 0 || ns.seqs.Len() > 0 ||
		len(ns.locks) > 0 || len(ns.watchers) > 0 || ns.idem.Len() > 0
}

// lockOf and watchQueueOf look an index entry up; nil if it is gone.
func (s *shard) lockOf(ns, key string) *lockState {
	if space := s.nss[ns]; space != nil {
		return space.locks[key]
	}
	return nil
}

func (s *shard) watchQueueOf(ns, key string) *waitQueue[*watchOp] {
	if space := s.nss[ns]; space != nil {
		return space.watchers[key]
	}
	return nil
}
