#!/usr/bin/env bash
# Unit, property, integration and real-thread stress tests of every crate.
# The tests that need a redis-server are #[ignore]d here; ci/redis.sh runs
# them against the same release build.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --release --quiet
# The README's host-shared breaker example, run (it asserts what it shows).
cargo run --release --quiet -p circuit-core --example shared_breaker
# The slim C ABI library (circuit-ffi without `sync`), in its own target
# directory so that it never replaces the full target/release/libcircuit.so.
CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/slim" \
  cargo test --release --quiet -p circuit-ffi --no-default-features --lib
