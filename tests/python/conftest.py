"""Fixtures of the Python package's tests.

They import the package staged in the build tree (`make` puts it in
bindings/python/stage), with the watcher just built, and run scenarios in
subprocesses of the interpreter running pytest (Debian's python3 with its
trio, or a virtual environment with PyPI's), so each gets a fresh process,
its own watcher and its own stderr to read the reports from.
"""

import os
import signal
import time

import pytest

from scenario import TIMEOUT, Scenario  # noqa: F401 (the tests import both)


def _builddir():
    path = os.environ.get("abs_top_builddir")
    if not path:
        pytest.skip("abs_top_builddir is not set: run these tests through "
                    "'make check', or export it (the build directory)")
    return path


@pytest.fixture(scope="session")
def pyenv():
    """The environment a scenario runs in."""
    build = _builddir()
    # The package built for the interpreter running these tests: make's
    # stage, or another one (tools/python-matrix.sh, one per version).
    stage = os.environ.get("PERPETUO_PYTHON_STAGE") or os.path.join(
        build, "bindings", "python", "stage")
    if not os.path.isdir(os.path.join(stage, "perpetuo")):
        pytest.skip(f"the perpetuo package is not staged in {stage} (run make)")
    env = dict(os.environ)
    # The stage first; what the caller's path held (pytest and trio, for an
    # interpreter without them installed) after it.
    env["PYTHONPATH"] = os.pathsep.join(
        [stage] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                   if p and p != stage])
    env["LD_LIBRARY_PATH"] = os.path.join(build, "libperpetuo", ".libs")
    env.setdefault("PERPETUO_WATCHER",
                   os.path.join(build, "libperpetuo", "watcher", "perpetuo"))
    return env


@pytest.fixture
def run(pyenv):
    started = []

    def start(code, args=(), env=None):
        s = Scenario(code, env or pyenv, args)
        started.append(s)
        return s

    yield start
    for s in started:
        s.kill()


def backend():
    """The backend perpetuo runs on here, and so in the scenarios, which
    inherit PERPETUO_BACKEND: "c" (the C extension) or "cffi"."""
    from perpetuo import _backend

    return _backend.name


def without_perpetuo(frames):
    """Python frames without perpetuo's own innermost ones: on the cffi
    backend, stall_gil() is a Python function, whose frame is innermost
    while it holds the GIL (the C extension's is C)."""
    frames = list(frames)
    while frames and os.path.basename(
            os.path.dirname(frames[-1]["filename"])) == "perpetuo":
        frames.pop()
    return frames


def process_gone(pid, timeout=5.0):
    """Whether `pid` is gone (or a zombie) within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.01)
    return False


def kill_quietly(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
