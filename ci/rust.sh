#!/usr/bin/env bash
# Unit, property, integration and real-thread stress tests of every crate.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --release --quiet
