#!/bin/sh
# Builds the self-contained wheel of the Python package (libperpetuo and the
# watcher inside) into build/wheel/, then repairs it with auditwheel into a
# manylinux wheel in build/wheelhouse/ (the libraries the watcher uses,
# libuv, libunwind and libdw, vendored). Prints the repaired wheel's path last.
set -eu
cd "$(dirname "$0")/.."
venv=$(tools/python-venv.sh)
rm -rf build/wheel build/wheelhouse bindings/python/build
PERPETUO_BUNDLE=1 "$venv/bin/python" -m build --no-isolation --wheel \
  --outdir build/wheel bindings/python >build/wheel-build.log 2>&1 ||
  { tail -n 40 build/wheel-build.log; echo "building the wheel failed (build/wheel-build.log)"; exit 1; }
wheel=$(ls build/wheel/perpetuo-*.whl)
"$venv/bin/auditwheel" show "$wheel" >&2
PATH="$venv/bin:$PATH" "$venv/bin/auditwheel" repair -w build/wheelhouse "$wheel" >&2
rm -rf bindings/python/build bindings/python/src/perpetuo.egg-info
ls "$PWD"/build/wheelhouse/perpetuo-*manylinux*.whl
