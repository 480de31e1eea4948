#!/usr/bin/env bash
# The README's first command: a breaker tripping and recovering on simulated time.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --quiet --release -p circuit-core --example demo
