#!/usr/bin/env bash
# Runs every cargo-fuzz target for FUZZ_SECONDS each (default 15: the smoke
# run of `make test`; `make fuzz` passes a longer time). Installs the nightly
# toolchain and cargo-fuzz when missing. A crash leaves its input in
# fuzz/artifacts/<target>/; minimise it (`cargo +nightly fuzz tmin`) and copy
# it to fuzz/regressions/<target>/, where `cargo test` replays it for ever.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-15}

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz: rustup toolchain install nightly"
  rustup toolchain install nightly --profile minimal >/dev/null
fi
if ! command -v cargo-fuzz >/dev/null; then
  echo "fuzz: cargo install cargo-fuzz"
  cargo install --quiet --locked cargo-fuzz
fi

targets=$(cargo +nightly fuzz list)
for t in $targets; do
  start=$(date +%s)
  mkdir -p "fuzz/corpus/$t"
  # Seed the corpus with the stored regressions.
  cp -n fuzz/regressions/"$t"/* "fuzz/corpus/$t/" 2>/dev/null || true
  log=$(mktemp)
  if ! cargo +nightly fuzz run "$t" "fuzz/corpus/$t" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz: $t failed; any crash input is in fuzz/artifacts/$t" >&2
    exit 1
  fi
  grep -E '^stat::(number_of_executed_units|peak_rss_mb)' "$log" | sed "s/^/fuzz: $t /"
  rm -f "$log"
  echo "fuzz: $t ran ${seconds}s clean ($(( $(date +%s) - start ))s with build)"
done
