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
}

// indexKey orders (namespace, key) pairs by namespace, then key: the NUL
// sorts below every byte a namespace can hold, and namespaces never
// contain it (the HTTP layer allows letters, digits and _ - . : only).
func indexKey(ns, key string) string { return ns + "\x00" + key }

func splitIndexKey(k string) (ns, key string) {
	ns, key, _ = strings.Cut(k, "\x00")
	return ns, key
}

// list puts ns in names or out of it, by whether it has state now
// (shard.sweep calls it for every namespace an input touched).
func (v *viewIndex) list(ns *namespace, has bool) {
	if v == nil || has == ns.listed {
		return
	}
	ns.listed = has
	if has {
		v.names.Insert(ns.name)
	} else {
		v.names.Delete(ns.name)
	}
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
