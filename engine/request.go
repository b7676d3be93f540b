package engine

// Request is one atomic request against a namespace. The transport has
// already decoded and size-checked it; see doc.go for the order of ops.
type Request struct {
	LockID     string
	LockDurMs  int64 // required (> 0) when LockID is set
	LockWaitMs int64 // 0: fail at once if held

	UnlockID string
	Unlock   uint64 // the handle; required when UnlockID is set

	KVSet          []KVSet
	KVGet          []string
	Atomic         []AtomicOp
	Seq            []SeqOp
	IdempotencyIDs []string
	// IdempotencyTTLMs, if above 0, is how long these ids are remembered,
	// instead of Config.IdempotencyTTL (it is capped to that).
	IdempotencyTTLMs int64
	// MaxReplyBytes, if above 0, bounds the bytes KVGet may read (keys and
	// values, as ReplyItemBytes counts them). A request that reads more
	// fails whole with ErrReplyTooLarge, before the reply is built and
	// before any of its effects apply: a few bytes of request naming one
	// large value many times must not cost the server its reply in memory.
	MaxReplyBytes int
}

// ReplyItemBytes is what one KVGet item counts against MaxReplyBytes: its
// key and value plus the JSON around them, close to its size on the wire.
func ReplyItemBytes(key string, value []byte) int {
	const framing = len(`{"Key":"","Value":null,"Version":18446744073709551615},`)
	return framing + len(key) + len(value)
}

// KVSet writes (or deletes) one key. Value is stored byte-exact.
type KVSet struct {
	Key    string
	Value  []byte
	Delete bool
}

// AtomicOp changes a counter: Add, or Set; with IfEq, only if the counter
// equals it first. With neither Add nor Set it reads the counter.
type AtomicOp struct {
	Key  string
	Add  *int64
	Set  *int64
	IfEq *int64
}

// SeqOp takes Count ids from a sequence.
type SeqOp struct {
	Key   string
	Count uint64
}

// Response is what a successful Request returns.
type Response struct {
	Lock   uint64 // handle, when LockID was set
	TillMs int64  // lock deadline, unix ms
	KV     []KVItem
	Atomic []AtomicResult
	Seq    []SeqResult
}

// KVItem is one key read. A missing key has Version 0 and nil Value.
type KVItem struct {
	Key     string
	Value   []byte
	Version uint64
}

// AtomicResult is a counter's value after the op.
type AtomicResult struct {
	Key   string
	Value int64
}

// SeqResult is the inclusive range of ids handed out.
type SeqResult struct {
	Key         string
	First, Last uint64
}

// WatchResult is a key's state when a watch returns.
type WatchResult struct {
	Key     string
	Value   []byte // nil when the key does not exist
	Version uint64 // 0 when the key does not exist
	// Shared, when not nil, is the same for every watch the same write
	// woke, which all return the same Key, Value and Version.
	Shared *SharedReply
}

func watchResult(kv KVItem) WatchResult {
	return WatchResult{Key: kv.Key, Value: kv.Value, Version: kv.Version}
}
