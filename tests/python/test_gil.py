"""GIL stalls on a stock CPython: the watcher applies the contention rule to
the interpreter's own GIL state (a thread has asked for the GIL, and the
holder has not handed it over), read from outside; no patch needed.

The same tests run under every CPython the matrix has (3.9 to 3.13), where
the rule's fields live in different places.
"""

import sys

import pytest

import perpetuo

from conftest import backend, without_perpetuo

pytestmark = pytest.mark.skipif(
    hasattr(sys, "_set_stall_counter"),
    reason="this Python has the GIL patch: the contention rule is not used")


def test_instrument_gil_keeps_the_original_contract():
    with pytest.raises(RuntimeError, match="perpetuo GIL instrumentation patch"):
        perpetuo.instrument_gil()


def test_contention_instead_of_the_patch(run):
    s = run("""
import perpetuo
for _ in range(1000):
    assert perpetuo.instrument_gil(require_patch=False) == "contention"
print(perpetuo.dwim(json_mode=True), flush=True)
""")
    assert s.finish() == 0, s.err.decode()
    assert s.lines() == [
        "['watching GIL contention', 'started out of process watcher']"]
    started = [r for r in s.records() if r.get("event") == "watch_started"]
    assert len(started) == 1


HOG = """
import sys, threading, time, perpetuo

def hold_the_gil():
    print("BLOCK", time.monotonic_ns(), flush=True)
    perpetuo.stall_gil(1.0)  # HOLD
    print("UNBLOCK", time.monotonic_ns(), flush=True)

perpetuo.instrument_gil(require_patch=False)
perpetuo.start_watcher(alert_interval=0.2, json_mode=True)
worker = threading.Thread(target=hold_the_gil, name="hog")
worker.start()
# The main thread wants the GIL all along: it runs Python.
end = time.monotonic() + 1.5
while time.monotonic() < end:
    pass
worker.join()
"""


def test_holder_keeping_the_gil_from_a_waiter_is_a_stall(run):
    s = run(HOG)
    assert s.finish() == 0, s.err.decode()
    marks = dict(line.split() for line in s.lines())
    began = s.stalls("stall_began")
    assert len(began) == 1, s.records()
    r = began[0]
    assert r["additional_info"]["name"] == "GIL contention"
    # Reported while the holder held it.
    assert int(marks["BLOCK"]) < r["monotonic_ns"] < int(marks["UNBLOCK"])
    details = r["stall_details"]
    assert details["thread"]["hint"] == "gil_holder"
    capture = details["capture"]
    assert capture["relevant_found"], capture
    holder = capture["threads"][0]
    assert holder["python"]["gil_holder"] and not holder["python"]["main"]
    trace = details["relevant_traces"][0]
    python = [f for f in trace if not f["native"]]
    native = trace[len(python):]
    if backend() == "cffi":
        # stall_gil() is Python there, asleep in libc's nanosleep().
        assert python[-1]["name"] == "stall_gil", python
        assert any("nanosleep" in (f["function"] or "") for f in native), \
            native
    else:
        assert any(f["function"] == "stall_gil" for f in native), native
    python = without_perpetuo(python)
    assert python[-1]["name"] == "hold_the_gil", python
    assert python[-1]["line"] == next(
        n for n, line in enumerate(HOG.splitlines(), 1) if "# HOLD" in line)
    ended = s.stalls("stall_ended")
    assert len(ended) == 1 and ended[0]["stall_details"]["total_ms"] >= 700


def test_one_thread_computing_alone_is_no_stall(run):
    s = run("""
import time, perpetuo
perpetuo.instrument_gil(require_patch=False)
perpetuo.start_watcher(alert_interval=0.2, json_mode=True)
end = time.monotonic() + 5.0
n = 0
while time.monotonic() < end:
    n += 1
print("DONE", n, flush=True)
""")
    assert s.finish() == 0, s.err.decode()
    assert s.lines()[-1].startswith("DONE")
    assert any(r.get("event") == "watch_started" for r in s.records())
    assert s.stalls() == [], s.records()


def test_two_threads_computing_and_switching_is_no_stall(run):
    s = run("""
import threading, time, perpetuo
perpetuo.instrument_gil(require_patch=False)
perpetuo.start_watcher(alert_interval=0.2, json_mode=True)

def compute():
    end = time.monotonic() + 3.0
    n = 0
    while time.monotonic() < end:
        n += 1

threads = [threading.Thread(target=compute) for _ in range(2)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("DONE", flush=True)
""")
    assert s.finish() == 0, s.err.decode()
    assert s.lines() == ["DONE"]
    assert any(r.get("event") == "watch_started" for r in s.records())
    assert s.stalls() == [], s.records()
