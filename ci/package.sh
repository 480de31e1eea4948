#!/usr/bin/env bash
# The crates as crates.io would get them:
#  1. every published crate's rust-version is at least that of everything it
#     builds with (ci/msrv.py; std APIs are checked by clippy's
#     incompatible_msrv lint in ci/lint.sh);
#  2. `cargo package` of every published crate (circuit-core, -ffi, -sync,
#     -cli, -tower, -otel; benches and fuzz are publish = false), which builds each from
#     its packaged sources alone, workspace dependencies packaged together.
#     The verification reuses target/ (target/package).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 ci/msrv.py

# cargo verifies each package against the others as registry crates: it
# extracts them under $CARGO_HOME/registry/src/-<hash>/ and builds them in
# target/debug, and it treats a registry crate of a known name and version
# as unchanged (never extracted or rebuilt again). A crate changed since an
# earlier run without a version bump would be verified against its stale
# copy (a new public item of circuit-core "missing" for circuit-otel). Drop
# our crates' extracted copies and build fingerprints first.
for overlay in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/-*/; do
  [ -d "$overlay" ] && rm -rf "$overlay"circuit-*
done
rm -rf "${CARGO_TARGET_DIR:-target}"/debug/.fingerprint/circuit-*

# --allow-dirty: `make test` may run on a working tree with changes; the
# packaged files are still exactly what `cargo publish` would upload.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! cargo package --workspace --exclude circuit-benches --exclude circuit-fuzz \
    --locked --allow-dirty >"$log" 2>&1; then
  cat "$log"
  echo "package: cargo package failed" >&2
  exit 1
fi
grep -E '^ *(Packaged|Verifying)' "$log" | sed 's/^ */  /'
for c in circuit-core circuit-ffi circuit-sync circuit-cli circuit-tower circuit-otel; do
  crate=$(ls target/package/$c-*.crate 2>/dev/null | head -n1)
  [ -n "$crate" ] || { echo "package: no $c .crate" >&2; exit 1; }
  # Each package carries its readme and both licence texts.
  files=$(tar -tzf "$crate")
  for f in README.md LICENSE-MIT LICENSE-APACHE; do
    grep -qx "${c}-[0-9.]*/$f" <<<"$files" || { echo "package: $crate lacks $f" >&2; exit 1; }
  done
done
echo "package: cargo package of circuit-core, -ffi, -sync, -cli, -tower, -otel: ok"
