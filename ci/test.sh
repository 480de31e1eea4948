#!/usr/bin/env bash
# The README's test command runs this: every check, one script per concern.
# Prints a per-stage timing table at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

stages=(lint rust loom)
for s in header package c python go redis fuzz tsan demo-test; do
  [ -f "ci/$s.sh" ] && stages+=("$s")
done

declare -A took
for s in "${stages[@]}"; do
  echo "=== ci/$s.sh"
  start=$(date +%s)
  bash "ci/$s.sh"
  took[$s]=$(( $(date +%s) - start ))
done

echo
echo "stage      seconds"
for s in "${stages[@]}"; do printf '%-10s %7s\n' "$s" "${took[$s]}"; done
