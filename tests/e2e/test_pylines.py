"""The watcher's line-table decoders against real interpreters.

For each CPython version available (Debian's python3 and the pyenv builds),
every instruction of every code object of a few standard modules: the line
our decoder computes from the raw table must be the line the interpreter
itself gives.
"""

import os
import subprocess

import pytest

from conftest import TIMEOUT, python_interpreters

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="session")
def driver(builddir):
    path = os.path.join(builddir, "tests", "pylines_driver")
    if not os.access(path, os.X_OK):
        pytest.skip("tests/pylines_driver is not built (make check builds it)")
    return path


@pytest.mark.parametrize("version", ["3.9", "3.10", "3.11", "3.12", "3.13"])
def test_line_tables(driver, version):
    python = python_interpreters().get(version)
    if not python:
        pytest.skip(f"no CPython {version} on this machine (pyenv install "
                    f"{version} to test it)")
    gen = subprocess.run([python, os.path.join(HERE, "pylines_cases.py")],
                         capture_output=True, text=True, timeout=TIMEOUT,
                         check=True)
    inputs, expects = gen.stdout.split("EXPECT\n")
    got = subprocess.run([driver], input=inputs, capture_output=True,
                         text=True, timeout=TIMEOUT, check=True).stdout
    got_lines = got.splitlines()
    expect_lines = expects.splitlines()
    assert len(got_lines) == len(expect_lines) > 50
    checked = 0
    for i, (g, e) in enumerate(zip(got_lines, expect_lines)):
        assert g == e, (f"{version}: code object {i}: "
                        f"{inputs.splitlines()[i][:120]}")
        checked += len(e.split())
    assert checked > 5000
