#!/usr/bin/env bash
# The Go binding (bindings/go, package circuit over cgo):
#  1. gofmt and go vet;
#  2. the test suite under the race detector (static link, the default;
#     the `circuit` CLI is built for it, CIRCUIT_CLI: a test publishes a
#     fleet config with it);
#  3. the same package linked against libcircuit.so (-tags circuit_shared)
#     and against an installed library found by pkg-config
#     (-tags circuit_pkgconfig), a short smoke run each;
#  4. the example examples/flaky, bounded by a timeout;
#  5. outside the repository: a new module in a temporary directory uses a
#     copy of bindings/go through a `replace` directive and builds
#     examples/installed with -tags circuit_pkgconfig against the library
#     `ci/install.sh` put in a temporary prefix (GOPROXY=off), then runs it;
#     the binary must name no path of the source tree.
# Standard library only: no module proxy is needed or used.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

export GOPROXY=off GOTOOLCHAIN=local GOFLAGS= CGO_ENABLED=1
# A writable build cache even where $HOME is not.
if ! { mkdir -p "$(go env GOCACHE)" && [ -w "$(go env GOCACHE)" ]; } 2>/dev/null; then
  export GOCACHE="$root/target/go/cache"
fi
if ! { mkdir -p "$(go env GOPATH)" && [ -w "$(go env GOPATH)" ]; } 2>/dev/null; then
  export GOPATH="$root/target/go/path"
fi

target_dir="${CARGO_TARGET_DIR:-target}"
case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
cargo build --release --quiet -p circuit-ffi
# The operator CLI, for the test that publishes a fleet config with it.
cargo build --release --quiet -p circuit-cli
export CIRCUIT_CLI="$target_dir/release/circuit"
if [ "$target_dir" != "$root/target" ]; then
  # The package looks in target/release first, then here.
  export CGO_LDFLAGS="-L$target_dir/release ${CGO_LDFLAGS:-}"
fi

cd bindings/go
echo "go: $(go version)"

# ---- 1. format and vet ---------------------------------------------------------
unformatted=$(gofmt -l .)
[ -z "$unformatted" ] || { echo "go: not gofmt-formatted: $unformatted" >&2; exit 1; }
go vet ./...
echo "go: gofmt, go vet: ok"

# ---- 2. tests under the race detector ------------------------------------------
log=$(mktemp)
trap 'rm -f "$log"' EXIT
start=$(date +%s)
if ! go test -race -count=1 -v ./... >"$log" 2>&1; then
  cat "$log"
  echo "go: go test -race failed" >&2
  exit 1
fi
grep -E '^(--- (PASS|FAIL|SKIP)|ok |FAIL)' "$log" | sed 's/^/  /'
echo "go: go test -race: $(grep -c '^--- PASS' "$log") tests passed in $(( $(date +%s) - start ))s"

# ---- 3. the other link modes -----------------------------------------------------
smoke='TestTripAndRecoveryOnManualClock|TestUseAfterClose'
# libcircuit.so's SONAME is libcircuit.so.0: the loader looks for that name.
ln -sfn libcircuit.so "$target_dir/release/libcircuit.so.0"
if [ "$target_dir" = "$root/target" ]; then
  go test -tags circuit_shared -count=1 -run "$smoke" . >/dev/null
  go test -tags circuit_shared -count=1 -c -o "$log.bin" . >/dev/null
  libs=$(ldd "$log.bin")
  grep -q 'libcircuit.so.0 => .*target/release' <<<"$libs" || { echo "go: -tags circuit_shared did not link libcircuit.so" >&2; exit 1; }
  rm -f "$log.bin"
  echo "go: -tags circuit_shared (target/release/libcircuit.so): ok"
fi
prefix=$(mktemp -d)
outside=$(mktemp -d)
trap 'rm -rf "$log" "$prefix" "$outside"' EXIT
bash "$root/ci/install.sh" "$prefix" >/dev/null
# Go (1.19 at least) leaves pkg-config's output out of its build cache key:
# a package built against an earlier temporary prefix would be reused with
# that prefix's -L. A define naming the prefix (unused by the code) keys the
# cache to it; the flags themselves still come from pkg-config.
export CGO_CPPFLAGS="-DCIRCUIT_GO_PREFIX=$prefix"
PKG_CONFIG_PATH="$prefix/lib/pkgconfig" LD_LIBRARY_PATH="$prefix/lib" \
  go test -tags circuit_pkgconfig -count=1 -run "$smoke" . >/dev/null
# The slim library (make install SLIM=1): same package, no fleet sync.
slim_prefix="$outside-slim"
mkdir "$slim_prefix"
trap 'rm -rf "$log" "$prefix" "$outside" "$slim_prefix"' EXIT
SLIM=1 bash "$root/ci/install.sh" "$slim_prefix" >/dev/null
CGO_CPPFLAGS="-DCIRCUIT_GO_PREFIX=$slim_prefix" CIRCUIT_EXPECT_SLIM=1 \
  PKG_CONFIG_PATH="$slim_prefix/lib/pkgconfig" LD_LIBRARY_PATH="$slim_prefix/lib" \
  go test -tags circuit_pkgconfig -count=1 -run "$smoke|TestSyncAvailableMatchesTheLibrary" . >/dev/null
echo "go: -tags circuit_pkgconfig (make install, pkg-config circuit; full and SLIM=1): ok"

# ---- 4. the example ---------------------------------------------------------------
go build -o "$log.flaky" ./examples/flaky
timeout 60 "$log.flaky" -duration 2s | sed 's/^/  /'
rm -f "$log.flaky"
echo "go: examples/flaky: ok"

# ---- 5. a program outside the repository ------------------------------------------
# What a user does (README "Go outside this repository"): copy the package
# into their tree, require it under its module path and `replace` it with
# the copy; link the installed library through pkg-config.
cp -r "$root/bindings/go" "$outside/circuit"
mkdir "$outside/app"
cp "$root/bindings/go/examples/installed/main.go" "$outside/app/main.go"
(
  cd "$outside/app"
  go mod init example.com/app >/dev/null 2>&1
  go mod edit -require=example.invalid/circuit@v0.0.0 -replace=example.invalid/circuit=../circuit
  GOFLAGS=-mod=mod PKG_CONFIG_PATH="$prefix/lib/pkgconfig" CGO_LDFLAGS= \
    go build -tags circuit_pkgconfig -o app .
  if strings app | grep -F "$root" >/dev/null; then
    echo "go: the program built outside the repository names $root" >&2; exit 1
  fi
  libs=$(LD_LIBRARY_PATH="$prefix/lib" ldd app)
  grep -qF "libcircuit.so.0 => $prefix/lib/" <<<"$libs" \
    || { echo "go: the program does not load the installed libcircuit: $libs" >&2; exit 1; }
  LD_LIBRARY_PATH="$prefix/lib" ./app | sed 's/^/  /'
  [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "go: the program outside the repository failed" >&2; exit 1; }
)
echo "go: a module outside the repository (replace => a copy of bindings/go) built against the installed library: ok"
