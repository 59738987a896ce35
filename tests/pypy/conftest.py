"""Fixtures of the PyPy tests: pytest runs under CPython, and each scenario
is a program run by Debian's pypy3, on the package staged in the build tree
(which PyPy imports on its cffi backend), with the watcher just built.

Debian's trio is pure Python: a directory of symbolic links to it and to the
packages it imports, made for the session, lets pypy3 import exactly those
from /usr/lib/python3/dist-packages, without copying them, and without the
rest of that directory (CPython's extension modules among it): scenarios
run with -S, no site-packages at all.
"""

import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                os.pardir, "python"))
from scenario import Scenario  # noqa: E402 (the Python tests' own)

TIMEOUT = 60.0
DIST_PACKAGES = "/usr/lib/python3/dist-packages"
# trio and what it imports (python3-trio's dependencies).
TRIO_PACKAGES = ("trio", "outcome", "sniffio", "sortedcontainers", "idna",
                 "attr", "attrs", "exceptiongroup", "async_generator")


@pytest.fixture(scope="session")
def pypy():
    path = os.environ.get("PERPETUO_PYPY") or shutil.which("pypy3")
    if not path:
        pytest.skip("pypy3 is not installed (Debian's pypy3; "
                    "tools/install-and-demo.sh installs it)")
    return path


@pytest.fixture(scope="session")
def trio_links(tmp_path_factory):
    """The directory of links to Debian's trio and its dependencies."""
    links = tmp_path_factory.mktemp("pypy-trio")
    for name in TRIO_PACKAGES:
        target = os.path.join(DIST_PACKAGES, name)
        if os.path.exists(target):
            os.symlink(target, links / name)
    return str(links)


@pytest.fixture(scope="session")
def pypyenv(pypy, trio_links):
    build = os.environ.get("abs_top_builddir")
    if not build:
        pytest.skip("abs_top_builddir is not set: run these tests through "
                    "tests/pypy/run.sh, or export it (the build directory)")
    stage = os.path.join(build, "bindings", "python", "stage")
    if not os.path.isdir(os.path.join(stage, "perpetuo")):
        pytest.skip(f"the perpetuo package is not staged in {stage} (run make)")
    env = dict(os.environ)
    env.pop("PERPETUO_BACKEND", None)
    env["PYTHONPATH"] = os.pathsep.join([stage, trio_links])
    env["LD_LIBRARY_PATH"] = os.path.join(build, "libperpetuo", ".libs")
    env.setdefault("PERPETUO_WATCHER",
                   os.path.join(build, "libperpetuo", "watcher", "perpetuo"))
    return env


@pytest.fixture
def run(pypy, pypyenv):
    started = []

    def start(code, args=(), env=None):
        s = Scenario(code, env or pypyenv, args, interpreter=(pypy, "-S"),
                     timeout=TIMEOUT)
        started.append(s)
        return s

    yield start
    for s in started:
        s.kill()
