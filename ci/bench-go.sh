#!/usr/bin/env bash
# Go benchmarks (bindings/go/bench_test.go) against DESIGN.md section 6:
# the protected call in CLOSED with one and two goroutines, the rejection
# in OPEN, next to an empty cgo call and a mutex-protected counter measured
# in the same run; prints the table (bindings/go/internal/benchtable) with
# the ratios to the cgo call and to gobreaker v2's published figures; and
# the overhead of circuit.Transport (the http.RoundTripper) over the bare
# http.Transport on loopback, as a ratio (BenchmarkHTTPTransportOverhead).
#   COUNT=5 BENCHTIME=200ms ci/bench-go.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export GOPROXY=off GOTOOLCHAIN=local GOFLAGS= CGO_ENABLED=1
target_dir="${CARGO_TARGET_DIR:-target}"
case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
cargo build --release --quiet -p circuit-ffi
if [ "$target_dir" != "$root/target" ]; then
  export CGO_LDFLAGS="-L$target_dir/release ${CGO_LDFLAGS:-}"
fi
cd bindings/go
raw="$target_dir/go-bench.txt"
mkdir -p "$(dirname "$raw")"
go test -run '^$' -bench . -cpu 1,2 -count "${COUNT:-5}" -benchtime "${BENCHTIME:-200ms}" . | tee "$raw" | grep -E '^(goos|goarch|cpu):' || true
echo "bench-go: raw output in $raw"
go run ./internal/benchtable <"$raw"
