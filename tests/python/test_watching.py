"""The package with a real watcher, watching real Python processes."""

import os
import signal
import time

import pytest

from conftest import process_gone, kill_quietly
from scenario import FAST_STEPS, THREAD_STALL

pytest.importorskip("trio", reason="trio is needed for its tests")

BLOCKING_TRIO = """
import sys, time, trio, perpetuo

async def main():
    perpetuo.instrument_trio()
    perpetuo.start_watcher(alert_interval=0.2)
    await trio.sleep(0.1)
    print("BLOCK", time.monotonic_ns(), flush=True)
    time.sleep(1.0)
    print("UNBLOCK", time.monotonic_ns(), flush=True)
    await trio.sleep(0.2)

trio.run(main)
"""


def test_blocking_trio_task_reported_once_while_it_blocks(run):
    s = run(BLOCKING_TRIO)
    assert s.finish() == 0, s.err.decode()
    out = dict(line.split() for line in s.lines())
    block, unblock = int(out["BLOCK"]), int(out["UNBLOCK"])
    began = s.stalls("stall_began")
    assert len(began) == 1, s.records()
    r = began[0]
    name = r["additional_info"]["name"]
    assert name.startswith("Trio run loop (thread 0x"), name
    assert r["additional_info"]["pid"] == str(s.proc.pid)
    details = r["stall_details"]
    assert details["length_ms"] >= 200.0
    # Reported while it was blocking, not after.
    assert block < r["monotonic_ns"] < unblock, (block, r, unblock)
    assert details["thread"]["hint"] == "pthread"
    assert details["thread"]["tid"] == s.proc.pid  # trio ran in main thread
    assert details["thread"]["kind"].startswith("blocked in")
    # The culprit task, not just the run loop.
    assert details["detail"] == "__main__.main", details["detail"]
    # Its native stack was taken, inside the interpreter's sleep.
    trace = details["relevant_traces"][0]
    assert any("sleep" in (f.get("function") or "") for f in trace)
    ended = s.stalls("stall_ended")
    assert len(ended) == 1 and ended[0]["stall_details"]["stall_id"] == \
        details["stall_id"]
    assert ended[0]["stall_details"]["total_ms"] >= 900


def test_dwim_then_block_in_the_same_step(run):
    # The original's (skipped) test: dwim() and a blocking call in the very
    # same task step must still be caught.
    s = run("""
import time, trio, perpetuo
async def main():
    print(perpetuo.dwim(alert_interval=0.2), flush=True)
    time.sleep(0.8)
trio.run(main)
""")
    assert s.finish() == 0, s.err.decode()
    assert "'instrumented Trio'" in s.out.decode()
    assert len(s.stalls()) == 1, s.records()


def test_fast_steps_are_no_stall(run):
    s = run(FAST_STEPS)
    assert s.finish() == 0, s.err.decode()
    steps = int(s.lines()[-1].split()[1])
    assert steps >= 100_000, steps
    assert s.stalls("stall_began") == [], s.records()
    assert any(r.get("event") == "watch_started" for r in s.records())


def test_stop_watcher_really_stops_it(run):
    s = run("""
import os, time, threading, perpetuo
from perpetuo._backend import api as _perpetuo
perpetuo.start_watcher(alert_interval=0.1)
perpetuo.start_watcher(alert_interval=0.1)  # idempotent
pid = _perpetuo._watch_pid()
print("WATCHER", pid, flush=True)
perpetuo.stop_watcher()
print("AFTER", _perpetuo._watch_pid(), flush=True)
t = perpetuo.StallTracker("unwatched", threading.get_ident())
time.sleep(0.5)
t.close()
perpetuo.start_watcher(alert_interval=0.1)
print("AGAIN", _perpetuo._watch_pid(), flush=True)
t = perpetuo.StallTracker("watched", threading.get_ident())
time.sleep(0.5)
t.close()
""")
    assert s.finish() == 0, s.err.decode()
    out = dict(line.split() for line in s.lines())
    assert int(out["WATCHER"]) > 0
    assert out["AFTER"] == "0"
    assert process_gone(int(out["WATCHER"]))
    assert int(out["AGAIN"]) not in (0, int(out["WATCHER"]))
    names = [r["additional_info"]["name"] for r in s.stalls()]
    assert names == ["watched"], s.records()


@pytest.mark.parametrize("how", ["return", "os._exit", "SIGKILL"])
def test_watcher_exits_with_the_process(run, how):
    s = run(f"""
import os, signal, sys, time, perpetuo
from perpetuo._backend import api as _perpetuo
perpetuo.start_watcher()
print("WATCHER", _perpetuo._watch_pid(), flush=True)
how = {how!r}
if how == "os._exit":
    os._exit(0)
elif how == "SIGKILL":
    os.kill(os.getpid(), signal.SIGKILL)
""")
    s.finish()
    watcher = int(s.lines()[0].split()[1])
    try:
        assert process_gone(watcher, timeout=5.0), "the watcher outlived it"
    finally:
        kill_quietly(watcher)


def test_gil_hint_and_thread_hint_in_reports(run):
    s = run(THREAD_STALL + """
g = perpetuo.StallTracker("gil", "gil")
time.sleep(0.4)
g.close()
""")
    assert s.finish() == 0, s.err.decode()
    native = int(s.lines()[0].split()[1])
    began = {r["additional_info"]["name"]: r for r in s.stalls()}
    assert set(began) == {"worker", "gil"}, s.records()
    worker = began["worker"]["stall_details"]
    assert worker["thread"]["hint"] == "pthread"
    assert worker["thread"]["tid"] == native
    assert worker["capture"]["relevant_found"]
    assert worker["relevant_traces"] and worker["relevant_traces"][0]
    gil = began["gil"]["stall_details"]
    assert gil["thread"]["hint"] == "gil_holder"


def test_concurrent_trio_runs_get_their_own_trackers(run):
    s = run("""
import threading, time, trio, perpetuo
perpetuo.start_watcher(alert_interval=0.15)
barrier = threading.Barrier(2)
def one():
    async def main():
        perpetuo.instrument_trio()
        barrier.wait()
        await trio.sleep(0.05)
        time.sleep(0.5)
    trio.run(main)
threads = [threading.Thread(target=one) for _ in range(2)]
for t in threads: t.start()
print("IDENTS", *[hex(t.ident) for t in threads], flush=True)
for t in threads: t.join()
""")
    assert s.finish() == 0, s.err.decode()
    began = s.stalls()
    names = sorted(r["additional_info"]["name"] for r in began)
    assert len(names) == 2 and names[0] != names[1], s.records()
    assert all(n.startswith("Trio run loop (thread 0x") for n in names)


def test_long_and_non_ascii_names_in_reports(run):
    s = run("""
import threading, time, perpetuo
perpetuo.start_watcher(alert_interval=0.1)
for name in ["élan — 停滞 🐢", "é" * 100]:
    t = perpetuo.StallTracker(name, threading.get_ident())
    assert t.name == name
    time.sleep(0.3)
    t.close()
""")
    assert s.finish() == 0, s.err.decode()
    names = [r["additional_info"]["name"] for r in s.stalls()]
    # Up to 127 bytes a name is reported whole; a longer one is cut at a
    # character boundary (é is two bytes: 63 of them).
    assert names == ["élan — 停滞 🐢", "é" * 63], names


def test_the_culprit_task_is_named(run):
    s = run("""
import time, trio, perpetuo
async def innocent():
    for _ in range(20):
        await trio.sleep(0.01)
async def careless():
    await trio.sleep(0.05)
    time.sleep(0.5)
async def main():
    perpetuo.instrument_trio()
    perpetuo.start_watcher(alert_interval=0.2)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(innocent)
        nursery.start_soon(careless, name="the careless one")
trio.run(main)
""")
    assert s.finish() == 0, s.err.decode()
    began = s.stalls()
    assert len(began) == 1, s.records()
    assert began[0]["stall_details"]["detail"] == "the careless one"


BATCH = """
import time, trio, perpetuo
async def short_step(deadline):
    await trio.sleep_until(deadline)
    time.sleep(0.002)  # no step is a stall...
async def main():
    perpetuo.instrument_trio(mode=MODE)
    perpetuo.start_watcher(alert_interval=0.2)
    await trio.sleep(0.1)
    deadline = trio.current_time() + 0.1
    async with trio.open_nursery() as nursery:
        for _ in range(300):  # ...but the batch of 300 of them is, 0.6 s
            nursery.start_soon(short_step, deadline)
    time.sleep(0.6)  # and one task blocking
    await trio.sleep(0.1)
trio.run(main)
"""


def test_io_waits_mode(run):
    """Trio calls the I/O-wait hooks between run-loop batches: one task
    blocking is caught, and so is a batch of short steps that together hold
    the loop too long, which the task-steps mode cannot see."""
    s = run(BATCH.replace("MODE", repr("io_waits")))
    assert s.finish() == 0, s.err.decode()
    began = s.stalls()
    assert len(began) == 2, s.records()
    for r in began:
        assert r["additional_info"]["name"].startswith("Trio run loop")
        assert r["stall_details"]["detail"] is None  # no task in this mode


def test_task_steps_mode_sees_only_the_blocking_task(run):
    s = run(BATCH.replace("MODE", repr("task_steps")))
    assert s.finish() == 0, s.err.decode()
    began = s.stalls()
    assert len(began) == 1, s.records()
    assert began[0]["stall_details"]["detail"] == "__main__.main"


@pytest.mark.parametrize("suppress,limited", [(10.0, True), (0.0, False)])
def test_traceback_suppress_is_honoured(run, suppress, limited):
    # The original passed the alert interval in its place.
    s = run(f"""
import threading, time, perpetuo
perpetuo.start_watcher(alert_interval=0.1, traceback_suppress={suppress})
t = perpetuo.StallTracker("twice", threading.get_ident())
t.go_idle()
for _ in range(2):
    with t:
        time.sleep(0.3)
    time.sleep(0.1)
t.close()
""")
    assert s.finish() == 0, s.err.decode()
    began = s.stalls()
    assert len(began) == 2, s.records()
    assert began[0]["stall_details"]["rate_limited"] is False
    assert began[0]["stall_details"]["relevant_traces"]
    assert began[1]["stall_details"]["rate_limited"] is limited
    assert bool(began[1]["stall_details"]["relevant_traces"]) is not limited
