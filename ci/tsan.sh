#!/usr/bin/env bash
# The real-thread stress tests (and the active probe tests, whose prober
# threads race user calls) under ThreadSanitizer (nightly, std rebuilt
# with the sanitizer so its atomics are instrumented too). Backs up loom,
# which does not model every Relaxed reordering (STYLE.md).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup toolchain list | grep -q '^nightly'; then
  rustup toolchain install nightly --profile minimal >/dev/null
fi
if ! rustup component list --toolchain nightly --installed | grep -q '^rust-src'; then
  echo "tsan: rustup component add rust-src --toolchain nightly"
  rustup component add rust-src --toolchain nightly >/dev/null
fi

start=$(date +%s)
export RUSTFLAGS="-Zsanitizer=thread"
export RUSTDOCFLAGS="-Zsanitizer=thread"
# ci/tsan.supp says why seize's reclamation lists are suppressed.
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$(pwd)/ci/tsan.supp"
export CARGO_TARGET_DIR=target/tsan
export CIRCUIT_STRESS_OPS=${CIRCUIT_STRESS_OPS:-40000}
cargo +nightly test -Zbuild-std --target x86_64-unknown-linux-gnu --release \
  -p circuit-core --test stress --test probe
echo "tsan: $(( $(date +%s) - start ))s"
