#!/bin/sh
# Builds the Python package's extension for every CPython 3.9-3.13 on this
# machine (Debian's python3 and pyenv's builds, with their headers) and runs
# the Python tests under each, in a virtual environment of its own with
# pytest and trio from PyPI. A version that is absent is said to be skipped.
# Needs the build in build/ (libperpetuo, the watcher).
set -eu
cd "$(dirname "$0")/.."
top=$PWD
build=$top/build
matrix=$build/python-matrix
src=$top/bindings/python/src/perpetuo
mkdir -p "$matrix"
pyenv_root=${PYENV_ROOT:-$HOME/.pyenv}

interpreter() { # the python3 of version $1, or nothing
  for exe in "$pyenv_root"/versions/"$1".*/bin/python3; do
    [ -x "$exe" ] && { echo "$exe"; return; }
  done
  if [ -x /usr/bin/python3 ] &&
    [ "$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')" = "$1" ]; then
    echo /usr/bin/python3
  fi
}

status=0
for version in 3.9 3.10 3.11 3.12 3.13; do
  python=$(interpreter "$version")
  if [ -z "$python" ]; then
    echo "python $version: SKIPPED: no CPython $version on this machine"
    continue
  fi
  include=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  if [ ! -f "$include/Python.h" ]; then
    echo "python $version: SKIPPED: $python has no headers ($include)"
    continue
  fi
  suffix=$("$python" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
  stage=$matrix/$version/stage/perpetuo
  mkdir -p "$stage"
  cp "$src"/*.py "$src"/*.pyi "$src"/py.typed "$stage"/
  ${CC:-cc} -shared -fPIC -std=gnu11 -O2 -g -fvisibility=hidden \
    -Wall -Wextra -Werror -Wno-unused-parameter -Wno-cast-function-type \
    -I"$top/include" -I"$top/libperpetuo" -I"$include" \
    "$src"/_module.c "$src"/_tracker.c "$src"/_trio.c "$src"/_layout.c \
    "$src"/_asyncio.c "$src"/_heartbeat.c "$src"/_trio_dispatch.c \
    -L"$build/libperpetuo/.libs" -lperpetuo -o "$stage/_perpetuo$suffix"
  venv=$matrix/$version/venv
  if ! "$venv/bin/python" -c 'import pytest, trio' 2>/dev/null; then
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install -q pytest trio >/dev/null 2>&1 ||
      "$venv/bin/python" -m pip install -q pytest trio
  fi
  echo "python $version ($python), trio $("$venv/bin/python" -c 'import trio; print(trio.__version__)'):"
  PYTHONPATH=$matrix/$version/stage PERPETUO_PYTHON_STAGE=$matrix/$version/stage \
  LD_LIBRARY_PATH=$build/libperpetuo/.libs \
  PERPETUO_WATCHER=$build/libperpetuo/watcher/perpetuo \
  abs_top_builddir=$build \
    "$venv/bin/python" -m pytest -p no:cacheprovider -q "$top/tests/python" ||
    status=1
done
exit $status
