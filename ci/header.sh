#!/usr/bin/env bash
# include/circuit.h is generated from ffi/src by cbindgen (config:
# ffi/cbindgen.toml) and committed.
#   ci/header.sh           fail (and show the diff) when the committed header
#                          differs from a fresh generation
#   ci/header.sh --update  regenerate include/circuit.h (`make header`)
set -euo pipefail
cd "$(dirname "$0")/.."

CBINDGEN_VERSION=0.29.0
if ! cbindgen --version 2>/dev/null | grep -q "$CBINDGEN_VERSION"; then
  echo "header: cbindgen $CBINDGEN_VERSION is required (bash ci/deps.sh installs it)" >&2
  exit 1
fi

header=include/circuit.h
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# cbindgen reads ffi/src/lib.rs and the modules it declares, without
# `cargo metadata`: the header depends on ffi/src alone.
if ! cbindgen --quiet --config ffi/cbindgen.toml \
    --output "$tmp/circuit.h" ffi/src/lib.rs 2>"$tmp/err"; then
  cat "$tmp/err" >&2
  echo "header: cbindgen failed" >&2
  exit 1
fi

case "${1:-}" in
  --update)
    mkdir -p include
    if cmp -s "$tmp/circuit.h" "$header"; then
      echo "header: $header is up to date"
    else
      cp "$tmp/circuit.h" "$header"
      echo "header: wrote $header"
    fi
    ;;
  "")
    if [ ! -f "$header" ]; then
      echo "header: $header is missing; run \`make header\`" >&2
      exit 1
    fi
    if ! diff -u "$header" "$tmp/circuit.h"; then
      echo "header: $header differs from a fresh generation (diff above: committed -> fresh); run \`make header\` and commit it" >&2
      exit 1
    fi
    echo "header: $header matches a fresh generation"
    ;;
  *)
    echo "usage: ci/header.sh [--update]" >&2
    exit 2
    ;;
esac
