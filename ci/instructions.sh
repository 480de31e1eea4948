#!/usr/bin/env bash
# Instructions per call for circuit and each Rust peer (README "Benchmarks"):
# runs benches/examples/instructions.rs under valgrind's cachegrind (no cache
# simulation) with two call counts; (I(n2) - I(n1)) / (n2 - n1) is one call,
# setup excluded. Instruction counts do not move with the machine's load,
# unlike time, so they are the figures to compare on a shared machine.
#
#   bash ci/instructions.sh [OUT.tsv]   # prints a table; writes "id<TAB>instructions"
set -euo pipefail
cd "$(dirname "$0")/.."

out="${1:-}"
n1=${INSTRUCTIONS_N1:-20000}
n2=${INSTRUCTIONS_N2:-220000}
command -v valgrind >/dev/null || { echo "instructions: valgrind missing (make deps installs it)" >&2; exit 1; }
cargo build --release --quiet -p circuit-benches --example instructions
target="${CARGO_TARGET_DIR:-target}"
bin="$target/release/examples/instructions"

irefs() {
  valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1 |
    awk '/I *refs:/ { gsub(",", "", $NF); print $NF }'
}

[ -n "$out" ] && : > "$out"
printf '%-42s %12s\n' scenario instructions/call
for id in $("$bin" list); do
  a=$(irefs "$id" "$n1")
  b=$(irefs "$id" "$n2")
  per=$(awk -v a="$a" -v b="$b" -v n1="$n1" -v n2="$n2" 'BEGIN { printf "%.1f", (b - a) / (n2 - n1) }')
  printf '%-42s %12s\n' "$id" "$per"
  [ -n "$out" ] && printf '%s\t%s\n' "$id" "$per" >> "$out"
done
