#!/bin/sh
# The PyPy tests: pytest under CPython (Debian's python3), each scenario a
# program run by Debian's pypy3 on the staged package (its cffi backend).
# Called by tools/test-all.sh.
set -eu
: "${PYTHON3:=python3}"
if ! "$PYTHON3" -c 'import pytest' 2>/dev/null; then
  echo "pypy tests: pytest is missing for $PYTHON3 (install python3-pytest)" >&2
  exit 1
fi
exec "$PYTHON3" -m pytest -p no:cacheprovider -q -rs "${top_srcdir:-.}/tests/pypy"
