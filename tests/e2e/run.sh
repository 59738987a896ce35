#!/bin/sh
# Runs the end-to-end tests (real watcher, real target processes) under
# pytest. Called by 'make check', which exports abs_top_builddir and PYTHON3.
set -e
: "${PYTHON3:=python3}"
if ! "$PYTHON3" -c 'import pytest' 2>/dev/null; then
  echo "e2e: pytest is missing for $PYTHON3 (install python3-pytest)" >&2
  exit 99
fi
exec "$PYTHON3" -m pytest -p no:cacheprovider -q -rs "${top_srcdir:-.}/tests/e2e"
