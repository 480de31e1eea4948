#!/usr/bin/env bash
# The C ABI's overhead as a measured ratio: one protected call (acquire +
# record SUCCESS, CLOSED, default consecutive policy) timed in a loop from
#   C through libcircuit.so (PLT call into the shared object),
#   C through libcircuit.so with the header's inline helpers
#     (circuit_fast_acquire + circuit_fast_record_success: the closed check
#     inline, one library call per protected call),
#   C through libcircuit.a (static link), plainly (c_static) and with the
#     inline helpers (c_static_fast: the same code as c_fast, reached by a
#     direct call instead of the shared object's indirect one through the
#     PLT; the difference between the two is what calling into a shared
#     object costs, which no code in the library can remove),
#   Rust through the exported circuit_* functions (rlib, no dynamic call),
#   Rust through circuit_core::Breaker directly, the outcome and duration
#     constants (rust_core) or known only at run time (rust_core_rt),
# and an atomic load + fetch_add floor. The ratios that compare like with
# like: c_fast / rust_core (an untimed success, constants on both sides)
# and c_shared / rust_core_rt (outcome and duration as run-time values). Each program prints the median of 7
# timed loops; the script runs the programs in alternating rounds and
# reports the median of the rounds (medians: these machines are shared and
# busy, and a best-of picks lucky moments unevenly).
# Ratios are what carry across machines (DESIGN.md section 6). Then, where
# valgrind is installed, instructions per protected call of each path
# (cachegrind, two loop lengths, the difference divided: what a loaded
# machine does not move; ci/instructions.sh does the same for the peers).
#   bash ci/bench-c.sh [iterations per loop] [rounds]   (default 3,000,000 and 5)
set -euo pipefail
cd "$(dirname "$0")/.."
iterations="${1:-3000000}"
rounds="${2:-5}"

target_dir="${CARGO_TARGET_DIR:-target}"
case "$target_dir" in /*) ;; *) target_dir="$(pwd)/$target_dir" ;; esac
cargo build --release --quiet -p circuit-ffi --example abi_bench
stage="$target_dir/c"
mkdir -p "$stage/lib" "$stage/bin"
ln -sfn "$target_dir/release/libcircuit.so" "$stage/lib/libcircuit.so.0"
ln -sfn "$target_dir/release/libcircuit.so" "$stage/lib/libcircuit.so"

flags=(-std=c11 -O2 -Wall -Wextra -Werror -Iinclude)
cc "${flags[@]}" bindings/c/bench/abi_bench.c -o "$stage/bin/abi_bench_shared" \
  -L"$stage/lib" -lcircuit -Wl,-rpath,"$stage/lib"
cc "${flags[@]}" bindings/c/bench/abi_bench.c -o "$stage/bin/abi_bench_static" \
  "$target_dir/release/libcircuit.a" -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc

# Rounds alternate the programs so that load from elsewhere on a shared
# machine hits them alike; each figure is the median over the rounds.
results=$(
  for _ in $(seq "$rounds"); do
    "$stage/bin/abi_bench_shared" c_shared "$iterations"
    "$stage/bin/abi_bench_shared" c_fast "$iterations"
    "$stage/bin/abi_bench_static" c_static "$iterations"
    "$stage/bin/abi_bench_static" c_static_fast "$iterations"
    "$target_dir/release/examples/abi_bench" "$iterations"
  done
)

awk '
  { v[$1, ++n[$1]] = $2 }
  END {
    for (k in n) {
      # insertion sort of the rounds of this path, then the median
      for (i = 2; i <= n[k]; i++) {
        for (j = i; j > 1; j--) {
          if (v[k, j - 1] <= v[k, j]) break
          t = v[k, j]; v[k, j] = v[k, j - 1]; v[k, j - 1] = t
        }
      }
      ns[k] = v[k, int((n[k] + 1) / 2)]
    }
    printf "%-14s %9s %10s %10s\n", "path", "ns/call", "vs Rust", "vs floor"
    m = split("rust_core rust_core_rt rust_via_abi c_static c_static_fast c_shared c_fast floor", order, " ")
    for (i = 1; i <= m; i++) {
      k = order[i]
      printf "%-14s %9.2f %9.2fx %9.2fx\n", k, ns[k], ns[k] / ns["rust_core"], ns[k] / ns["floor"]
    }
    printf "\nABI overhead (C via libcircuit.so / Rust core): %.2fx, +%.2f ns per protected call\n",
      ns["c_shared"] / ns["rust_core"], ns["c_shared"] - ns["rust_core"]
    printf "  like for like, run-time outcome and duration (c_shared / rust_core_rt): %.2fx\n",
      ns["c_shared"] / ns["rust_core_rt"]
    printf "  like for like, untimed success (c_fast / rust_core): %.2fx, +%.2f ns\n",
      ns["c_fast"] / ns["rust_core"], ns["c_fast"] - ns["rust_core"]
    printf "  the same, statically linked (c_static_fast / rust_core): %.2fx; the shared object'"'"'s call: +%.2f ns\n",
      ns["c_static_fast"] / ns["rust_core"], ns["c_fast"] - ns["c_static_fast"]
  }' <<<"$results"

# Instructions per protected call. Each program runs its loop RUNS (7)
# times plus a warm-up of a tenth: 7.1 loops of n calls.
if command -v valgrind >/dev/null; then
  irefs() {
    valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null "$@" 2>&1 >/dev/null |
      awk '/I *refs:/ { gsub(",", "", $NF); print $NF }'
  }
  n1=100000 n2=600000
  declare -A ins
  echo
  printf '%-14s %12s\n' path instructions/call
  for p in rust_core rust_core_rt rust_via_abi c_static c_static_fast c_shared c_fast; do
    case "$p" in
      c_fast) run=("$stage/bin/abi_bench_shared" "$p") ;;
      c_static_fast) run=("$stage/bin/abi_bench_static" "$p") ;;
      c_*) run=("$stage/bin/abi_bench_${p#c_}" "$p") ;;
      *) run=("$target_dir/release/examples/abi_bench") ;;
    esac
    if [ "${p#c_}" = "$p" ]; then
      a=$(irefs "${run[@]}" "$n1" "$p"); b=$(irefs "${run[@]}" "$n2" "$p")
    else
      a=$(irefs "${run[@]}" "$n1"); b=$(irefs "${run[@]}" "$n2")
    fi
    ins[$p]=$(awk -v a="$a" -v b="$b" -v n1="$n1" -v n2="$n2" \
      'BEGIN { printf "%.1f", (b - a) / (7.1 * (n2 - n1)) }')
    printf '%-14s %12s\n' "$p" "${ins[$p]}"
  done
  awk -v shared="${ins[c_shared]}" -v fast="${ins[c_fast]}" -v core="${ins[rust_core]}" \
    -v rt="${ins[rust_core_rt]}" 'BEGIN {
      printf "instructions, c_shared / rust_core_rt: %.2fx; c_fast / rust_core: %.2fx\n",
        shared / rt, fast / core }'
else
  echo "bench-c: valgrind missing, no instruction counts (make deps installs it)"
fi
