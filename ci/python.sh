#!/usr/bin/env bash
# The Python binding (bindings/python): build libcircuit.so, install the
# package into this machine's python, run its pytest suite against the real
# library (tests parse include/circuit.h, compile a fake library with cc,
# fork, and serve HTTP on loopback).
#
#   bash ci/python.sh            # everything
#   bash ci/python.sh -k fork    # extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

target_dir="${CARGO_TARGET_DIR:-target}"
case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
cargo build --release --quiet -p circuit-ffi
so="$target_dir/release/libcircuit.so"
[ -f "$so" ] || { echo "python: $so was not built" >&2; exit 1; }

python3 -c 'import pytest' 2>/dev/null || {
  echo "python: pytest missing (ci/deps.sh installs it)" >&2; exit 1; }
PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check ./bindings/python

# Type hints (the package ships py.typed): checked when mypy is installed.
if python3 -m mypy --version >/dev/null 2>&1; then
  (cd bindings/python && python3 -m mypy --ignore-missing-imports --no-error-summary circuit) \
    || { echo "python: mypy found errors" >&2; exit 1; }
  echo "python: mypy: no issues"
fi

# From bindings/python/tests (rootdir bindings/python, by its pyproject):
# `python3 -m pytest` puts the current folder on sys.path, and from
# bindings/python that would import the source folder instead of the
# installed package this script just installed.
cd bindings/python/tests
export CIRCUIT_LIBRARY="$so"
export CIRCUIT_HEADER="$root/include/circuit.h"
set +e
python3 -m pytest -p no:cacheprovider "$@" .
rc=$?
set -e
# pytest prints its summary line ("N passed in Ns") last; exit 5 means no
# test ran, which is a failure here.
if [ "$rc" -eq 5 ]; then echo "python: no test ran" >&2; exit 1; fi
exit "$rc"
