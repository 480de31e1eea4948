#!/usr/bin/env bash
# loom model checking of circuit-core (DESIGN.md section 5, STYLE.md
# "Verification"). Builds into target/loom so the loom cfg never invalidates
# the normal build. Extra arguments go to the test harness (a model filter,
# e.g. `ci/loom.sh half_open::`).
set -euo pipefail
cd "$(dirname "$0")/.."

export RUSTFLAGS="--cfg circuit_loom"
export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}"
export CARGO_TARGET_DIR=target/loom

start=$(date +%s)
cargo test --profile loom -p circuit-core --test loom -- "$@"
echo "loom: LOOM_MAX_PREEMPTIONS=$LOOM_MAX_PREEMPTIONS, $(( $(date +%s) - start ))s"
