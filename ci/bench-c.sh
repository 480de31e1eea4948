#!/usr/bin/env bash
# The C ABI's overhead as a measured ratio: one protected call (acquire +
# record SUCCESS, CLOSED, default consecutive policy) timed in a loop from
#   C through libcircuit.so (PLT call into the shared object),
#   C through libcircuit.a (static link),
#   Rust through the exported circuit_* functions (rlib, no dynamic call),
#   Rust through circuit_core::Breaker directly,
# and an atomic load + fetch_add floor. Each program prints the median of 7
# timed loops; the script runs the programs in alternating rounds and
# reports the median of the rounds (medians: these machines are shared and
# busy, and a best-of picks lucky moments unevenly).
# Ratios are what carry across machines (DESIGN.md section 6).
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
    "$stage/bin/abi_bench_static" c_static "$iterations"
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
    m = split("rust_core rust_via_abi c_static c_shared floor", order, " ")
    for (i = 1; i <= m; i++) {
      k = order[i]
      printf "%-14s %9.2f %9.2fx %9.2fx\n", k, ns[k], ns[k] / ns["rust_core"], ns[k] / ns["floor"]
    }
    printf "\nABI overhead (C via libcircuit.so / Rust core): %.2fx, +%.2f ns per protected call\n",
      ns["c_shared"] / ns["rust_core"], ns["c_shared"] - ns["rust_core"]
  }' <<<"$results"
