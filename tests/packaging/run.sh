#!/bin/sh
# The Python package as users get it, each into a fresh virtual environment
# and run from outside the source tree, with a real stall:
#  1. the manylinux wheel from tools/build-wheel.sh (libperpetuo and the
#     watcher inside: nothing else installed, no PERPETUO_WATCHER);
#  2. `pip install ./bindings/python` against libperpetuo installed by
#     `make install` (found with pkg-config).
# Needs the build in build/ (tools/test-all.sh runs this after make check).
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
unset PYTHONPATH LD_LIBRARY_PATH PERPETUO_WATCHER

scenario='
import json, os, sys, threading, time, perpetuo
from perpetuo import _perpetuo
perpetuo.start_watcher(alert_interval=0.1)
print("EXE", os.readlink(f"/proc/{_perpetuo._watch_pid()}/exe"), flush=True)
t = perpetuo.StallTracker("packaged stall", threading.get_ident())
time.sleep(0.5)
t.close()
time.sleep(0.1)
'

# Checks a scenario's output: $1 stdout, $2 stderr, $3 where the watcher
# must come from.
check() {
  /usr/bin/python3 - "$1" "$2" "$3" <<'PY'
import json, sys
out, err, where = open(sys.argv[1]).read(), open(sys.argv[2]).read(), sys.argv[3]
exe = out.split()[1]
assert exe.startswith(where), f"the watcher ran from {exe}, not from {where}"
records = [json.loads(l) for l in err.splitlines() if l.startswith("{")]
began = [r for r in records if r.get("event") == "stall_began"]
assert len(began) == 1, err
r = began[0]
assert r["additional_info"]["name"] == "packaged stall", r
trace = r["stall_details"]["relevant_traces"][0]
# The installed extension published its interpreter's layout: the Python
# frame that sleeps, then the C function it sleeps in.
python = [f for f in trace if not f["native"]]
assert python and python[-1]["name"] == "<module>", trace
assert any("sleep" in (f.get("function") or "") for f in trace), trace
print(f"  stall reported, {len(python)} Python and "
      f"{len(trace) - len(python)} native frames, watcher {exe}")
PY
}

echo "packaging: the wheel"
wheel=$("$top/tools/build-wheel.sh" 2>"$work/wheel.log" | tail -n 1) ||
  { cat "$work/wheel.log"; exit 1; }
/usr/bin/python3 -m venv "$work/wheel-venv"
"$work/wheel-venv/bin/pip" install -q --no-index "$wheel"
site=$("$work/wheel-venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')
(cd "$work" && "$work/wheel-venv/bin/python" -c "$scenario" >out1 2>err1)
check "$work/out1" "$work/err1" "$site/perpetuo/_watcher/"

echo "packaging: pip install ./bindings/python against an installed libperpetuo"
make -C "$top/build" -s install DESTDIR="$work/root" >"$work/install.log" 2>&1 ||
  { cat "$work/install.log"; exit 1; }
prefix=$(sed -n 's/^prefix=//p' "$top/build/libperpetuo/perpetuo.pc")
/usr/bin/python3 -m venv "$work/pip-venv"
PKG_CONFIG_PATH="$work/root$prefix/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$work/root" \
  "$work/pip-venv/bin/pip" install -q "$top/bindings/python" >"$work/pip.log" 2>&1 ||
  { cat "$work/pip.log"; exit 1; }
(cd "$work" && PERPETUO_WATCHER="$work/root$prefix/bin/perpetuo" \
  "$work/pip-venv/bin/python" -c "$scenario" >out2 2>err2)
check "$work/out2" "$work/err2" "$work/root$prefix/bin/perpetuo"
echo "packaging: both installs work"
