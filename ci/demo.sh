#!/usr/bin/env bash
# `make demo`: builds libcircuit and the demo's C and Go offer services, then
# runs demo/run.py (a flaky partner, offer services in C, Python and Go, and
# Redis fleet sync when redis-server is installed). Arguments go to run.py:
#   bash ci/demo.sh --duration 30 --keep-running --no-redis
# `bash ci/demo.sh --build-only` builds and stops there (ci/demo-test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build="$root/demo/.build"
target="${CARGO_TARGET_DIR:-$root/target}"

echo "demo: building libcircuit (cargo build --release -p circuit-ffi)"
cargo build --quiet --release -p circuit-ffi

# The services load a private copy of the library, so a rebuild of
# target/release while the demo runs cannot change it under them. The
# loader looks for the SONAME, libcircuit.so.0.
mkdir -p "$build/lib"
cp "$target/release/libcircuit.so" "$build/lib/.libcircuit.so.tmp"
mv -f "$build/lib/.libcircuit.so.tmp" "$build/lib/libcircuit.so"
ln -sf libcircuit.so "$build/lib/libcircuit.so.0"

echo "demo: building the C service (cc)"
cc -std=c11 -O2 -Wall -Wextra -pthread -I"$root/include" demo/c/offer_service.c \
  -L"$build/lib" -lcircuit -Wl,-rpath,"$build/lib" -o "$build/offer_service_c"

echo "demo: building the Go service (go build)"
(
  cd demo/go
  # Standard library and bindings/go only (a replace directive): no module
  # proxy, no toolchain download. CGO_LDFLAGS comes before the binding's own
  # flags, so the private copy of the library is the one found and loaded.
  GOPROXY=off GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=1 \
    CGO_LDFLAGS="-L$build/lib -Wl,-rpath,$build/lib" \
    go build -tags circuit_shared -o "$build/offer_service_go" .
)

if [ "${1:-}" = "--build-only" ]; then
  exit 0
fi
python3 demo/run.py "$@"
# Then the host-shared scene: 8 worker processes and a failing partner, with
# a breaker per process and with one breaker shared through a segment.
python3 demo/host_shared.py
