#!/bin/sh
# The Python package's tests, with the interpreter the package was built for
# (Debian's python3 and its trio). Called by 'make check'.
set -eu
: "${PYTHON:=python3}"
if ! "$PYTHON" -c 'import pytest' 2>/dev/null; then
  echo "python tests: pytest is missing for $PYTHON (install python3-pytest)" >&2
  exit 1
fi
export PYTHONPATH="$abs_top_builddir/bindings/python/stage"
export LD_LIBRARY_PATH="$abs_top_builddir/libperpetuo/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
if [ -n "${SANITIZER_PRELOAD:-}" ]; then
  # The interpreter is not sanitized: load the runtimes for the extension,
  # and leave its leaks (CPython frees little at exit) out of the report.
  export LD_PRELOAD="$SANITIZER_PRELOAD"
  export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
fi
exec "$PYTHON" -m pytest -p no:cacheprovider -q -rs "${top_srcdir:-.}/tests/python"
