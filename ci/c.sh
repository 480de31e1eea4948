#!/usr/bin/env bash
# The C ABI, checked from C:
#  1. libcircuit.so has SONAME libcircuit.so.0 and exports exactly the
#     circuit_* functions the header declares (nothing else);
#  2. bindings/c/tests (three suites) built as C11 (gcc) and as C++17 (g++) with
#     -Wall -Wextra -Wpedantic -Werror, run under AddressSanitizer
#     (LeakSanitizer on) and UndefinedBehaviorSanitizer; also clang -O2;
#     test_circuit once more with the header's inline helpers calling the
#     library every time (CIRCUIT_FAST_INLINE=0);
#     each run must end with "N passed, 0 failed";
#  3. the examples bindings/c/examples/*.c run (readme.c is the README's C block);
#  4. `ci/install.sh` into a temporary prefix, then a C program built with
#     `pkg-config --cflags --libs circuit` (shared and --static) runs; its
#     circuit_version(), the header's CIRCUIT_VERSION_* and
#     `pkg-config --modversion` must equal the crate version; the installed
#     examples' sources build from share/doc/circuit/examples. Twice: the
#     full library, and the slim one (SLIM=1: no redis, rustls or ring in
#     `cargo tree`, the same exported symbols, circuit_sync_start answers
#     CIRCUIT_RESULT_NOT_BUILT).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

target_dir="${CARGO_TARGET_DIR:-target}"
case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
cargo build --release --quiet -p circuit-ffi
so="$target_dir/release/libcircuit.so"

fail() { echo "c: $*" >&2; exit 1; }

# ---- 1. the shared object ----------------------------------------------------
soname=$(readelf -d "$so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[ "$soname" = "libcircuit.so.0" ] || fail "SONAME is '$soname', expected libcircuit.so.0"
exported=$(nm -D --defined-only "$so" | awk '{print $NF}' | sort)
stray=$(grep -v '^circuit_' <<<"$exported" || true)
[ -z "$stray" ] || fail "libcircuit.so exports symbols outside circuit_*: $(echo $stray)"
# Up to the include guard's end: the inline helpers after it (CIRCUIT_FAST_H)
# are static functions of the caller's, not symbols of the library.
declared=$(sed '/^#endif  \/\* CIRCUIT_H \*\//q' include/circuit.h | grep -oE '\bcircuit_[a-z0-9_]+\(' | tr -d '(' | sort -u)
if [ "$declared" != "$exported" ]; then
  diff <(echo "$declared") <(echo "$exported") >&2 || true
  fail "functions declared in include/circuit.h (<) and exported by libcircuit.so (>) differ"
fi
echo "c: libcircuit.so: SONAME $soname, $(wc -l <<<"$exported") symbols, all circuit_*, all declared"

# A directory where the SONAME resolves (the loader looks for libcircuit.so.0).
stage="$target_dir/c"
mkdir -p "$stage/lib" "$stage/bin"
ln -sfn "$so" "$stage/lib/libcircuit.so.0"
ln -sfn "$so" "$stage/lib/libcircuit.so"

version=$(awk -F'"' '/^\[workspace.package\]/{s=1;next} /^\[/{s=0} s && /^version *=/{print $2; exit}' Cargo.toml)

warn=(-Wall -Wextra -Wpedantic -Werror)
san=(-g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all)
inc=(-Iinclude -Ibindings/c/tests "-DCIRCUIT_EXPECTED_VERSION=\"$version\"")
link=(-L"$stage/lib" -lcircuit -pthread -Wl,-rpath,"$stage/lib")
# Four suites: the call protocol and its misuse; observability and helpers;
# active health probes; host-shared segments with forked processes.
declare -A suite_sources=(
  [test_circuit]="bindings/c/tests/test_circuit.c bindings/c/tests/double_include_a.c bindings/c/tests/double_include_b.c"
  [test_observe]="bindings/c/tests/test_observe.c"
  [test_probe]="bindings/c/tests/test_probe.c"
  [test_shared]="bindings/c/tests/test_shared.c"
)
suites=(test_circuit test_observe test_probe test_shared)

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

# Runs a test binary and checks its final "N passed, 0 failed" line.
run_suite() {
  local name=$1 bin=$2 out
  local status=0
  out=$("$bin") || status=$?
  if [ "$status" -ne 0 ]; then
    echo "$out"
    fail "$name: exited with status $status"
  fi
  echo "$out" | sed "s/^/  $name: /"
  tail -n1 <<<"$out" | grep -Eq '^[0-9]+ passed, 0 failed$' || fail "$name: no '<N> passed, 0 failed' line"
}

# ---- 2. the test suites, three ways -----------------------------------------------
for t in "${suites[@]}"; do
  # shellcheck disable=SC2206
  src=(${suite_sources[$t]})
  cc -std=c11 "${warn[@]}" "${san[@]}" "${inc[@]}" "${src[@]}" -o "$stage/bin/${t}_c_asan" "${link[@]}"
  run_suite "$t C11 gcc asan+ubsan" "$stage/bin/${t}_c_asan"

  c++ -std=c++17 -x c++ "${warn[@]}" "${san[@]}" "${inc[@]}" "${src[@]}" -x none \
    -o "$stage/bin/${t}_cxx_asan" "${link[@]}"
  run_suite "$t C++17 g++ asan+ubsan" "$stage/bin/${t}_cxx_asan"

  if command -v clang >/dev/null; then
    clang -std=c11 "${warn[@]}" -O2 "${inc[@]}" "${src[@]}" -o "$stage/bin/${t}_c_clang" "${link[@]}"
    run_suite "$t C11 clang -O2" "$stage/bin/${t}_c_clang"
  fi
done

# The header's inline helpers built without their inline check
# (CIRCUIT_FAST_INLINE=0, what compilers other than GCC and Clang get): every
# call goes to the library, with the same answers.
# shellcheck disable=SC2206
src=(${suite_sources[test_circuit]})
cc -std=c11 "${warn[@]}" "${san[@]}" "${inc[@]}" -DCIRCUIT_FAST_INLINE=0 "${src[@]}" \
  -o "$stage/bin/test_circuit_no_inline" "${link[@]}"
run_suite "test_circuit C11 gcc asan+ubsan, CIRCUIT_FAST_INLINE=0" "$stage/bin/test_circuit_no_inline"

# ---- 3. the examples (readme.c is the README's C block) -----------------------------
for ex in tcp_connect readme; do
  cc -std=c11 "${warn[@]}" "${san[@]}" -Iinclude "bindings/c/examples/$ex.c" \
    -o "$stage/bin/$ex" "${link[@]}"
  "$stage/bin/$ex" | sed "s/^/  $ex: /"
  [ "${PIPESTATUS[0]}" -eq 0 ] || fail "example $ex failed"
done

# ---- 4. install + pkg-config, full and slim ----------------------------------------
slim_tree=$(cargo tree --quiet -p circuit-ffi --no-default-features -e normal --prefix none)
if grep -Eq '^(redis|rustls|ring|circuit-sync) ' <<<"$slim_tree"; then
  fail "the slim library still links: $(grep -E '^(redis|rustls|ring|circuit-sync) ' <<<"$slim_tree" | sort -u | tr '\n' ' ')"
fi
count_deps() { cargo tree --quiet -p circuit-ffi "$@" -e normal --prefix none | sed 's/ (\*)$//' | sort -u | wc -l; }
echo "c: packages linked (cargo tree -p circuit-ffi -e normal, unique, itself included): full $(count_deps), slim $(count_deps --no-default-features)"
prefixes=()
trap 'rm -rf "${prefixes[@]}"' EXIT
for kind in full slim; do
  prefix=$(mktemp -d)
  prefixes+=("$prefix")
  if [ "$kind" = slim ]; then SLIM=1 bash ci/install.sh "$prefix" >/dev/null; else bash ci/install.sh "$prefix" >/dev/null; fi
  for f in lib/libcircuit.so.$version lib/libcircuit.so.0 lib/libcircuit.so lib/libcircuit.a \
           include/circuit.h lib/pkgconfig/circuit.pc \
           share/doc/circuit/LICENSE-MIT share/doc/circuit/LICENSE-APACHE \
           share/doc/circuit/examples/c/readme.c share/doc/circuit/examples/c/tcp_connect.c \
           share/doc/circuit/examples/python/readme_quickstart.py share/doc/circuit/examples/go/flaky/main.go; do
    [ -e "$prefix/$f" ] || fail "install ($kind): $f missing"
  done
  [ "$(readlink "$prefix/lib/libcircuit.so.0")" = "libcircuit.so.$version" ] || fail "install: bad libcircuit.so.0 link"
  [ "$(readlink "$prefix/lib/libcircuit.so")" = "libcircuit.so.0" ] || fail "install: bad libcircuit.so link"
  cmp -s include/circuit.h "$prefix/include/circuit.h" || fail "install: header differs"
  # One header for both builds: the same exported functions.
  [ "$(nm -D --defined-only "$prefix/lib/libcircuit.so.$version" | awk '{print $NF}' | sort)" = "$exported" ] \
    || fail "install ($kind): the library does not export exactly the header's functions"
  export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
  pcv=$(pkg-config --modversion circuit)
  [ "$pcv" = "$version" ] || fail "pkg-config: version $pcv, Cargo.toml says $version"
  # shellcheck disable=SC2046
  cc -std=c11 "${warn[@]}" "-DCIRCUIT_PC_VERSION=\"$pcv\"" bindings/c/tests/pkgconfig_smoke.c \
    -o "$stage/bin/smoke_shared_$kind" $(pkg-config --cflags --libs circuit)
  readelf -d "$stage/bin/smoke_shared_$kind" | grep -q 'NEEDED.*\[libcircuit.so.0\]' \
    || fail "the program does not depend on libcircuit.so.0"
  LD_LIBRARY_PATH="$prefix/lib" "$stage/bin/smoke_shared_$kind" "$kind" | sed "s/^/  shared $kind: /"
  [ "${PIPESTATUS[0]}" -eq 0 ] || fail "pkg-config shared build ($kind) failed to run"
  # shellcheck disable=SC2046
  cc -std=c11 "${warn[@]}" "-DCIRCUIT_PC_VERSION=\"$pcv\"" bindings/c/tests/pkgconfig_smoke.c \
    -o "$stage/bin/smoke_static_$kind" \
    $(pkg-config --cflags circuit) "$prefix/lib/libcircuit.a" $(pkg-config --static --libs-only-other --libs-only-l circuit | sed 's/-lcircuit//')
  if readelf -d "$stage/bin/smoke_static_$kind" | grep -q 'libcircuit'; then
    fail "the static build still needs libcircuit.so"
  fi
  "$stage/bin/smoke_static_$kind" "$kind" | sed "s/^/  static $kind: /"
  [ "${PIPESTATUS[0]}" -eq 0 ] || fail "static build ($kind) failed to run"
  # The installed examples' sources build against the installed library.
  for ex in "$prefix"/share/doc/circuit/examples/c/*.c; do
    # shellcheck disable=SC2046
    cc -std=c11 "${warn[@]}" "$ex" -o "$stage/bin/installed_$(basename "$ex" .c)" $(pkg-config --cflags --libs circuit) \
      || fail "installed example $ex does not build"
  done
  strip -o "$stage/lib/libcircuit-$kind.stripped.so" "$prefix/lib/libcircuit.so.$version"
  size=$(stat -c %s "$stage/lib/libcircuit-$kind.stripped.so")
  echo "c: $kind library: $size bytes stripped"
done
echo "c: install into temporary prefixes (full, slim) and pkg-config builds (shared, static) ok"
