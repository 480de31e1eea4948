#!/usr/bin/env bash
# Smoke run of `make demo` for the test suite: builds the demo, runs it for
# 20 s of partner phases (plain output, logs and Prometheus files in a
# temporary directory), and relies on demo/run.py's checks: every instance
# (C, Python, Go) tripped during the failing and the slow phases, served
# cold offers while open, and was CLOSED again at the end; and, in the last,
# traffic-free phase (a partner outage, a trip, then no user request), that
# the Python instance's active health probe alone closed its breaker. With
# redis-server installed and a library exporting circuit_sync_start, the
# run also requires the instances' sync to be connected and at least one
# transition applied from another instance. About 40 s on an idle 2-core
# machine (builds already done); bounded by a 300 s timeout.
set -euo pipefail
cd "$(dirname "$0")/.."

bash ci/demo.sh --build-only

out=$(mktemp -d "${TMPDIR:-/tmp}/circuit-demo-test.XXXXXX")
args=(--duration 20 --plain --out "$out")
if ! command -v redis-server >/dev/null; then
  echo "demo-test: redis-server not installed: running without fleet sync"
  args+=(--no-redis)
elif ! python3 -c 'import ctypes, sys; ctypes.CDLL(sys.argv[1]).circuit_sync_start' demo/.build/lib/libcircuit.so 2>/dev/null; then
  echo "demo-test: the library has no circuit_sync_start: running without fleet sync"
  args+=(--no-redis)
else
  args+=(--require-sync)
fi

start=$(date +%s)
status=0
timeout --signal=TERM --kill-after=10 300 python3 demo/run.py "${args[@]}" || status=$?
echo "demo-test: run took $(( $(date +%s) - start )) s (exit status $status)"
if [ "$status" -ne 0 ]; then
  echo "demo-test: FAILED; logs and Prometheus files kept in $out"
  exit 1
fi
rm -rf "$out"

# The host-shared scene (demo/host_shared.py): with one breaker shared by 8
# spawned workers, the failing partner gets the threshold (plus at most one
# call in flight per worker); with a breaker per process, 8 times it.
timeout --signal=TERM --kill-after=10 300 python3 demo/host_shared.py --check
