#!/bin/sh
# The GIL patch, end to end: builds CPython 3.11 from Debian's source with
# patches/cpython-3.11-stall-counter.patch (tools/build-patched-python.sh),
# builds the package's extension for it, runs the Python tests under it
# (tests/python/test_gil_patch.py among them, which the other interpreters
# skip), then the patched interpreter's own test_sys and test_threading.
# Needs the build in build/ (libperpetuo, the watcher) and build/venv
# (tools/python-venv.sh) for pytest and trio, which are pure Python and
# serve any 3.11.
set -eu
cd "$(dirname "$0")/.."
top=$PWD
build=$top/build
python=$(tools/build-patched-python.sh)
pysrc=$(dirname "$python")
venv=$(tools/python-venv.sh)
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')

stage=$build/python-patched/stage
mkdir -p "$stage/perpetuo"
src=$top/bindings/python/src/perpetuo
cp "$src"/*.py "$src"/*.pyi "$src"/py.typed "$stage/perpetuo/"
suffix=$("$python" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
# An interpreter in its build tree: its headers are the source's Include/,
# and pyconfig.h beside it.
${CC:-cc} -shared -fPIC -std=gnu11 -O2 -g -fvisibility=hidden \
  -Wall -Wextra -Werror -Wno-unused-parameter -Wno-cast-function-type \
  -I"$top/include" -I"$top/libperpetuo" -I"$pysrc/Include" -I"$pysrc" \
  "$src"/_module.c "$src"/_tracker.c "$src"/_trio.c "$src"/_layout.c \
  "$src"/_asyncio.c "$src"/_heartbeat.c "$src"/_trio_dispatch.c \
  -L"$build/libperpetuo/.libs" -lperpetuo -o "$stage/perpetuo/_perpetuo$suffix"

echo "python tests under the patched CPython ($("$python" -c 'import sys; print(sys.version.split()[0])')):"
status=0
PYTHONPATH=$stage:$site PERPETUO_PYTHON_STAGE=$stage \
  LD_LIBRARY_PATH=$build/libperpetuo/.libs \
  PERPETUO_WATCHER=$build/libperpetuo/watcher/perpetuo \
  abs_top_builddir=$build \
  "$python" -m pytest -p no:cacheprovider -q -rs "$top/tests/python" ||
  status=1

echo "the patched interpreter's own test_sys and test_threading:"
"$python" -m test -q test_sys test_threading || status=1
exit $status
