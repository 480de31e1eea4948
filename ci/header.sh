#!/usr/bin/env bash
# include/circuit.h is generated from ffi/src by cbindgen (config:
# ffi/cbindgen.toml) and committed; so are the wrappers' restatements of it,
# generated from the header by ci/gen_bindings.py:
# bindings/python/circuit/_cdefs.py (ctypes declarations and constants) and
# bindings/go/constants_gen.go (constants and names).
#   ci/header.sh           fail (and show the diff) when a committed file
#                          differs from a fresh generation, or when a wrapper
#                          spells a header value as a number
#                          (ci/header_literals.py says what is checked)
#   ci/header.sh --update  regenerate the header and both files (`make header`)
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

# The wrappers' files, from the fresh header.
python3 ci/gen_bindings.py --header "$tmp/circuit.h" --out-dir "$tmp"
generated="$header:circuit.h bindings/python/circuit/_cdefs.py:_cdefs.py bindings/go/constants_gen.go:constants_gen.go"

case "${1:-}" in
  --update)
    mkdir -p include
    for pair in $generated; do
      file=${pair%%:*} fresh=$tmp/${pair#*:}
      if cmp -s "$fresh" "$file"; then
        echo "header: $file is up to date"
      else
        cp "$fresh" "$file"
        echo "header: wrote $file"
      fi
    done
    ;;
  "")
    failed=0
    for pair in $generated; do
      file=${pair%%:*} fresh=$tmp/${pair#*:}
      if [ ! -f "$file" ]; then
        echo "header: $file is missing; run \`make header\`" >&2
        failed=1
      elif ! diff -u "$file" "$fresh"; then
        echo "header: $file differs from a fresh generation (diff above: committed -> fresh); run \`make header\` and commit it" >&2
        failed=1
      else
        echo "header: $file matches a fresh generation"
      fi
    done
    python3 ci/header_literals.py || failed=1
    exit "$failed"
    ;;
  *)
    echo "usage: ci/header.sh [--update]" >&2
    exit 2
    ;;
esac
