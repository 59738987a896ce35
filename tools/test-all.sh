#!/bin/sh
# Runs every test: the unit tests (Check), the ABI, header and format checks,
# the end-to-end tests (real watcher, real stalling processes), then
# 'make distcheck', which builds and tests a release tarball from scratch.
set -eu
cd "$(dirname "$0")/.."
[ -x configure ] || ./autogen.sh >/dev/null
mkdir -p build
cd build
[ -f Makefile ] || ../configure -q --enable-werror
make -j"$(nproc)" >/dev/null
status=0
make -j"$(nproc)" check || status=$?
for log in tests/*.log tests/e2e/*.log; do
  [ -f "$log" ] || continue
  case "$log" in */test-suite.log) continue ;; esac
  echo "---- $log"
  tail -n 15 "$log"
done
[ "$status" = 0 ] || exit "$status"
make -j"$(nproc)" distcheck DISTCHECK_CONFIGURE_FLAGS=--enable-werror >distcheck.log 2>&1 ||
  { tail -n 60 distcheck.log; echo "distcheck failed (build/distcheck.log)"; exit 1; }
grep -A3 'archives ready for distribution' distcheck.log || true
