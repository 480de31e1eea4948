# Two commands matter on a fresh machine: `make demo` and `make test`.
# Each installs what it needs that is missing (ci/deps.sh), then runs.
SHELL := /bin/bash
PREFIX ?= /usr/local
# `make install SLIM=1`: the library without Redis fleet sync (no redis,
# rustls or ring linked in; the sync functions answer CIRCUIT_RESULT_NOT_BUILT).
SLIM ?=

.PHONY: demo test bench header fuzz install deps lib

deps:
	@bash ci/deps.sh

demo: deps
	@bash ci/demo.sh

test: deps
	@bash ci/test.sh

# Every benchmark table: Rust peers, the C ABI, Go, Python (ratios inside
# each run; see README "Benchmarks").
bench: deps
	@bash ci/bench.sh
	@bash ci/bench-c.sh
	@bash ci/bench-tower.sh
	@bash ci/bench-go.sh
	@bash ci/bench-python.sh
	@bash ci/bench-shared.sh

header:
	@bash ci/header.sh --update

fuzz: deps
	@FUZZ_SECONDS=$${FUZZ_SECONDS:-300} bash ci/fuzz.sh

lib:
	@cargo build --release -p circuit-ffi

install:
	@SLIM="$(SLIM)" bash ci/install.sh "$(PREFIX)"
