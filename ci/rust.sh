#!/usr/bin/env bash
# Unit, property, integration and real-thread stress tests of every crate.
set -euo pipefail
cd "$(dirname "$0")/.."
# The Redis-backed crates need a server; ci/redis.sh runs their tests.
cargo test --workspace --release --quiet --exclude circuit-sync --exclude circuit-cli
