"""The choice of backend, and what the cffi backend does where the C
extension cannot help it: its declarations against perpetuo.h, and a
CPython without the extension, whose reports say why they have no Python
stacks."""

import os
import subprocess
import sys
import textwrap

import pytest

from conftest import TIMEOUT, Scenario

pytest.importorskip("cffi", reason="cffi is not installed for this Python "
                                   "(Debian's python3-cffi)")


def backend_of(env, **extra):
    env = dict(env, **extra)
    r = subprocess.run(
        [sys.executable, "-c",
         "import perpetuo, perpetuo._backend as b; print(b.name)"],
        env=env, capture_output=True, timeout=TIMEOUT)
    return r.returncode, r.stdout.decode().strip(), r.stderr.decode()


def test_the_environment_chooses_the_backend(pyenv):
    env = {k: v for k, v in pyenv.items() if k != "PERPETUO_BACKEND"}
    assert backend_of(env)[:2] == (0, "c")  # the extension imports here
    assert backend_of(env, PERPETUO_BACKEND="")[:2] == (0, "c")
    assert backend_of(env, PERPETUO_BACKEND="c")[:2] == (0, "c")
    assert backend_of(env, PERPETUO_BACKEND="cffi")[:2] == (0, "cffi")
    status, _, err = backend_of(env, PERPETUO_BACKEND="ctypes")
    assert status != 0
    assert "ImportError: PERPETUO_BACKEND must be 'c'" in err, err
    assert "'cffi'" in err and "'ctypes'" in err, err


def test_the_cffi_backend_has_every_name_of_the_extension():
    from perpetuo import _cffi_backend, _perpetuo

    public = {n for n in dir(_perpetuo) if not n.startswith("__")}
    missing = public - set(dir(_cffi_backend))
    assert not missing, missing
    assert _cffi_backend.libperpetuo_version == _perpetuo.libperpetuo_version
    assert _cffi_backend.TRACKER_NAME_MAX == _perpetuo.TRACKER_NAME_MAX


def test_the_cdef_agrees_with_perpetuo_h(tmp_path):
    """Each declaration the backend gives cffi, compiled after the real
    header: a function declared otherwise is a conflicting redeclaration,
    and the structures' sizes and offsets must be the compiler's."""
    from perpetuo import _cffi_backend

    ffi = _cffi_backend.ffi
    top = os.environ.get("top_srcdir") or os.path.join(
        os.path.dirname(__file__), "..", "..")
    lines = [line for line in _cffi_backend.CDEF.splitlines()]
    prototypes = []
    current = ""
    for line in lines:
        if current or line.startswith(("const char *perpetuo_", "void perpetuo_",
                                       "int perpetuo_", "uint64_t *perpetuo_",
                                       "perpetuo_detail_t *perpetuo_")):
            current += line + "\n"
            if line.rstrip().endswith(";"):
                prototypes.append(current)
                current = ""
    assert len(prototypes) >= 12, prototypes
    checks = []
    for struct, fields in (
            ("perpetuo_tracker_options_t",
             ["size", "thread_hint", "thread_id", "threshold_ms",
              "initially_active"]),
            ("perpetuo_detail_t", ["text", "length"]),
            ("perpetuo_watch_options_t",
             ["size", "poll_interval_ms", "alert_interval_ms",
              "traceback_suppress_ms", "print_locals", "json_mode",
              "output_fd", "output_path", "watcher_path", "native_stacks",
              "all_threads"])):
        checks.append(f"_Static_assert(sizeof({struct}) == "
                      f"{ffi.sizeof(struct)}, \"{struct}\");")
        for field in fields:
            checks.append(
                f"_Static_assert(offsetof({struct}, {field}) == "
                f"{ffi.offsetof(struct, field)}, \"{struct}.{field}\");")
    for name in ("PERPETUO_TRACKER_NAME_MAX", "PERPETUO_TRACKER_MAX",
                 "PERPETUO_RUNTIME_LAYOUT_MAX", "PERPETUO_EACTIVE",
                 "PERPETUO_EIDLE", "PERPETUO_THREAD_PTHREAD",
                 "PERPETUO_THREAD_GIL_HOLDER"):
        checks.append(f"_Static_assert({name} == "
                      f"{getattr(_cffi_backend.lib, name)}, \"{name}\");")
    source = tmp_path / "cdef.c"
    source.write_text("#include <stddef.h>\n#include <perpetuo.h>\n" +
                      "".join(prototypes) + "\n".join(checks) + "\n")
    r = subprocess.run(
        [os.environ.get("CC") or "cc", "-std=c11", "-Wall", "-Werror",
         "-fsyntax-only", "-I", os.path.join(top, "include"), str(source)],
        capture_output=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr.decode()


@pytest.fixture
def stage_without_extension(pyenv, tmp_path):
    """The staged package with its Python files alone: a CPython where the
    C extension does not import."""
    stage = os.environ.get("PERPETUO_PYTHON_STAGE") or os.path.join(
        os.environ["abs_top_builddir"], "bindings", "python", "stage")
    package = tmp_path / "perpetuo"
    package.mkdir()
    for name in os.listdir(os.path.join(stage, "perpetuo")):
        if name.endswith((".py", ".pyi")):
            os.symlink(os.path.join(stage, "perpetuo", name), package / name)
    env = dict(pyenv)
    env.pop("PERPETUO_BACKEND", None)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(tmp_path)] + [p for p in pyenv["PYTHONPATH"].split(os.pathsep)
                           if os.path.abspath(p) != os.path.abspath(stage)])
    return env


def test_without_the_extension_cffi_stands_in(stage_without_extension):
    status, name, err = backend_of(stage_without_extension)
    assert (status, name) == (0, "cffi"), err
    status, _, err = backend_of(stage_without_extension,
                                PERPETUO_BACKEND="c")
    assert status != 0 and "_perpetuo" in err, err


def test_without_the_extension_reports_say_why_no_python_stacks(
        stage_without_extension):
    pytest.importorskip("trio", reason="trio is needed for this test")
    s = Scenario(textwrap.dedent("""
        import time, trio, perpetuo
        try:
            perpetuo.instrument_gil(require_patch=False)
        except RuntimeError as e:
            print("GIL", "C extension" in str(e), flush=True)
        async def main():
            print(perpetuo.dwim(alert_interval=0.2), flush=True)
            await trio.sleep(0.1)
            print("BLOCK", time.monotonic_ns(), flush=True)
            time.sleep(0.8)
            print("UNBLOCK", time.monotonic_ns(), flush=True)
        trio.run(main)
    """), stage_without_extension)
    try:
        assert s.finish() == 0, s.err.decode()
    finally:
        s.kill()
    lines = s.lines()
    assert lines[0] == "GIL True", lines
    assert lines[1] == "['instrumented Trio', 'started out of process " \
                       "watcher']", lines
    marks = dict(line.split() for line in lines[2:])
    began = s.stalls()
    assert len(began) == 1, s.records()
    r = began[0]
    assert int(marks["BLOCK"]) < r["monotonic_ns"] < int(marks["UNBLOCK"])
    details = r["stall_details"]
    assert details["detail"] == "__main__.main"
    assert details["thread"]["tid"] == s.proc.pid
    trace = details["relevant_traces"][0]
    assert trace and all(f["native"] for f in trace), trace
    assert any("sleep" in (f["function"] or "") for f in trace), trace
    python = details["capture"]["python"]
    assert python["threads"] == 0
    assert python["error"].startswith("no Python stacks: the target's CPython "
                                      "has no layout block"), python
    assert "cffi backend" in python["error"]
