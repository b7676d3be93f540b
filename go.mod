module github.com/latchkv/latch

go 1.25

require (
	github.com/anishathalye/porcupine v1.3.1
	github.com/tidwall/btree v1.8.2
	github.com/tidwall/wal v1.2.1
)

require (
	github.com/klauspost/compress v1.20.4 // indirect
	github.com/tidwall/gjson v1.10.2 // indirect
	github.com/tidwall/match v1.1.1 // indirect
	github.com/tidwall/pretty v1.2.0 // indirect
	github.com/tidwall/tinylru v1.1.0 // indirect
)
