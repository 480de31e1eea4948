#!/usr/bin/env bash
# Compiles circuit._speedups (bindings/python/src/_speedups.c, the optional
# `with breaker:` accelerator) for the python3 in use, with warnings as
# errors, the way the wheel's build does it: the limited API of CPython 3.8
# (the source defines Py_LIMITED_API), so the file name carries the abi3
# suffix. The wheel builds it through setuptools (pyproject.toml); this is
# for running from the source tree (ci/bench-python.sh, pytest with
# PYTHONPATH=bindings/python) and for ci/python.sh's warnings check.
#
#   bash ci/speedups.sh          # -> bindings/python/circuit/_speedups.abi3.so (git-ignored)
#   bash ci/speedups.sh OUT.so   # -> OUT.so
#   SPEEDUPS_CFLAGS="-fsanitize=address,undefined ..." bash ci/speedups.sh OUT.so
#                                # extra flags (ci/python.sh: a sanitizer build)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-bindings/python/circuit/_speedups.abi3.so}"
inc=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
if [ ! -f "$inc/Python.h" ]; then
  echo "speedups: no Python.h in $inc (Debian: apt-get install python3-dev; ci/deps.sh does)" >&2
  exit 1
fi
# shellcheck disable=SC2086 # SPEEDUPS_CFLAGS is a list of flags
"${CC:-cc}" -shared -fPIC -O3 -fwrapv -DNDEBUG -Wall -Wextra -Werror ${SPEEDUPS_CFLAGS:-} -I"$inc" \
  bindings/python/src/_speedups.c -o "$out"
