#!/usr/bin/env bash
# compare.sh: the benchmark table for BENCHMARKS.md. Starts latch, Redis 7
# (appendonly yes, appendfsync always) and etcd 3.4 (defaults: an fsync
# per raft batch) on loopback with fresh data directories, then runs each
# scenario against the three back to back (interleaved, so drift in the
# machine's load hits all alike), at each simulated latency.
#
#   loadtest/compare.sh [DURATION] [LATENCIES]    e.g. 2s "0 1ms 10ms"
#
# Needs redis-server and etcd on PATH (Debian: apt-get install
# redis-server etcd-server; `make bench-compare` installs them). Output:
# one JSON object per run in $OUT (default bench-compare.jsonl) and the
# text lines on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-2s}
LATENCIES=${2:-"0 1ms 10ms"}
OUT=${OUT:-bench-compare.jsonl}
BIN=${BIN:-bin/latch}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

$BIN serve --addr 127.0.0.1:7171 --data-dir "$work/latch" --snapshot-every-records -1 >"$work/latch.log" 2>&1 &
pids+=($!)
redis-server --port 6391 --bind 127.0.0.1 --dir "$work" --save '' --appendonly yes --appendfsync always --maxclients 20000 >"$work/redis.log" 2>&1 &
pids+=($!)
etcd --name cmp --data-dir "$work/etcd" --listen-client-urls http://127.0.0.1:2479 --advertise-client-urls http://127.0.0.1:2479 \
	--listen-peer-urls http://127.0.0.1:2480 --initial-advertise-peer-urls http://127.0.0.1:2480 --initial-cluster cmp=http://127.0.0.1:2480 \
	--quota-backend-bytes 8589934592 >"$work/etcd.log" 2>&1 &
pids+=($!)

# The fsync latency of this machine, for the table's header.
go test -run '^$' -bench 'BenchmarkAppendSerial' -benchtime 500x ./wal | grep -o '[0-9.]* fsync-µs' || true

: >"$OUT"
for lat in $LATENCIES; do
	for s in $($BIN loadtest --list | awk '{print $1}'); do
		for t in latch redis etcd; do
			case $t in
			latch) addr=http://127.0.0.1:7171 ;;
			redis) addr=127.0.0.1:6391 ;;
			etcd) addr=http://127.0.0.1:2479 ;;
			esac
			$BIN loadtest --target $t --addr $addr --wait 10s --scenario "$s" --duration "$DURATION" --latency "$lat" -o jsonl 2>/dev/null |
				tee -a "$OUT" | cut -c1-160 || true
		done
	done
done
