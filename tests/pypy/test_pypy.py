"""The package on PyPy 3, through its cffi backend: trackers, the watcher,
Trio's instrument and native stacks work; Python stacks do not, and the
reports say so."""

from scenario import FAST_STEPS, THREAD_STALL  # tests/python's, on the path conftest set


def test_pypy_takes_the_cffi_backend(run):
    s = run("""
import platform, perpetuo, perpetuo._backend as b
print(platform.python_implementation(), b.name, flush=True)
""")
    assert s.finish() == 0, s.err.decode()
    assert s.lines() == ["PyPy cffi"]


def test_the_c_backend_cannot_be_forced_on_pypy(run, pypyenv):
    s = run("import perpetuo", env=dict(pypyenv, PERPETUO_BACKEND="c"))
    assert s.finish() != 0
    assert "ImportError" in s.err.decode() and "_perpetuo" in s.err.decode()


def test_trackers(run):
    s = run("""
import ctypes, errno, threading, perpetuo
me = threading.get_ident()
t = perpetuo.StallTracker("test", me)
assert t.is_active() and repr(t) == "<StallTracker 'test' active>", repr(t)
counter = ctypes.c_uint64.from_address(t.counter_address())
before = counter.value
assert before % 2 == 1
t.go_idle()
assert counter.value == before + 1 and not t.is_active()
for method, message in ((t.go_idle, "Already idle"),):
    try:
        method()
    except RuntimeError as e:
        assert str(e) == message, e
    else:
        raise AssertionError("no error")
with t:
    assert t.is_active()
assert not t.is_active()
t.close()
assert t.closed
try:
    t.is_active()
except RuntimeError as e:
    assert "closed" in str(e)
else:
    raise AssertionError("a closed tracker answered")
for args, error in (((1, 1), TypeError), (("x", True), TypeError),
                    (("x", 0), ValueError), (("", 1), ValueError),
                    (("x", "GIL"), ValueError), (("a\\0b", 1), ValueError)):
    try:
        perpetuo.StallTracker(*args)
    except error:
        pass
    else:
        raise AssertionError(args)
name = "élan vital — 停滞 🐢"
assert perpetuo.StallTracker(name, "gil").name == name
# Dropped trackers are released by the garbage collector (not at once, on
# PyPy): far more of them than there are slots.
for _ in range(3000):
    perpetuo.StallTracker("dropped", me)
held = [perpetuo.StallTracker(f"t{i}", me) for i in range(1024)]
try:
    perpetuo.StallTracker("one too many", me)
except OSError as e:
    print("full", e.errno == errno.ENOSPC, flush=True)
""")
    assert s.finish() == 0, s.err.decode()
    assert s.lines() == ["full True"]


def test_gil_dwim_and_the_watcher(run):
    s = run("""
import perpetuo
from perpetuo._backend import api
for kwargs in ({}, {"require_patch": False}):
    try:
        perpetuo.instrument_gil(**kwargs)
    except RuntimeError as e:
        print("GIL", e, flush=True)
print("DWIM", perpetuo.dwim(), flush=True)
perpetuo.start_watcher(alert_interval=0.1)
perpetuo.start_watcher(alert_interval=0.1)  # idempotent
print("WATCHER", api._watch_pid(), flush=True)
perpetuo.stop_watcher()
print("AFTER", api._watch_pid(), flush=True)
""")
    assert s.finish() == 0, s.err.decode()
    lines = s.lines()
    assert lines[0] == ("GIL This Python was not built with the perpetuo GIL "
                        "instrumentation patch")
    assert lines[1].startswith("GIL ") and "PyPy" in lines[1], lines
    # Nothing to instrument (no trio.run, no GIL): no watcher either.
    assert lines[2] == "DWIM []"
    assert int(lines[3].split()[1]) > 0
    assert lines[4] == "AFTER 0"
    assert [r["event"] for r in s.records()] == [
        "watch_attaching", "watch_started", "watch_ended"], s.records()


BLOCKING_TRIO = """
import sys, time, trio, perpetuo

async def innocent():
    for _ in range(20):
        await trio.sleep(0.01)

async def careless():
    await trio.sleep(0.1)
    print("BLOCK", time.monotonic_ns(), flush=True)
    time.sleep(0.8)
    print("UNBLOCK", time.monotonic_ns(), flush=True)

async def main():
    print(perpetuo.dwim(alert_interval=0.2, json_mode=sys.argv[1] == "json"),
          flush=True)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(innocent)
        nursery.start_soon(careless, name="the careless one")
    await trio.sleep(0.1)

trio.run(main)
"""


def test_a_stall_in_a_trio_task_is_reported_while_it_blocks(run):
    s = run(BLOCKING_TRIO, args=("json",))
    assert s.finish() == 0, s.err.decode()
    lines = s.lines()
    assert lines[0] == "['instrumented Trio', 'started out of process watcher']"
    marks = dict(line.split() for line in lines[1:])
    began = s.stalls()
    assert len(began) == 1, s.records()
    r = began[0]
    assert r["additional_info"]["name"].startswith("Trio run loop (thread 0x")
    assert int(marks["BLOCK"]) < r["monotonic_ns"] < int(marks["UNBLOCK"])
    details = r["stall_details"]
    assert details["detail"] == "the careless one"
    assert details["thread"]["hint"] == "pthread"
    assert details["thread"]["tid"] == s.proc.pid
    assert details["thread"]["kind"].startswith("blocked in"), details["thread"]
    capture = details["capture"]
    assert capture["relevant_found"] and capture["threads"][0]["relevant"]
    # Its native stack: PyPy's time.sleep() waits in select().
    trace = details["relevant_traces"][0]
    assert len(trace) > 3 and all(f["native"] for f in trace), trace
    assert any(f["function"] and ("select" in f["function"] or
                                  "sleep" in f["function"])
               for f in trace[-3:]), trace[-3:]
    # No Python stack, and why.
    assert capture["python"]["threads"] == 0
    assert capture["python"]["error"] == (
        "no Python stacks: the target runs PyPy, whose frames are not "
        "CPython's, the only ones the watcher reads"), capture["python"]
    ended = s.stalls("stall_ended")
    assert len(ended) == 1 and ended[0]["stall_details"]["total_ms"] >= 600


def test_the_text_report_says_why_it_shows_no_python_stack(run):
    s = run(BLOCKING_TRIO, args=("text",))
    assert s.finish() == 0, s.err.decode()
    err = s.err.decode()
    assert err.count("perpetuo: stall 1 in \"Trio run loop") >= 2, err
    assert 'detail "the careless one"' in err
    assert "  Native stack of thread " in err
    assert "  no Python stacks: the target runs PyPy" in err


def test_fast_steps_are_no_stall(run):
    s = run(FAST_STEPS)
    assert s.finish() == 0, s.err.decode()
    assert int(s.lines()[-1].split()[1]) >= 100_000
    assert any(r["event"] == "watch_started" for r in s.records())
    assert s.stalls() == [], s.records()


def test_io_waits_mode_sees_a_batch_of_short_steps(run):
    s = run("""
import time, trio, perpetuo
async def short_step(deadline):
    await trio.sleep_until(deadline)
    time.sleep(0.002)
async def main():
    perpetuo.instrument_trio(mode="io_waits")
    perpetuo.start_watcher(alert_interval=0.2)
    await trio.sleep(0.1)
    deadline = trio.current_time() + 0.1
    async with trio.open_nursery() as nursery:
        for _ in range(300):
            nursery.start_soon(short_step, deadline)
    await trio.sleep(0.1)
trio.run(main)
""")
    assert s.finish() == 0, s.err.decode()
    began = s.stalls()
    assert len(began) == 1, s.records()
    assert began[0]["stall_details"]["detail"] is None


def test_a_thread_tracker_names_its_thread(run):
    s = run(THREAD_STALL)
    assert s.finish() == 0, s.err.decode()
    native = int(s.lines()[0].split()[1])
    began = s.stalls()
    assert len(began) == 1, s.records()
    details = began[0]["stall_details"]
    assert details["thread"]["tid"] == native
    assert details["capture"]["relevant_found"]
    assert details["relevant_traces"][0]
