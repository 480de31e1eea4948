#!/usr/bin/env bash
# The Python package (bindings/python, distribution `libcircuit`, import
# `circuit`) as users get it:
#  1. build the sdist (it must carry the Rust workspace, through the
#     `rust` link, and nothing outside it), then the wheel from that sdist
#     with its own backend (setuptools-rust compiles circuit-ffi with cargo
#     into target/, the workspace's target directory, so only what changed
#     is rebuilt; a file missing from the sdist fails the build) and repair
#     it with auditwheel into a manylinux wheel; it must carry a platform
#     tag and the library;
#  2. install it into a fresh virtual environment with the test
#     dependencies (pytest, prometheus_client, httpx and requests for the
#     HTTP integrations, opentelemetry-sdk for circuit.otel) from PyPI;
#  3. `mypy --strict` on the package (config in pyproject.toml);
#  4. the whole pytest suite with that environment's python, from
#     bindings/python/tests (where the source package is not importable),
#     with CIRCUIT_LIBRARY unset: the installed package must load the
#     library it carries (test_abi checks it was the one imported); the
#     `circuit` CLI is built for it (CIRCUIT_CLI: test_sync publishes a
#     fleet config with it).
#     The wheel must carry the optional accelerator circuit._speedups
#     (its build is allowed to fail for users; here that is an error) and
#     the suite checks it is the path in use (CIRCUIT_EXPECT_ACCELERATED);
#     the `with` tests then run again on the pure-Python fallback
#     (CIRCUIT_PURE_PYTHON=1), and the accelerator's own tests once more
#     with it built under AddressSanitizer and UBSan (the source package
#     and that build, the installed wheel's library);
#  5. the ABI tests against the slim library (circuit-ffi without `sync`,
#     as `make install SLIM=1` installs it) through CIRCUIT_LIBRARY: it has
#     no CIRCUIT_FEATURE_SYNC and Registry.sync raises NOT_BUILT; the
#     accelerator's tests with it (bound to the library loaded).
#
#   bash ci/python.sh            # everything
#   bash ci/python.sh -k fork    # extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

fail() { echo "python: $*" >&2; exit 1; }

target_dir="${CARGO_TARGET_DIR:-target}"
case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
work="$target_dir/python"
rm -rf "$work"
mkdir -p "$work/raw" "$work/dist"
pipq=(--quiet --disable-pip-version-check)

python3 -m auditwheel --version >/dev/null 2>&1 || fail "auditwheel missing (ci/deps.sh installs it)"
python3 -m mypy --version >/dev/null 2>&1 || fail "mypy missing (ci/deps.sh installs it)"

# ---- 1. the wheel ------------------------------------------------------------------
start=$(date +%s)
python3 -m build --version >/dev/null 2>&1 || fail "build missing (ci/deps.sh installs it)"
# From $work: `python3 -m build` inside bindings/python would import its
# build/ folder instead of the build package.
(cd "$work" && python3 -m build --sdist --outdir "$work/sdist" "$root/bindings/python") >"$work/sdist.log" 2>&1 \
  || { cat "$work/sdist.log"; fail "building the sdist failed"; }
sdist=$(ls "$work"/sdist/libcircuit-*.tar.gz)
listing=$(tar tzf "$sdist")
for f in rust/Cargo.toml rust/Cargo.lock rust/ffi/Cargo.toml rust/ffi/src/lib.rs rust/core/src/lib.rs \
         rust/sync/src/lib.rs circuit/__init__.py circuit/py.typed src/_speedups.c circuit/_speedups.pyi; do
  grep -qx "libcircuit-[^/]*/$f" <<<"$listing" || fail "the sdist lacks $f"
done
stray=$(grep -E '/(target|bindings|demo|\.git)/' <<<"$listing" | head -n3 || true)
[ -z "$stray" ] || fail "the sdist carries what it should not: $stray"
CARGO_TARGET_DIR="$target_dir" PIP_ROOT_USER_ACTION=ignore \
  python3 -m pip wheel "${pipq[@]}" --no-deps --wheel-dir "$work/raw" "$sdist" >"$work/build.log" 2>&1 \
  || { cat "$work/build.log"; fail "building the wheel from the sdist failed"; }
echo "python: sdist $(basename "$sdist"): $(wc -l <<<"$listing") files, $(du -k "$sdist" | cut -f1) KiB"
raw=$(ls "$work"/raw/libcircuit-*.whl)
python3 -m auditwheel repair --wheel-dir "$work/dist" "$raw" >"$work/auditwheel.log" 2>&1 \
  || { cat "$work/auditwheel.log"; fail "auditwheel repair failed"; }
whl=$(ls "$work"/dist/libcircuit-*.whl)
name=$(basename "$whl")
case "$name" in
  *-none-any.whl|*-linux_*.whl) fail "$name has no manylinux platform tag" ;;
  *manylinux*) ;;
  *) fail "$name: unexpected tag" ;;
esac
contents=$(python3 -m zipfile -l "$whl")
grep -Eq '^circuit/libcircuit\.[a-z0-9_.-]*so ' <<<"$contents" || fail "$name does not carry circuit/libcircuit*.so"
grep -q '^circuit/py.typed ' <<<"$contents" || fail "$name does not carry circuit/py.typed"
# The optional build of the accelerator failed (setuptools only warns):
# the log says why.
grep -q '^circuit/_speedups\.abi3\.so ' <<<"$contents" \
  || { grep -i -B2 -A8 'speedups' "$work/build.log" >&2 || true; fail "$name does not carry circuit/_speedups.abi3.so"; }
# Its source compiles without a warning (as ci/bench-python.sh builds it).
bash ci/speedups.sh "$work/speedups-check.so" || fail "src/_speedups.c does not compile cleanly"
echo "python: built $name in $(( $(date +%s) - start ))s"

# ---- 2. a fresh virtual environment --------------------------------------------------
python3 -m venv "$work/venv"
py="$work/venv/bin/python"
PIP_ROOT_USER_ACTION=ignore "$py" -m pip install "${pipq[@]}" pytest prometheus_client httpx requests opentelemetry-sdk "$whl"
unset CIRCUIT_LIBRARY
where=$(cd "$work" && "$py" -c 'import circuit; print(circuit.__file__); print(circuit.library_path()); print(circuit.library_version())')
{ read -r pkg; read -r lib; read -r ver; } <<<"$where"
case "$pkg" in "$work/venv/"*) ;; *) fail "imported circuit from $pkg, not the virtual environment" ;; esac
case "$lib" in "$(dirname "$pkg")/libcircuit"*) ;; *) fail "the installed package loaded $lib, not the library it carries" ;; esac
echo "python: installed into a fresh venv: import circuit -> $pkg, libcircuit $ver from $(basename "$lib")"

# ---- 3. types -----------------------------------------------------------------------
(cd bindings/python && python3 -m mypy --no-error-summary) || fail "mypy --strict found errors"
echo "python: mypy --strict: no issues"

# ---- 4. the suite against the installed wheel ----------------------------------------
# From bindings/python/tests (rootdir bindings/python, by its pyproject):
# neither the current folder nor the test folder holds a `circuit` package.
cd bindings/python/tests
export CIRCUIT_HEADER="$root/include/circuit.h"
# The operator CLI, for the test that publishes a fleet config with it.
(cd "$root" && cargo build --release --quiet -p circuit-cli)
export CIRCUIT_CLI="$target_dir/release/circuit"
export CIRCUIT_EXPECT_INSTALLED="$work/venv/"
set +e
CIRCUIT_EXPECT_ACCELERATED=1 "$py" -m pytest -p no:cacheprovider "$@" .
rc=$?
set -e
# pytest prints its summary line ("N passed in Ns") last; exit 5 means no
# test ran, which is a failure here.
if [ "$rc" -eq 5 ]; then echo "python: no test ran" >&2; exit 1; fi
[ "$rc" -eq 0 ] || exit "$rc"

# The `with` form on the pure-Python fallback: the modules that use it most.
if [ $# -eq 0 ]; then
  CIRCUIT_PURE_PYTHON=1 "$py" -m pytest -p no:cacheprovider -q test_speedups.py test_breaker.py \
    test_threads.py test_reconfigure.py test_registry.py test_fork.py | tail -n1 | sed 's/^/python: pure-Python `with`: /'
  [ "${PIPESTATUS[0]}" -eq 0 ] || fail "the tests of the pure-Python fallback failed"
  asan="$work/asan"
  mkdir -p "$asan"
  cp -r "$root/bindings/python/circuit" "$asan/"
  rm -f "$asan"/circuit/*.so
  (cd "$root" && SPEEDUPS_CFLAGS="-g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all" \
    bash ci/speedups.sh "$asan/circuit/_speedups.abi3.so")
  PYTHONPATH="$asan" CIRCUIT_LIBRARY="$lib" CIRCUIT_EXPECT_INSTALLED= CIRCUIT_EXPECT_ACCELERATED=1 \
    LD_PRELOAD="$(cc -print-file-name=libasan.so) $(cc -print-file-name=libubsan.so)" ASAN_OPTIONS=detect_leaks=0 \
    "$py" -m pytest -p no:cacheprovider -q test_speedups.py test_threads.py test_breaker.py \
    | tail -n1 | sed 's/^/python: accelerator under ASan+UBSan: /'
  [ "${PIPESTATUS[0]}" -eq 0 ] || fail "the accelerator's tests under ASan+UBSan failed"
fi

# ---- 5. the slim library ------------------------------------------------------------
if [ $# -eq 0 ]; then
  CARGO_TARGET_DIR="$target_dir/slim" cargo build --release --quiet -p circuit-ffi --no-default-features
  CIRCUIT_LIBRARY="$target_dir/slim/release/libcircuit.so" CIRCUIT_EXPECT_SLIM=1 CIRCUIT_EXPECT_INSTALLED= \
    "$py" -m pytest -p no:cacheprovider -q -k 'features or slim' test_abi.py | tail -n1 | sed 's/^/python: slim library: /'
  [ "${PIPESTATUS[0]}" -eq 0 ] || fail "the ABI tests against the slim library failed"
  # The accelerator calls whichever library the ctypes layer loaded.
  CIRCUIT_LIBRARY="$target_dir/slim/release/libcircuit.so" CIRCUIT_EXPECT_INSTALLED= CIRCUIT_EXPECT_ACCELERATED=1 \
    "$py" -m pytest -p no:cacheprovider -q test_speedups.py | tail -n1 | sed 's/^/python: slim library, accelerated `with`: /'
  [ "${PIPESTATUS[0]}" -eq 0 ] || fail "the accelerator's tests against the slim library failed"
fi
