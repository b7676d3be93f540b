# latch: `make run` serves on the defaults, `make test` runs every test.
GO            ?= go
BIN           := bin/latch
STATICCHECK   := honnef.co/go/tools/cmd/staticcheck@v0.8.2
GOBIN         := $(shell $(GO) env GOPATH)/bin
# Fuzz budgets are execution counts, not durations: a duration -fuzztime
# races Go's fuzz coordinator (golang/go#75804, unfixed in go1.26) and fails
# with "context deadline exceeded" on a loaded machine, with no crasher.
# The short counts take about 3 s each here; `make fuzz` runs FUZZ_LONG times more.
# FuzzModelHTTP runs a whole request sequence on a real engine (fsyncs and
# restarts) per execution: about 50-90 a second here (load average 7), so 100:
# 3.5-5 s with the seed corpus run first.
FUZZ_SCALE    ?= 1
FUZZ_LONG     ?= 40
# The fuzz targets, as package:Target:executions.
FUZZ_TARGETS  := ./httpapi:FuzzDecodeRequest:10000 ./httpapi:FuzzDecodeWatch:10000 ./httpapi:FuzzDecodeDifferential:5000 ./httpapi:FuzzParseAuth:10000 ./httpapi:FuzzModelHTTP:100 ./wal:FuzzDecodeFrame:30000 ./wal:FuzzOpenDamagedTail:3000 ./engine:FuzzDecodeRecord:40000 ./snapshot:FuzzRead:40000

.PHONY: all build run test lint vet staticcheck fmt-check unit unit-norace fuzz-short fuzz bench bench-table bench-compare bench-snapshot clean
.PHONY: wrk bench-wrk bench-idle-waiters bench-memory-per-key
.PHONY: install install-systemd install-check
.PHONY: chromium ui-screenshots
.PHONY: soak
.PHONY: unit-nofsync

all: build

build:
	$(GO) build -o $(BIN) ./cmd/latch

## run: build and serve on 127.0.0.1:7070 with data in ./latch-data
run: build
	./$(BIN) serve

## test: every check CI runs: format, vet, staticcheck, tests under -race, short fuzzing
test: lint install-check unit unit-norace unit-nofsync fuzz-short

lint: fmt-check vet staticcheck

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

staticcheck:
	@test -x $(GOBIN)/staticcheck || $(GO) install $(STATICCHECK)
	$(GOBIN)/staticcheck ./...

unit: chromium
	$(GO) test -race -count=1 -timeout 12m ./...

## chromium: Debian's headless Chromium for the admin page's browser test
## (httpapi/ui_browser_test.go fails without it unless LATCH_SKIP_BROWSER=1)
chromium:
	@test -x /usr/bin/chromium || { \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }

## ui-screenshots: regenerate docs/img/ui-*.png from the browser test
ui-screenshots: chromium
	LATCH_UI_SCREENSHOTS=$(CURDIR)/docs/img $(GO) test -count=1 -run '^TestAdminPageBrowser$$' ./httpapi

# Tests too big for the race detector (it caps live goroutines at 8128):
# 10,000 lock waiters over HTTP on one key; the bad-input table's
# 20 runs with its heap check (too slow under -race, which runs it twice);
# and the allocation budgets (sync.Pool drops items at random under -race).
unit-norace:
	$(GO) test -count=1 -timeout 5m -run '^(TestTenThousandWaiters|TestBadInput|TestAllocs.*)$$' ./httpapi

# The power-loss harness's reverse check: built with fsync off (the
# latch_nofsync tag, refused outside test binaries), it must report lost
# acknowledged writes. LATCH_POWER_IMAGES=N runs the harness itself longer.
unit-nofsync:
	$(GO) vet -tags latch_nofsync ./wal ./engine
	@out=$$($(GO) run -tags latch_nofsync ./cmd/latch version 2>&1); case "$$out" in \
		*"latch_nofsync tag"*) echo "a latch_nofsync binary refuses to run: ok";; \
		*) echo "a latch_nofsync build must refuse to run outside tests; it printed: $$out"; exit 1;; esac
	$(GO) test -race -count=1 -timeout 5m -tags latch_nofsync -run '^TestPowerLossNoFsync$$' ./engine

fuzz-short:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; rest=$${t#*:}; name=$${rest%%:*}; n=$$(( $${rest##*:} * $(FUZZ_SCALE) )); \
		echo "fuzz $$pkg $$name for $$n executions"; \
		$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $${n}x -timeout 30m $$pkg || exit 1; \
	done

## fuzz: the same targets, FUZZ_LONG times as many executions (minutes each)
fuzz:
	$(MAKE) fuzz-short FUZZ_SCALE=$(FUZZ_LONG)

## bench: engine and WAL micro-benchmarks plus the HTTP comparison runs
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./wal ./engine ./httpapi
	$(GO) test -run '^$$' -bench . -benchtime 1x -count 1 ./loadtest
	$(MAKE) bench-table

BENCH_ADDR     ?= 127.0.0.1:7079
BENCH_DURATION ?= 2s
BENCH_FLAGS    ?=
## bench-table: the whole loadtest table against a fresh `latch serve` (about a minute at 2s
## per row); BENCH_FLAGS="--latency 10ms" for the simulated-latency rows
bench-table: build
	@dir=$$(mktemp -d); ./$(BIN) serve --addr $(BENCH_ADDR) --data-dir $$dir/data >$$dir/server.log 2>&1 & pid=$$!; \
	trap 'kill $$pid; wait $$pid 2>/dev/null; rm -rf $$dir' EXIT; \
	./$(BIN) loadtest --addr http://$(BENCH_ADDR) --wait 10s --duration $(BENCH_DURATION) --report bench-report.html $(BENCH_FLAGS)

## bench-compare: the table against latch, Redis 7 and etcd 3.4 side by side (BENCHMARKS.md);
## installs Debian's redis-server and etcd-server if missing (needs root)
bench-compare: build
	@command -v redis-server >/dev/null && command -v etcd >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server etcd-server)
	loadtest/compare.sh $(BENCH_DURATION)

## bench-snapshot: restart time from log vs snapshot, write p99 during a snapshot
## (1,000,000 keys and 100,000 held locks; LATCH_BENCH_KEYS / LATCH_BENCH_LOCKS to change)
bench-snapshot:
	$(GO) test -run '^$$' -bench 'BenchmarkRestart|BenchmarkWriteP99DuringSnapshot' -benchtime 1x -timeout 30m -v ./engine

WRK_DURATION ?= 5s
WRK_ROUNDS   ?= 3
WRK_FLAGS    ?=
BASE         ?=
PROFILE      ?=
PROFILE_DIR  ?= bench-profiles
# wrkbench(rows): build the bare handler and the driver, and BASE (a git
# revision) into bin/latch-base if given, then run the rows interleaved.
define wrkbench
	$(GO) build -o bin/barehttp ./loadtest/barehttp
	$(GO) build -o bin/wrkbench ./loadtest/wrkbench
	@base=; if [ -n "$(BASE)" ]; then \
		d=$$(mktemp -d); trap 'rm -rf $$d' EXIT; \
		echo "building BASE=$(BASE) ($$(git rev-parse --short $(BASE))) into bin/latch-base"; \
		git archive $(BASE) | tar -x -C $$d && (cd $$d && $(GO) build -o $(CURDIR)/bin/latch-base ./cmd/latch) || exit 1; \
		base="--base bin/latch-base"; fi; \
	prof=; if [ -n "$(PROFILE)" ]; then prof="--profile-dir $(PROFILE_DIR)"; fi; \
	./bin/wrkbench --rows $(1) --duration $(WRK_DURATION) --rounds $(WRK_ROUNDS) $$base $$prof $(WRK_FLAGS)
endef

## wrk: Debian's wrk, for bench-wrk (installed if missing)
wrk:
	@command -v wrk >/dev/null || { \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq wrk; }

## bench-wrk: the performance rows (BENCHMARKS.md, "wrk rows"): latch against a bare net/http
## handler, interleaved, WRK_ROUNDS rounds of WRK_DURATION, medians and ratios, server CPU per
## request, fan-out and RSS rows. BASE=<git rev> also runs that revision, interleaved, for
## before/after in one run; PROFILE=1 adds a CPU profile per wrk row (PROFILE_DIR) and its top 25.
bench-wrk: build wrk
	$(call wrkbench,all)

## bench-idle-waiters: RSS of latch with 10,000 idle lock waiters over HTTP/1.1 (BASE= as above)
bench-idle-waiters: build
	$(call wrkbench,idle-waiters)

## bench-memory-per-key: RSS of latch after 1,000,000 keys x 64 B in 10 namespaces (BASE= as above)
bench-memory-per-key: build
	$(call wrkbench,memory-per-key)

PREFIX  ?= /usr/local
DESTDIR ?=
## install: the binary to $(DESTDIR)$(PREFIX)/bin/latch (PREFIX=/usr/local by default)
install: build
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/latch

## install-systemd: install, plus packaging/latch.service as /etc/systemd/system/latch.service
install-systemd: install
	install -d $(DESTDIR)/etc/systemd/system
	install -m 0644 packaging/latch.service $(DESTDIR)/etc/systemd/system/latch.service
	@echo "now: systemctl daemon-reload && systemctl enable --now latch"

# install-check: `make install-systemd` into a scratch DESTDIR gives a binary
# that runs and a unit systemd accepts (when systemd-analyze is present).
install-check:
	@d=$$(mktemp -d); trap 'rm -rf $$d' EXIT; \
	$(MAKE) -s install-systemd DESTDIR=$$d >/dev/null && \
	$$d$(PREFIX)/bin/latch version && \
	test -f $$d/etc/systemd/system/latch.service && \
	if command -v systemd-analyze >/dev/null; then \
		sed 's|/usr/local/bin/latch|'$$d$(PREFIX)/bin/latch'|' packaging/latch.service >$$d/latch.service && \
		systemd-analyze verify $$d/latch.service; fi

SOAK_DURATION   ?= 10m
SOAK_KILL_EVERY ?= 30s
## soak: mixed load (KV, counters, sequences, locks, watches) against the real binary for
## SOAK_DURATION with a SIGKILL and restart every SOAK_KILL_EVERY; fails if anything
## acknowledged is lost; prints ops, crashes, RSS and goroutines over time. Not in `make test`.
## Durations are Go durations with one unit (90s, 2m, 1h); the go test timeout is twice that plus 10 min.
soak:
	@secs=$$(echo '$(SOAK_DURATION)' | awk '/h$$/ {print int($$0*3600); next} /ms$$/ {print 1; next} /m$$/ {print int($$0*60); next} {print int($$0)}'); \
	LATCH_SOAK=1 LATCH_SOAK_DURATION=$(SOAK_DURATION) LATCH_SOAK_KILL_EVERY=$(SOAK_KILL_EVERY) \
		$(GO) test -count=1 -v -run '^TestSoak$$' -timeout $$(( 2 * secs + 600 ))s ./cmd/latch

clean:
	rm -rf bin
