#!/usr/bin/env bash
# Host-shared breakers against the in-process breaker, in one run (part of
# `make bench`, README "Host-shared breakers"): the closed call on each, and
# each with a second caller (another thread on the in-process breaker,
# another process on the shared slot). Ratios inside the run only.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "bench-shared: $(nproc) cores; load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
cargo bench -p circuit-benches --bench shared -- --warm-up-time 1 --measurement-time 2 "$@"
