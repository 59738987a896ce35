#!/bin/sh
# Creates (once) build/venv-original: Debian's python3 with the original
# perpetuo from PyPI (0.7.4, whose watcher is the `perpetuo` console script
# in the venv's bin) and the same trio version as build/venv, for the
# side-by-side benchmarks. Prints the venv's path.
set -eu
cd "$(dirname "$0")/.."
main=$PWD/build/venv
if ! "$main/bin/python" -c 'import trio' 2>/dev/null; then
  main=$(sh tools/python-venv.sh)
fi
trio=$("$main/bin/python" -c 'import trio; print(trio.__version__)')
venv=$PWD/build/venv-original
have=$("$venv/bin/python" -c 'import importlib.metadata as m, trio
print(m.version("perpetuo"), trio.__version__)' 2>/dev/null || true)
if [ ! -x "$venv/bin/perpetuo" ] || [ "$have" != "0.7.4 $trio" ]; then
  rm -rf "$venv"
  /usr/bin/python3 -m venv "$venv" >&2
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
  "$venv/bin/python" -m pip install -q "perpetuo==0.7.4" "trio==$trio" >&2
fi
echo "$venv"
