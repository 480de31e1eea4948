#!/usr/bin/env bash
# Installs libcircuit into a prefix (`make install PREFIX=...`):
#   $PREFIX/lib/libcircuit.so.X.Y.Z, libcircuit.so.X -> it, libcircuit.so -> libcircuit.so.X
#   $PREFIX/lib/libcircuit.a
#   $PREFIX/include/circuit.h
#   $PREFIX/lib/pkgconfig/circuit.pc
# DESTDIR is honoured (files go to $DESTDIR$PREFIX, circuit.pc names $PREFIX).
# Builds the release library first when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

prefix="${1:-${PREFIX:-/usr/local}}"
case "$prefix" in
  /*) ;;
  *) echo "install: PREFIX must be an absolute path, not '$prefix'" >&2; exit 2 ;;
esac
dest="${DESTDIR:-}$prefix"

target_dir="${CARGO_TARGET_DIR:-target}"
so="$target_dir/release/libcircuit.so"
a="$target_dir/release/libcircuit.a"
if [ ! -f "$so" ] || [ ! -f "$a" ]; then
  cargo build --release --quiet -p circuit-ffi
fi

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

echo "install: libcircuit $version into $dest (lib/libcircuit.so.$version, .so.$major, .so, .a; include/circuit.h; lib/pkgconfig/circuit.pc)"
