#!/usr/bin/env bash
# Unit, property, integration and real-thread stress tests of every crate.
# The tests that need a redis-server are #[ignore]d here; ci/redis.sh runs
# them against the same release build.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --release --quiet
