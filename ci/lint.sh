#!/usr/bin/env bash
# Formatting and clippy with warnings as errors, whole workspace; README
# code blocks equal to the examples that the tests build and run.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
# incompatible_msrv: no std API newer than each crate's rust-version (on by
# default; named so that it stays on).
cargo clippy --workspace --all-targets --quiet -- -D warnings -D clippy::incompatible_msrv
# The slim C ABI library (no `sync` feature) compiles other code paths.
cargo clippy -p circuit-ffi --no-default-features --all-targets --quiet -- -D warnings -D clippy::incompatible_msrv
# Every code block of every README is a region of a file the tests build.
python3 ci/readme_snippets.py
