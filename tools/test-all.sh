#!/bin/sh
# Runs every test: the unit tests (Check), the ABI, header and format checks,
# the end-to-end tests (real watcher, real stalling processes), the Python
# tests under every CPython present and under one with the GIL patch, then the same
# suite once more built with AddressSanitizer + UndefinedBehaviorSanitizer,
# then 'make distcheck', which builds and tests a release tarball from scratch.
set -eu
cd "$(dirname "$0")/.."
[ -x configure ] || ./autogen.sh >/dev/null
jobs=$(nproc)

show_logs() {
  for log in tests/*.log tests/e2e/*.log; do
    [ -f "$log" ] || continue
    case "$log" in */test-suite.log) continue ;; esac
    echo "---- $log"
    tail -n 15 "$log"
  done
}

# The Python tools from PyPI, py-spy among them: the stack tests compare
# their frames with py-spy's wherever they run.
venv=$(tools/python-venv.sh)
PERPETUO_PYSPY=$venv/bin/py-spy
export PERPETUO_PYSPY

mkdir -p build
cd build
[ -f Makefile ] || ../configure -q --enable-werror PYTHON=/usr/bin/python3
make -j"$jobs" >/dev/null
status=0
make -j"$jobs" check || status=$?
show_logs
[ "$status" = 0 ] || exit "$status"
cd ..

# The Python package's tests once more, with the current trio from PyPI in a
# virtual environment (make check ran them with Debian's python3-trio).
echo "python tests with trio $("$venv/bin/python" -c 'import trio; print(trio.__version__)') from PyPI:"
PYTHON=$venv/bin/python abs_top_builddir=$PWD/build top_srcdir=$PWD \
  PERPETUO_WATCHER=$PWD/build/libperpetuo/watcher/perpetuo \
  sh tests/python/run.sh

# Once more on the cffi backend (Debian's python3-cffi), then the PyPy
# tests: Debian's pypy3 runs the package on that backend, with Debian's trio.
echo "python tests on the cffi backend:"
PERPETUO_BACKEND=cffi PYTHON=/usr/bin/python3 abs_top_builddir=$PWD/build \
  top_srcdir=$PWD PERPETUO_WATCHER=$PWD/build/libperpetuo/watcher/perpetuo \
  sh tests/python/run.sh
echo "pypy tests:"
PYTHON3=/usr/bin/python3 abs_top_builddir=$PWD/build top_srcdir=$PWD \
  PERPETUO_WATCHER=$PWD/build/libperpetuo/watcher/perpetuo \
  sh tests/pypy/run.sh

# The same tests under every CPython 3.9-3.13 on the machine, each with the
# extension built for it.
tools/python-matrix.sh

# The GIL patch: CPython 3.11 from Debian's source with it, the Python tests
# under it (the patch's own among them), and its own test_sys and
# test_threading.
tools/python-patched-tests.sh

# The package as users install it: the wheel, and pip against the library.
tests/packaging/run.sh

# Sanitized: every process of the suite (watchers, targets, unit tests)
# writes any report into $reports; one report fails the run, whatever the
# test that provoked it concluded.
mkdir -p build-sanitizers
cd build-sanitizers
[ -f Makefile ] || ../configure -q --enable-werror --enable-sanitizers PYTHON=/usr/bin/python3
make -j"$jobs" >/dev/null
reports=$PWD/sanitizer-reports
rm -rf "$reports"
mkdir -p "$reports"
status=0
ASAN_OPTIONS="log_path=$reports/asan:detect_leaks=1:abort_on_error=1" \
UBSAN_OPTIONS="log_path=$reports/ubsan:print_stacktrace=1:halt_on_error=1" \
  make -j"$jobs" check >check.log 2>&1 || status=$?
if [ "$status" != 0 ] || [ -n "$(ls -A "$reports")" ]; then
  show_logs
  for report in "$reports"/*; do
    [ -f "$report" ] && { echo "---- $report"; head -n 40 "$report"; }
  done
  echo "the sanitized test run failed (build-sanitizers/check.log)"
  exit 1
fi
echo "sanitized test run: clean (AddressSanitizer, LeakSanitizer, UBSan)"
cd ..

cd build
make -j"$jobs" distcheck DISTCHECK_CONFIGURE_FLAGS="--enable-werror PYTHON=/usr/bin/python3" >distcheck.log 2>&1 ||
  { tail -n 60 distcheck.log; echo "distcheck failed (build/distcheck.log)"; exit 1; }
grep -A3 'archives ready for distribution' distcheck.log || true
