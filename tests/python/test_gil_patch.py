"""The GIL on a CPython built with perpetuo's patch (sys._set_stall_counter):
the interpreter ticks the GIL tracker's counter as threads take and drop the
GIL. tools/build-patched-python.sh builds such an interpreter from Debian's
source package, and tools/python-patched-tests.sh runs these tests with it.
"""

import ctypes
import os
import sys
import time

import pytest

import perpetuo

pytestmark = pytest.mark.skipif(
    not hasattr(sys, "_set_stall_counter"),
    reason="this Python has no GIL patch (tools/python-patched-tests.sh "
    "builds one and runs these tests with it)")


def counter_at(address):
    return ctypes.c_uint64.from_address(address).value


def test_the_patch_ticks_a_counter():
    counter = (ctypes.c_uint64 * 2)()
    address = ctypes.addressof(counter)
    # Set while this thread holds the GIL: it counts from there.
    counter[0] = 1
    sys._set_stall_counter(address)
    try:
        before = counter_at(address)
        time.sleep(0.01)  # drops the GIL and takes it back
        after = counter_at(address)
    finally:
        sys._set_stall_counter(0)
    assert before % 2 == 1 and after % 2 == 1, (before, after)
    assert after >= before + 2
    # Off: it moves no more.
    frozen = counter_at(address)
    time.sleep(0.01)
    assert counter_at(address) == frozen


def test_set_stall_counter_checks_its_argument():
    with pytest.raises(ValueError, match="8-byte aligned"):
        sys._set_stall_counter(12)
    with pytest.raises(TypeError):
        sys._set_stall_counter("12")
    with pytest.raises(OverflowError):
        sys._set_stall_counter(-8)


def test_instrument_gil_uses_the_patch(run):
    s = run("""
import sys, time, perpetuo
from perpetuo import _setup
for _ in range(1000):
    assert perpetuo.instrument_gil() == "patch"
tracker = _setup._gil_tracker
counter = tracker.counter_address()
import ctypes
value = ctypes.c_uint64.from_address(counter).value
time.sleep(0.01)
after = ctypes.c_uint64.from_address(counter).value
# Odd while this thread holds the GIL, and it moved as it was dropped.
print(value % 2, after % 2, after > value, flush=True)
print(perpetuo.dwim(json_mode=True), flush=True)
""")
    assert s.finish() == 0, s.err.decode()
    assert s.lines() == [
        "1 1 True",
        "['instrumented GIL', 'started out of process watcher']"]


def test_fork_child_counts_from_a_gil_it_holds(run):
    s = run("""
import ctypes, os, time, perpetuo
from perpetuo import _setup
perpetuo.instrument_gil()
counter = _setup._gil_tracker.counter_address()
pid = os.fork()
if pid == 0:
    time.sleep(0.01)
    value = ctypes.c_uint64.from_address(counter).value
    os._exit(0 if value % 2 == 1 else 1)
_, status = os.waitpid(pid, 0)
print("CHILD", os.waitstatus_to_exitcode(status), flush=True)
""")
    assert s.finish() == 0, s.err.decode()
    assert s.lines() == ["CHILD 0"]


ORIGINAL_EXAMPLE = """
import threading, time, trio, perpetuo

def hold_the_gil():
    time.sleep(0.3)
    print("BLOCK", time.monotonic_ns(), flush=True)
    perpetuo.stall_gil(1)  # STALL
    print("UNBLOCK", time.monotonic_ns(), flush=True)

async def main():
    print(perpetuo.dwim(alert_interval=0.2, json_mode=True), flush=True)
    worker = threading.Thread(target=hold_the_gil, name="worker")
    worker.start()
    for _ in range(20):
        await trio.sleep(0.1)
    worker.join()

trio.run(main)
"""


def test_original_example_a_worker_holding_the_gil(run):
    pytest.importorskip("trio", reason="trio is needed for this test")
    s = run(ORIGINAL_EXAMPLE)
    assert s.finish() == 0, s.err.decode()
    lines = s.lines()
    assert lines[0] == ("['instrumented GIL', 'instrumented Trio', "
                        "'started out of process watcher']")
    marks = dict(line.split() for line in lines[1:])
    gil = [r for r in s.stalls("stall_began")
           if r["additional_info"]["name"] == "GIL"]
    assert len(gil) == 1, s.records()
    r = gil[0]
    assert int(marks["BLOCK"]) < r["monotonic_ns"] < int(marks["UNBLOCK"])
    details = r["stall_details"]
    assert details["thread"]["hint"] == "gil_holder"
    capture = details["capture"]
    assert capture["relevant_found"], capture
    assert capture["threads"][0]["python"]["gil_holder"]
    assert not capture["threads"][0]["python"]["main"]
    trace = details["relevant_traces"][0]
    python = [f for f in trace if not f["native"]]
    assert python[-1]["name"] == "hold_the_gil", python
    assert python[-1]["line"] == next(
        n for n, line in enumerate(ORIGINAL_EXAMPLE.splitlines(), 1)
        if "# STALL" in line)
    assert any(f["function"] == "stall_gil"
               for f in trace[len(python):]), trace
