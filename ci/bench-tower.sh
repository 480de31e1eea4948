#!/usr/bin/env bash
# The tower layer's overhead as a measured ratio: sequential GETs over one
# kept-alive loopback connection to a hyper server, through hyper-util's
# client bare and through circuit-tower's layer, in alternating rounds
# (tower/examples/overhead.rs); then the layer alone around a service that
# answers at once. Ratios, not times, carry across machines.
#   bash ci/bench-tower.sh [requests per round] [rounds]   (default 2000 and 9)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p circuit-tower --example overhead
target_dir="${CARGO_TARGET_DIR:-target}"
"$target_dir/release/examples/overhead" "${1:-2000}" "${2:-9}"
