#!/usr/bin/env bash
# Instructions per closed call (DESIGN.md section 6, invariant 2), counted
# by valgrind's cachegrind, which a shared machine's load cannot move:
# each case of benches/examples/closed_instructions.rs runs for N and 2N
# calls, and the difference of the two instruction totals divided by N is
# the cost of one call (set-up and exit cancel out).
#
#   bash ci/bench-instructions.sh [N]     # default N = 200000
#
# Before/after a change of the core (what issue 18 reported): build this
# example once against the core of the base commit, with its `ramp-only`
# lines removed, and once as is:
#   BEFORE=<commit> bash ci/bench-instructions.sh
# copies core/src of <commit> over the worktree, measures, and restores the
# worktree's core/src from a copy (uncommitted changes included).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "bench-instructions: valgrind missing" >&2; exit 1; }
n="${1:-200000}"
target="${CARGO_TARGET_DIR:-target}"
example=benches/examples/closed_instructions.rs

build() {
  cargo build --release --quiet -p circuit-benches --example closed_instructions
  cp "$target/release/examples/closed_instructions" "$1"
}

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
if [ -n "${BEFORE:-}" ]; then
  cp -a core/src "$stage/src" && cp "$example" "$stage/example.rs"
  # Fresh mtimes after every swap: cargo rebuilds by mtime, and copied or
  # extracted files carry old ones.
  restore() {
    rm -rf core/src && cp -a "$stage/src" core/src && cp "$stage/example.rs" "$example"
    find core/src "$example" -exec touch {} +
  }
  trap 'restore; rm -rf "$stage"' EXIT
  rm -rf core/src && mkdir core/src
  git archive "$BEFORE" core/src | tar -x -C "$stage" --transform 's,^core/src,before,'
  cp -a "$stage/before/." core/src/
  find core/src -exec touch {} +
  grep -v 'ramp-only' "$stage/example.rs" >"$example"
  build "$stage/before.bin"
  restore
  trap 'rm -rf "$stage"' EXIT
fi
build "$stage/after.bin"

refs() { # BINARY CASE CALLS -> total instructions
  valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null "$1" "$2" "$3" 2>&1 \
    | sed -n 's/.*I *refs: *//p' | tr -d ','
}
per_call() { # BINARY CASE -> instructions per call
  local one two
  one=$(refs "$1" "$2" "$n")
  two=$(refs "$1" "$2" $((2 * n)))
  awk -v a="$one" -v b="$two" -v n="$n" 'BEGIN { printf "%.2f", (b - a) / n }'
}

if [ -n "${BEFORE:-}" ]; then
  printf '| case | instructions per call, %s | instructions per call, now |\n|---|---:|---:|\n' "$BEFORE"
else
  printf '| case | instructions per call |\n|---|---:|\n'
fi
for case in acquire consecutive count_window recovered; do
  if [ -n "${BEFORE:-}" ]; then
    printf '| %s | %s | %s |\n' "$case" "$(per_call "$stage/before.bin" "$case")" "$(per_call "$stage/after.bin" "$case")"
  else
    printf '| %s | %s |\n' "$case" "$(per_call "$stage/after.bin" "$case")"
  fi
done
