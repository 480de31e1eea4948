#!/usr/bin/env bash
# Benchmarks of DESIGN.md section 6: runs benches/benches/breakers.rs (floor,
# circuit and the peer breakers in one binary, so every ratio comes from one
# run) with short settings, counts instructions per call (ci/instructions.sh),
# then prints the budget table and writes target/criterion/chart.svg.
#
#   bash ci/bench.sh                 # everything, about 3-5 minutes on 2 cores
#   bash ci/bench.sh closed          # a criterion filter; ratios need the floor too
#   BENCH_STRICT=1 bash ci/bench.sh  # exit 1 when a budget is missed
#
# Previous results are removed first: the table must never mix two runs.
set -euo pipefail
cd "$(dirname "$0")/.."

target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$PWD/$target" ;; esac
out="$target/criterion"
rm -rf "$out"
mkdir -p "$out"
# The bench binary runs in benches/: it needs an absolute path.
export CIRCUIT_BENCH_CONCURRENCY="$out/concurrency.tsv"

cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | sed 's/^ *//' || true)
echo "bench: $(nproc) cores${cpu:+, $cpu}; load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"

start=$(date +%s)
cargo bench -p circuit-benches --bench breakers -- \
  --warm-up-time 1 --measurement-time 2 "$@"
echo "bench: build and measurement took $(( $(date +%s) - start )) s"
echo

# Instructions per call (cachegrind): the figures a noisy machine does not
# move. bench-table prints them and labels the chart with them.
if command -v valgrind >/dev/null; then
  bash ci/instructions.sh "$out/instructions.tsv"
  echo
else
  echo "bench: valgrind missing, no instruction counts (make deps installs it)"
fi

strict=()
[ "${BENCH_STRICT:-0}" != 0 ] && strict=(--strict)
cargo run --release --quiet -p circuit-benches --bin bench-table -- "$out" "${strict[@]}"
