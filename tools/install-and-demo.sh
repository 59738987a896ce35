#!/bin/sh
# Installs what is missing (Debian packages), builds perpetuo in ./build, and
# runs the demo: a small C program that stalls once while a watcher reports it.
set -eu
cd "$(dirname "$0")/.."

# Toolchain and C libraries for the library and the watcher; Python's headers
# for the Python package; Check, pytest and trio for the tests; venv for the
# packaging tests (which take the other Python tools from PyPI);
# clang-format for the format check; dpkg-dev, patch and CPython's build
# dependencies for the GIL patch's interpreter (tools/build-patched-python.sh);
# valgrind for the benchmark of that patch's cost (callgrind counts);
# python3-cffi and pypy3 for the cffi backend and its tests on PyPy.
packages="build-essential autoconf automake libtool pkg-config libuv1-dev
  libunwind-dev libdw-dev check clang-format python3 python3-dev python3-pytest
  python3-trio python3-venv util-linux dpkg-dev patch libffi-dev libssl-dev
  zlib1g-dev libbz2-dev liblzma-dev valgrind python3-cffi pypy3"

missing=
for p in $packages; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
    missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "==> installing:$missing"
  as_root=
  [ "$(id -u)" = 0 ] || as_root=sudo
  $as_root apt-get update -q
  DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -q $missing
fi

echo "==> building"
[ -x configure ] || ./autogen.sh >/dev/null
mkdir -p build
cd build
[ -f Makefile ] || ../configure -q --enable-werror PYTHON=/usr/bin/python3
make -j"$(nproc)" >/dev/null

echo "==> demo: a C program stalls once for 0.6 s; its watcher reports it as it happens"
make -s demo
