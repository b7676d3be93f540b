package engine

import "sync"

// SharedReply is what the watches one write woke share: they all return
// the same key, value and version, so their caller can encode the reply
// once and send the same bytes to each (WatchResult.Encoded).
type SharedReply struct {
	once    sync.Once
	encoded any
}

// Encoded returns encode(r). For watches woken by the same write (r.Shared
// set) encode runs once, on the first call from any of them, and every
// call returns its value; encode must not depend on anything but r.
func (r WatchResult) Encoded(encode func(WatchResult) any) any {
	if r.Shared == nil {
		return encode(r)
	}
	r.Shared.once.Do(func() { r.Shared.encoded = encode(r) })
	return r.Shared.encoded
}
