#!/usr/bin/env bash
# Installs libcircuit into a prefix (`make install PREFIX=...`):
#   $PREFIX/lib/libcircuit.so.X.Y.Z, libcircuit.so.X -> it, libcircuit.so -> libcircuit.so.X
#   $PREFIX/lib/libcircuit.a
#   $PREFIX/include/circuit.h
#   $PREFIX/lib/pkgconfig/circuit.pc
#   $PREFIX/share/doc/circuit/examples/{c,python,go}/  (the examples' sources)
#   $PREFIX/share/doc/circuit/{README.md,CHANGELOG.md,LICENSE-MIT,LICENSE-APACHE}
# DESTDIR is honoured (files go to $DESTDIR$PREFIX, circuit.pc names $PREFIX).
# SLIM=1 installs the slim library instead (circuit-ffi without its `sync`
# feature: no redis, rustls or ring; the sync functions answer
# CIRCUIT_RESULT_NOT_BUILT), built in $CARGO_TARGET_DIR/slim so that it never
# replaces the full library in target/release. Builds the library first (a
# no-op when it is up to date).
set -euo pipefail
cd "$(dirname "$0")/.."

prefix="${1:-${PREFIX:-/usr/local}}"
case "$prefix" in
  /*) ;;
  *) echo "install: PREFIX must be an absolute path, not '$prefix'" >&2; exit 2 ;;
esac
dest="${DESTDIR:-}$prefix"

target_dir="${CARGO_TARGET_DIR:-target}"
case "${SLIM:-}" in
  ""|0) kind=full
        cargo build --release --quiet -p circuit-ffi ;;
  1)    kind=slim
        target_dir="$target_dir/slim"
        CARGO_TARGET_DIR="$target_dir" cargo build --release --quiet -p circuit-ffi --no-default-features ;;
  *)    echo "install: SLIM must be 1 or empty, not '$SLIM'" >&2; exit 2 ;;
esac
so="$target_dir/release/libcircuit.so"
a="$target_dir/release/libcircuit.a"

# The version of the package (workspace.package.version in Cargo.toml).
version=$(awk -F'"' '/^\[workspace.package\]/{s=1;next} /^\[/{s=0} s && /^version *=/{print $2; exit}' Cargo.toml)
major="${version%%.*}"
[ -n "$version" ] || { echo "install: no version in Cargo.toml" >&2; exit 1; }
soname=$(readelf -d "$so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
if [ "$soname" != "libcircuit.so.$major" ]; then
  echo "install: $so has SONAME '$soname', expected libcircuit.so.$major" >&2
  exit 1
fi

# What libcircuit.a needs from the system, as printed by
# `rustc --print native-static-libs` for x86_64/aarch64 Linux glibc.
libs_private="-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc"

install -d "$dest/lib" "$dest/lib/pkgconfig" "$dest/include"
install -m 0755 "$so" "$dest/lib/libcircuit.so.$version"
ln -sfn "libcircuit.so.$version" "$dest/lib/libcircuit.so.$major"
ln -sfn "libcircuit.so.$major" "$dest/lib/libcircuit.so"
install -m 0644 "$a" "$dest/lib/libcircuit.a"
install -m 0644 include/circuit.h "$dest/include/circuit.h"
sed -e "s|@PREFIX@|$prefix|g" -e "s|@VERSION@|$version|g" \
    -e "s|@LIBS_PRIVATE@|$libs_private|g" ffi/circuit.pc.in > "$dest/lib/pkgconfig/circuit.pc"
chmod 0644 "$dest/lib/pkgconfig/circuit.pc"

doc="$dest/share/doc/circuit"
install -d "$doc/examples/c" "$doc/examples/python" "$doc/examples/go"
install -m 0644 README.md CHANGELOG.md LICENSE-MIT LICENSE-APACHE "$doc/"
install -m 0644 bindings/c/examples/*.c "$doc/examples/c/"
install -m 0644 bindings/python/examples/*.py "$doc/examples/python/"
for d in bindings/go/examples/*/; do
  install -d "$doc/examples/go/$(basename "$d")"
  install -m 0644 "$d"*.go "$doc/examples/go/$(basename "$d")/"
done

echo "install: libcircuit $version ($kind) into $dest (lib/libcircuit.so.$version, .so.$major, .so, .a; include/circuit.h; lib/pkgconfig/circuit.pc; share/doc/circuit/examples)"
