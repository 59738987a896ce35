"""Python stacks, read by the watcher from outside while the target stalls.

Every scenario is a real Python program (a file, so that frames have a file
name to check) that stalls; the watcher it starts reads every thread's Python
stack while the threads are stopped, and the record must name the right
functions, files and lines, with the relevant thread first.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

from conftest import TIMEOUT, without_perpetuo


class Script:
    """A program written to a file and run; stderr holds the records."""

    def __init__(self, path, env, args=()):
        self.path = path
        self.proc = subprocess.Popen(
            [sys.executable, path, *args], env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.out = self.err = b""

    def finish(self, timeout=TIMEOUT):
        self.out, self.err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode

    def marks(self):
        """The "NAME monotonic_ns" lines the program printed."""
        return {k: int(v) for k, v in
                (line.split() for line in self.out.decode().splitlines()
                 if line.strip())}

    def records(self, event="stall_began"):
        found = []
        for line in self.err.decode().splitlines():
            if line.startswith("{"):
                r = json.loads(line)
                if r.get("event") == event:
                    found.append(r)
        return found

    def only_stall(self):
        began = self.records()
        assert len(began) == 1, self.err.decode()[-4000:]
        return began[0]["stall_details"]


@pytest.fixture
def script(pyenv, tmp_path):
    started = []

    def start(code, name="target.py", args=(), env=None):
        path = tmp_path / name
        path.write_text(textwrap.dedent(code), encoding="utf-8")
        s = Script(str(path), env or pyenv, args)
        started.append(s)
        return s

    yield start
    for s in started:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()


def line_of(path, marker):
    """The line number of the line holding `# marker` in a script."""
    with open(path, encoding="utf-8") as f:
        for number, text in enumerate(f, 1):
            if text.rstrip().endswith("# " + marker):
                return number
    raise AssertionError(f"no marker {marker} in {path}")


def python_frames(trace):
    return [f for f in trace if f.get("native") is False]


def names(frames):
    return [f["name"] for f in frames]


def assert_while_stalling(s, details, start_mark, end_mark):
    """The record was written while the stall was going on."""
    marks = s.marks()
    records = s.records()
    written = records[0]["monotonic_ns"]
    assert marks[start_mark] < written < marks[end_mark], (marks, written)


# -------------------------------------------------------------- Trio

def test_trio_task_blocked_three_calls_deep(script):
    pytest.importorskip("trio", reason="trio is needed for this test")
    s = script("""
        import time, trio, perpetuo

        def level3():
            time.sleep(1.0)  # L3

        def level2():
            level3()  # L2

        def level1():
            level2()  # L1

        async def culprit():
            print("BLOCK", time.monotonic_ns(), flush=True)
            level1()  # CULPRIT
            print("UNBLOCK", time.monotonic_ns(), flush=True)

        async def main():
            perpetuo.instrument_trio()
            perpetuo.start_watcher(alert_interval=0.2, json_mode=True)
            await trio.sleep(0.1)
            await culprit()

        trio.run(main)
    """)
    assert s.finish() == 0, s.err.decode()
    details = s.only_stall()
    assert_while_stalling(s, details, "BLOCK", "UNBLOCK")
    trace = details["relevant_traces"][0]
    py = python_frames(trace)
    assert names(py)[-4:] == ["culprit", "level1", "level2", "level3"], py
    for frame, marker in zip(py[-4:], ["CULPRIT", "L1", "L2", "L3"]):
        assert frame["filename"] == s.path
        assert frame["line"] == line_of(s.path, marker), (frame, marker)
    # Outer frames: trio's run loop, then this module's <module>.
    assert py[0]["name"] == "<module>" and py[0]["filename"] == s.path
    assert any(f["filename"].endswith(os.path.join("trio", "_core", "_run.py"))
               for f in py)
    # Below the innermost Python frame, the C function it is stuck in.
    native = trace[len(py):]
    assert native and all(f["native"] for f in native)
    assert any("sleep" in (f["function"] or "") for f in native), native
    thread = details["capture"]["threads"][0]
    assert thread["relevant"] and thread["python"]["main"]
    assert thread["python"]["frames"] == len(py)
    # The task's coroutine is main(): culprit() runs inside main's task.
    assert details["coroutine"]["name"] == "main", details["coroutine"]
    assert details["coroutine"]["filename"] == s.path


# --------------------------------------------------------------- GIL

GIL_HOG = """
    import re, sys, threading, time, perpetuo

    def call_into_c(seconds):
        perpetuo.stall_gil(seconds)  # STALL_GIL

    def backtrack():
        return re.match(r'(a+)+$', 'a' * 27 + 'b')  # REGEX

    def worker(kind):
        print("BLOCK", time.monotonic_ns(), flush=True)
        if kind == "stall_gil":
            call_into_c(1.5)
        else:
            backtrack()
        print("UNBLOCK", time.monotonic_ns(), flush=True)

    tracker = perpetuo.StallTracker("gil", "gil")  # active: as if the GIL
    perpetuo.start_watcher(alert_interval=0.2, json_mode=True)
    t = threading.Thread(target=worker, args=(sys.argv[1],), name="hog")
    t.start()
    t.join()
    tracker.close()
"""


@pytest.mark.parametrize("kind,marker,caller", [
    ("stall_gil", "STALL_GIL", "call_into_c"),
    ("regex", "REGEX", "backtrack"),
])
def test_gil_held_in_c_shows_the_calling_python_frame(script, kind, marker,
                                                      caller):
    s = script(GIL_HOG, args=(kind,))
    assert s.finish() == 0, s.err.decode()
    details = s.only_stall()
    # Written while the GIL was held, which an in-process watchdog cannot.
    assert_while_stalling(s, details, "BLOCK", "UNBLOCK")
    assert details["thread"]["hint"] == "gil_holder"
    assert details["capture"]["relevant_found"], details["capture"]
    relevant = details["capture"]["threads"][0]
    assert relevant["python"]["gil_holder"] and not relevant["python"]["main"]
    py = without_perpetuo(python_frames(details["relevant_traces"][0]))
    if kind == "regex":
        # re.match is Python code calling the C matcher.
        assert py[-1]["name"] == "match", py
        assert py[-1]["filename"].endswith(os.path.join("re", "__init__.py")) \
            or py[-1]["filename"].endswith("re.py"), py[-1]
        py = py[:-1]
    assert py[-1]["name"] == caller, py
    assert py[-1]["line"] == line_of(s.path, marker)
    assert py[-2]["name"] == "worker"
    assert details["coroutine"] is None  # no coroutine in that thread
    # The main thread, waiting in join(), is another thread.
    others = details["other_traces"]
    assert any(python_frames(t) and python_frames(t)[0]["name"] == "<module>"
               for t in others), others


# ------------------------------------------------- many, deep threads

def test_fifty_threads_a_hundred_deep(script):
    s = script("""
        import threading, time, perpetuo

        def recurse(n, ready):
            if n == 0:
                ready.release()
                time.sleep(2.0)  # BOTTOM
                return
            recurse(n - 1, ready)  # RECURSE

        ready = threading.Semaphore(0)
        threads = [threading.Thread(target=recurse, args=(99, ready))
                   for _ in range(50)]
        for t in threads:
            t.start()
        for _ in threads:
            ready.acquire()
        tracker = perpetuo.StallTracker("main", threading.get_ident())
        perpetuo.start_watcher(alert_interval=0.2, json_mode=True)
        time.sleep(0.8)  # MAIN
        tracker.close()
        for t in threads:
            t.join()
    """)
    assert s.finish() == 0, s.err.decode()
    details = s.only_stall()
    py = python_frames(details["relevant_traces"][0])
    assert py[-1]["line"] == line_of(s.path, "MAIN")
    deep = [python_frames(t) for t in details["other_traces"]]
    deep = [t for t in deep if t and t[-1]["name"] == "recurse"]
    assert len(deep) == 50, [names(t)[-3:] for t in deep]
    bottom, step = line_of(s.path, "BOTTOM"), line_of(s.path, "RECURSE")
    for frames in deep:
        rec = [f for f in frames if f["name"] == "recurse"]
        assert len(rec) == 100
        assert rec[-1]["line"] == bottom
        assert all(f["line"] == step for f in rec[:-1])
        assert frames[0]["name"] == "_bootstrap"
    threads = details["capture"]["threads"]
    assert len({t["python"]["thread_id"] for t in threads
                if t.get("python")}) == 51
    assert details["capture"]["python"]["threads"] == 51


# ---------------------------- names, locals, unusual kinds of frames

UNUSUAL = """
    import threading, time, perpetuo

    def blocker():
        print("BLOCK", time.monotonic_ns(), flush=True)
        ünïcode_löcal = "héllo wörld ☃ \U0001F600"
        time.sleep(1.0)  # SLEEP
        print("UNBLOCK", time.monotonic_ns(), flush=True)

    def gen():
        yield blocker()  # GEN

    async def coro():
        return next(gen())  # CORO

    def fünctiön_λ(x):
        small, big, neg = 42, 2**100, -7
        f, s, b = 1.5, "it's", b"a\\x00b"
        nothing, yes, items = None, True, [1, 2, 3]
        mapping, obj = {"k": 1}, threading.Lock()
        try:
            coro().send(None)  # SEND
        except StopIteration:
            pass

    tracker = perpetuo.StallTracker("main", threading.get_ident())
    perpetuo.start_watcher(alert_interval=0.2, json_mode=True,
                           print_locals=PRINT_LOCALS)

    class Klass:
        result = (lambda: fünctiön_λ(1))()  # LAMBDA
"""


def run_unusual(script, print_locals):
    code = UNUSUAL.replace("PRINT_LOCALS", repr(print_locals))
    s = script(code, name="tärget_☃.py")
    assert s.finish() == 0, s.err.decode()
    details = s.only_stall()
    assert_while_stalling(s, details, "BLOCK", "UNBLOCK")
    return s, python_frames(details["relevant_traces"][0])


def test_generator_coroutine_lambda_class_body_non_ascii(script):
    s, py = run_unusual(script, True)
    assert s.path.endswith("tärget_☃.py")
    assert all(f["filename"] == s.path for f in py), py
    assert names(py) == ["<module>", "Klass", "<lambda>", "fünctiön_λ", "coro",
                         "gen", "blocker"], py
    for frame, marker in zip(py[1:], ["LAMBDA", "LAMBDA", "SEND", "CORO",
                                      "GEN", "SLEEP"]):
        assert frame["line"] == line_of(s.path, marker), (frame, marker)
    if sys.version_info >= (3, 11):
        assert py[1]["qualname"] == "Klass"
        assert py[2]["qualname"] == "Klass.<lambda>"
    values = {l["name"]: l["value"] for l in py[3]["locals"]}
    assert values["x"] == "1"
    assert values["small"] == "42"
    assert values["big"] == str(2**100)
    assert values["neg"] == "-7"
    assert values["f"] == "1.5"
    assert values["s"] == repr("it's")
    assert values["b"] == repr(b"a\x00b")
    assert values["nothing"] == "None"
    assert values["yes"] == "True"
    assert re.fullmatch(r"<list at 0x[0-9a-f]+, len 3>", values["items"])
    assert re.fullmatch(r"<dict at 0x[0-9a-f]+, len 1>", values["mapping"])
    assert re.fullmatch(r"<(_thread\.)?lock at 0x[0-9a-f]+>", values["obj"]), \
        values["obj"]
    inner = {l["name"]: l["value"] for l in py[-1]["locals"]}
    assert inner["ünïcode_löcal"] == repr("héllo wörld ☃ \U0001F600")
    # A coroutine driven by hand from a class body: the outermost one.
    assert s.only_stall()["coroutine"]["name"] == "coro"


def test_locals_off(script):
    s, py = run_unusual(script, False)
    assert all(f["locals"] is None for f in py), py


# ----------------------------------------------------- against py-spy

def pyspy():
    path = os.environ.get("PERPETUO_PYSPY") or shutil.which("py-spy")
    if not path:
        pytest.skip("py-spy is not installed (tools/python-venv.sh installs "
                    "it and tools/test-all.sh passes it as PERPETUO_PYSPY)")
    return path


def test_frames_agree_with_py_spy(script):
    spy = pyspy()
    s = script("""
        import sys, threading, time, perpetuo

        def sleeper(n):
            if n:
                return sleeper(n - 1)
            time.sleep(30)

        for _ in range(3):
            threading.Thread(target=sleeper, args=(20,), daemon=True).start()
        tracker = perpetuo.StallTracker("main", threading.get_ident())
        perpetuo.start_watcher(alert_interval=0.2, json_mode=True)
        time.sleep(0.5)
        tracker.close()
        print("READY", 0, flush=True)
        sys.stdout.close()
        time.sleep(30)
    """)
    s.proc.stdout.readline()
    dump = subprocess.run([spy, "dump", "--json", "--pid", str(s.proc.pid)],
                          capture_output=True, text=True, timeout=60)
    s.proc.kill()
    s.finish()
    if dump.returncode != 0:
        pytest.fail(f"py-spy dump failed: {dump.stderr}")
    theirs = {}
    for thread in json.loads(dump.stdout):
        frames = [(f["name"], f["filename"], f["line"])
                  for f in reversed(thread["frames"])]
        theirs[thread["thread_id"]] = frames
    details = s.only_stall()
    ours = {}
    for info, trace in zip(details["capture"]["threads"],
                           details["relevant_traces"] +
                           details["other_traces"]):
        if info.get("python"):
            # py-spy names frames by their qualified name where Python
            # has one (3.11+); "name" stays the original's co_name.
            ours[info["python"]["thread_id"]] = [
                (f.get("qualname", f["name"]), f["filename"], f["line"])
                for f in python_frames(trace)]
    sleepers = [t for t, frames in ours.items()
                if frames and frames[-1][0] == "sleeper"]
    assert len(sleepers) == 3
    for thread_id in sleepers:
        assert ours[thread_id] == theirs[thread_id], (ours[thread_id],
                                                      theirs.get(thread_id))
