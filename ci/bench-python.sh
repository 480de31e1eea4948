#!/usr/bin/env bash
# Python binding benchmark (DESIGN.md section 6): builds libcircuit.so,
# installs the peer breakers it is compared with (pybreaker,
# circuitbreaker, purgatory: for the benchmark only), builds the optional
# accelerator circuit._speedups in place (ci/speedups.sh; without it,
# `with` runs in pure Python and bench.py says so), then runs, with the
# binding imported from bindings/python and loading the library just built
# through CIRCUIT_LIBRARY,
# bindings/python/bench.py, which prints the table, the ratios against
# pybreaker and the budget PASS/MISS; then bindings/python/bench_http.py,
# the overhead of the HTTP integrations (httpx, requests) against the bare
# clients on loopback, as ratios.
#
#   bash ci/bench-python.sh             # about a minute on 2 cores
#   bash ci/bench-python.sh --quick     # arguments go to bench.py
#   bash ci/bench-python.sh --strict    # exit 1 when a budget is missed
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

target_dir="${CARGO_TARGET_DIR:-target}"
case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
cargo build --release --quiet -p circuit-ffi
bash ci/speedups.sh || echo "bench-python: circuit._speedups not built: \`with\` is measured in pure Python" >&2

export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
python3 -m pip install --quiet pybreaker circuitbreaker purgatory httpx requests

# The source package, not one installed earlier (building the wheel would
# compile the library a second time): PYTHONPATH comes before site-packages.
export PYTHONPATH="$root/bindings/python${PYTHONPATH:+:$PYTHONPATH}"
export CIRCUIT_LIBRARY="$target_dir/release/libcircuit.so"
cd /tmp
python3 -c 'import circuit, sys; sys.exit(0 if circuit.__file__.startswith(sys.argv[1]) else "bench-python: imported " + circuit.__file__)' "$root/bindings/python/"
python3 "$root/bindings/python/bench.py" "$@"
quick=()
for a in "$@"; do [ "$a" != --quick ] || quick=(--quick); done
python3 "$root/bindings/python/bench_http.py" "${quick[@]}"
