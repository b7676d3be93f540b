package main

// The sequential specification the linearizability test checks histories
// against (see linear_test.go). One porcupine model covers three kinds of
// object, each partitioned by namespace and key so porcupine checks every
// object on its own:
//
//   - KV register: set (with a KVGet of the same key in the request, so the
//     reply carries the version written), delete, get. Versions come from
//     the namespace revision, so per key they only have to increase: a
//     set's version is above every version the key had before, and a get
//     returns exactly the value and version of the last set linearized
//     before it.
//   - Counter: add (returns the new value), read, and Set with IfEq
//     (success, or a definite 409 precondition_failed).
//   - Lock: acquire with a duration far longer than any test (so expiry
//     never happens and the model needs no clock); release by handle (ok,
//     or a definite 409 lock_lost). Handles strictly increase per key (they
//     do globally, which implies it). 409 lock_timeout with LockWait 0
//     means "someone held it", and so does one after a LockWait above 0:
//     the wait starts only once the loop parked the request behind a
//     holder, and the timeout reply waits for that holder's grant to be
//     durable. (Before that fix, this check found free locks timing out
//     and timeouts behind grants a crash undid.)
//
// An operation whose outcome is unknown (no reply, a timeout, a 5xx) has
// Output.Unknown set and returns at the end of the history: porcupine may
// linearize it anywhere after its call, where it takes effect, or after
// every other operation, where its effect is never observed. Step therefore
// accepts any output for it and applies the effect it would have had.

import (
	"fmt"
	"sort"

	"github.com/anishathalye/porcupine"
)

// linKind is the operation a history entry performed.
type linKind uint8

const (
	linKVSet linKind = iota
	linKVDelete
	linKVGet
	linCtrAdd
	linCtrRead
	linCtrCAS
	linLockAcquire
	linLockRelease
)

var linKindNames = [...]string{"set", "delete", "get", "add", "read", "cas", "acquire", "release"}

func (k linKind) String() string { return linKindNames[k] }

// linInput is what a client asked for.
type linInput struct {
	Kind    linKind
	NS, Key string
	Value   string // linKVSet: the (unique) string value written
	Delta   int64  // linCtrAdd
	Set     int64  // linCtrCAS
	IfEq    int64  // linCtrCAS
	Handle  uint64 // linLockRelease
	WaitMs  int64  // linLockAcquire: LockWaitMs
	// StrictWait: a lock_timeout after a LockWait above 0 means the lock
	// was held. Always set; false only in the checker's own tests.
	StrictWait bool
}

// linOutput is what the client was told.
type linOutput struct {
	Unknown bool   // no definite reply: the op may or may not have applied
	Code    string // a definite error code (409), "" for success
	Value   string // KV value; "" is null (missing or deleted)
	Version uint64 // KV version
	Counter int64  // counter value after the op
	Handle  uint64 // lock handle granted
	Why     string // for an unknown outcome: what went wrong (not checked)
}

// linState is the state of one partition (one object). Only the fields of
// that object's kind are used; the zero value is the initial state of all
// three (null key at version 0, counter 0, lock free).
type linState struct {
	// KV register. Value "" is null. When VersionAtLeast is set the key was
	// last written by a set of unknown outcome: its version is not known,
	// only that it is at least Version. Floor is a lower bound of the
	// namespace revision: every later set of the key gets a version above it.
	Value          string
	Version        uint64
	VersionAtLeast bool
	Floor          uint64

	Counter int64

	// Lock. Holder 0 with HolderUnknown false is free. HolderUnknown: an
	// acquire of unknown outcome holds it with a handle nobody learned (so
	// nobody can release it; the duration outlives the test). LastHandle is
	// a lower bound for the next grant: every later handle is above it.
	Holder        uint64
	HolderUnknown bool
	LastHandle    uint64
}

func (s linState) lockFree() bool { return s.Holder == 0 && !s.HolderUnknown }

// linStep is the model's step function: can the object in state s perform
// in with result out, and what is its state after?
func linStep(s linState, in linInput, out linOutput) (bool, linState) {
	switch in.Kind {
	case linKVSet:
		if out.Unknown {
			// If it applied, it wrote a revision above Floor.
			s.Value, s.Version, s.VersionAtLeast, s.Floor = in.Value, s.Floor+1, true, s.Floor+1
			return true, s
		}
		if out.Code != "" || out.Value != in.Value || out.Version <= s.Floor {
			return false, s
		}
		s.Value, s.Version, s.VersionAtLeast, s.Floor = in.Value, out.Version, false, out.Version
		return true, s

	case linKVDelete:
		// A deleted key reads as null at version 0. The delete bumps the
		// revision too, but Floor stays: it is only a lower bound.
		if !out.Unknown && (out.Code != "" || out.Value != "" || out.Version != 0) {
			return false, s
		}
		s.Value, s.Version, s.VersionAtLeast = "", 0, false
		return true, s

	case linKVGet:
		if out.Unknown {
			return true, s
		}
		if out.Code != "" || out.Value != s.Value {
			return false, s
		}
		switch {
		case s.Value == "":
			if out.Version != 0 {
				return false, s
			}
		case s.VersionAtLeast:
			if out.Version < s.Version {
				return false, s
			}
		default:
			if out.Version != s.Version {
				return false, s
			}
		}
		// A get pins a version that was only bounded.
		s.Version, s.VersionAtLeast, s.Floor = out.Version, false, max(s.Floor, out.Version)
		return true, s

	case linCtrAdd:
		next := s.Counter + in.Delta
		if !out.Unknown && (out.Code != "" || out.Counter != next) {
			return false, s
		}
		s.Counter = next
		return true, s

	case linCtrRead:
		return out.Unknown || (out.Code == "" && out.Counter == s.Counter), s

	case linCtrCAS:
		match := s.Counter == in.IfEq
		switch {
		case out.Unknown:
		case out.Code == "":
			if !match || out.Counter != in.Set {
				return false, s
			}
		case out.Code == "precondition_failed":
			if match {
				return false, s
			}
		default:
			return false, s
		}
		if match {
			s.Counter = in.Set
		}
		return true, s

	case linLockAcquire:
		switch {
		case out.Unknown:
			if s.lockFree() {
				s.HolderUnknown, s.LastHandle = true, s.LastHandle+1
			}
			return true, s
		case out.Code == "":
			if !s.lockFree() || out.Handle <= s.LastHandle {
				return false, s
			}
			s.Holder, s.LastHandle = out.Handle, out.Handle
			return true, s
		case out.Code == "lock_timeout":
			return !s.lockFree() || (in.WaitMs > 0 && !in.StrictWait), s
		}
		return false, s

	case linLockRelease:
		// A handle a client was told belongs to that grant alone, so it never
		// equals the handle of a grant of unknown outcome.
		holds := !s.HolderUnknown && s.Holder != 0 && s.Holder == in.Handle
		switch {
		case out.Unknown:
		case out.Code == "":
			if !holds {
				return false, s
			}
		case out.Code == "lock_lost":
			return !holds, s
		default:
			return false, s
		}
		if holds {
			s.Holder = 0
		}
		return true, s
	}
	return false, s
}

// linPartition splits a history into one partition per object.
func linPartition(history []porcupine.Operation) [][]porcupine.Operation {
	byObject := map[string][]porcupine.Operation{}
	for _, op := range history {
		in := op.Input.(linInput)
		id := in.NS + "/" + in.Key
		byObject[id] = append(byObject[id], op)
	}
	ids := make([]string, 0, len(byObject))
	for id := range byObject {
		ids = append(ids, id)
	}
	sort.Strings(ids) // a stable order keeps the visualization stable
	parts := make([][]porcupine.Operation, 0, len(ids))
	for _, id := range ids {
		parts = append(parts, byObject[id])
	}
	return parts
}

func linDescribeOperation(input, output any) string {
	in, out := input.(linInput), output.(linOutput)
	var call string
	switch in.Kind {
	case linKVSet:
		call = fmt.Sprintf("set(%s, %q)", in.Key, in.Value)
	case linKVDelete, linKVGet, linCtrRead:
		call = fmt.Sprintf("%s(%s)", in.Kind, in.Key)
	case linCtrAdd:
		call = fmt.Sprintf("add(%s, %d)", in.Key, in.Delta)
	case linCtrCAS:
		call = fmt.Sprintf("cas(%s, set %d if %d)", in.Key, in.Set, in.IfEq)
	case linLockAcquire:
		call = fmt.Sprintf("acquire(%s, wait %dms)", in.Key, in.WaitMs)
	case linLockRelease:
		call = fmt.Sprintf("release(%s, %d)", in.Key, in.Handle)
	}
	var res string
	switch {
	case out.Unknown:
		res = "unknown (" + out.Why + ")"
	case out.Code != "":
		res = out.Code
	default:
		switch in.Kind {
		case linKVSet, linKVDelete, linKVGet:
			res = fmt.Sprintf("%q v%d", out.Value, out.Version)
		case linCtrAdd, linCtrRead, linCtrCAS:
			res = fmt.Sprint(out.Counter)
		case linLockAcquire:
			res = fmt.Sprintf("handle %d", out.Handle)
		case linLockRelease:
			res = "ok"
		}
	}
	return in.NS + " " + call + " -> " + res
}

func linDescribeState(state any) string {
	s := state.(linState)
	at := ""
	if s.VersionAtLeast {
		at = ">="
	}
	holder := fmt.Sprint(s.Holder)
	if s.HolderUnknown {
		holder = "unknown"
	}
	return fmt.Sprintf("kv %q v%s%d floor %d | counter %d | lock holder %s last %d",
		s.Value, at, s.Version, s.Floor, s.Counter, holder, s.LastHandle)
}

// linModel is the porcupine model of latch's KV keys, counters and locks.
var linModel = porcupine.Model{
	Partition: linPartition,
	Init:      func() any { return linState{} },
	Step: func(state, input, output any) (bool, any) {
		return linStep(state.(linState), input.(linInput), output.(linOutput))
	},
	Equal:             func(a, b any) bool { return a.(linState) == b.(linState) },
	DescribeOperation: linDescribeOperation,
	DescribeState:     linDescribeState,
}
