"""asyncio: on asyncio's own loop, the loop's tracker is active while the
loop runs callbacks, idle while it waits in its selector; on uvloop, a
heartbeat the loop runs keeps it moving. Either way a real watcher reports a
callback that blocks, while it blocks, with the task's frames, and nothing
else."""

import pytest

from conftest import without_perpetuo

# Each scenario starts with USE_LOOP, run with the loop kind as argv[1].
# "asyncio": the default loop (an epoll selector: perpetuo stands in for its
# epoll object); "select": a loop on a SelectSelector (perpetuo stands in
# for the selector).
USE_LOOP = """
import asyncio, selectors, sys
if sys.argv[1] == "uvloop":
    import uvloop
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    new_loop = uvloop.new_event_loop
elif sys.argv[1] == "select":
    def new_loop():
        return asyncio.SelectorEventLoop(selectors.SelectSelector())
    class Policy(asyncio.DefaultEventLoopPolicy):
        def new_event_loop(self):
            return new_loop()
    asyncio.set_event_loop_policy(Policy())
else:
    new_loop = asyncio.new_event_loop
MECHANISM = {"asyncio": "selector", "select": "selector",
             "uvloop": "heartbeat"}[sys.argv[1]]
"""
MECHANISM = {"asyncio": "selector", "select": "selector",
             "uvloop": "heartbeat"}


@pytest.fixture(params=["asyncio", "select", "uvloop"])
def loop_kind(request):
    if request.param == "uvloop":
        pytest.importorskip(
            "uvloop", reason="uvloop is not installed for this Python")
    return request.param


BLOCKING = USE_LOOP + """
import time, perpetuo

def deep_in_the_handler(kind):
    print("BLOCK", time.monotonic_ns(), flush=True)
    if kind == "sleep":
        time.sleep(1.0)  # BLOCKS
    else:
        perpetuo.stall_gil(1.0)  # BLOCKS
    print("UNBLOCK", time.monotonic_ns(), flush=True)

async def handler(kind):
    await asyncio.sleep(0.1)
    deep_in_the_handler(kind)

async def main():
    print(perpetuo.instrument_asyncio(), flush=True)
    perpetuo.start_watcher(alert_interval=0.2, json_mode=True)
    await asyncio.gather(handler(sys.argv[2]), asyncio.sleep(0.2))

asyncio.run(main())
"""


@pytest.mark.parametrize("kind", ["sleep", "stall_gil"])
def test_a_blocking_handler_is_reported_while_it_blocks(run, loop_kind, kind):
    s = run(BLOCKING, args=(loop_kind, kind))
    assert s.finish() == 0, s.err.decode()
    lines = s.lines()
    assert lines[0] == MECHANISM[loop_kind]
    marks = dict(line.split() for line in lines[1:])
    began = s.stalls("stall_began")
    assert len(began) == 1, s.records()
    r = began[0]
    assert r["additional_info"]["name"].startswith("asyncio loop (thread 0x")
    assert int(marks["BLOCK"]) < r["monotonic_ns"] < int(marks["UNBLOCK"])
    details = r["stall_details"]
    assert details["thread"]["tid"] == s.proc.pid
    trace = details["relevant_traces"][0]
    python = without_perpetuo(f for f in trace if not f["native"])
    assert [f["name"] for f in python[-2:]] == ["handler",
                                                "deep_in_the_handler"]
    assert python[-1]["line"] == next(
        n for n, line in enumerate(BLOCKING.splitlines(), 1)
        if f"{'time.sleep' if kind == 'sleep' else 'stall_gil'}" in line
        and "# BLOCKS" in line)
    # The task, by the coroutine it runs (not main's, which waits in
    # gather: another task).
    assert details["coroutine"]["name"] == "handler", details["coroutine"]
    assert details["coroutine"]["line"] == python[-2]["line"]
    ended = s.stalls("stall_ended")
    assert len(ended) == 1 and ended[0]["stall_details"]["total_ms"] >= 700


def test_a_busy_server_without_slow_handlers_is_no_stall(run, loop_kind):
    s = run(USE_LOOP + """
import time, perpetuo

async def serve(reader, writer):
    while data := await reader.read(100):
        writer.write(data)
        await writer.drain()
    writer.close()

async def client(port, stop):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    n = 0
    while time.monotonic() < stop:
        writer.write(b"ping")
        await writer.drain()
        await reader.readexactly(4)
        n += 1
    writer.close()
    return n

async def main():
    print(perpetuo.instrument_asyncio(), flush=True)
    perpetuo.start_watcher(alert_interval=0.2, json_mode=True)
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    stop = time.monotonic() + 3.0
    counts = await asyncio.gather(*(client(port, stop) for _ in range(10)))
    server.close()
    await server.wait_closed()
    print("REQUESTS", sum(counts), flush=True)

asyncio.run(main())
""", args=(loop_kind,))
    assert s.finish() == 0, s.err.decode()
    lines = s.lines()
    assert lines[0] == MECHANISM[loop_kind]
    requests = int(lines[1].split()[1])
    assert requests >= 10_000, requests
    assert any(r.get("event") == "watch_started" for r in s.records())
    assert s.stalls() == [], s.records()


def test_stopped_closed_and_new_loops(run, loop_kind):
    s = run(USE_LOOP + """
import time, perpetuo
from perpetuo import _setup

def instrumentation(loop):
    if MECHANISM == "selector":
        return _setup._selector_stand_in(loop)
    return loop._perpetuo_heartbeat.beat

async def instrument_twice():
    assert perpetuo.instrument_asyncio() == MECHANISM
    assert perpetuo.instrument_asyncio() == MECHANISM
    return instrumentation(asyncio.get_running_loop())

perpetuo.start_watcher(alert_interval=0.2, json_mode=True)
loop = new_loop()
hook = loop.run_until_complete(instrument_twice())
assert hook.tracking
# Stopped, not closed: not a stall, however long; neither is the loop
# instrumented before it runs.
time.sleep(0.6)
loop.run_until_complete(asyncio.sleep(0.05))
time.sleep(0.6)
loop.close()
assert not hook.tracking
before = new_loop()
assert perpetuo.instrument_asyncio(before) == MECHANISM
time.sleep(0.6)
before.run_until_complete(asyncio.sleep(0.05))
time.sleep(0.6)
before.close()
# A new loop is instrumented afresh; many, and none leaks its tracker.
for _ in range(1100):
    asyncio.run(instrument_twice())
held = [perpetuo.StallTracker(f"t{i}", 1) for i in range(1023)]
print("OK", len(held), flush=True)
""", args=(loop_kind,))
    assert s.finish() == 0, s.err.decode()
    assert s.lines() == ["OK 1023"]
    assert s.stalls() == [], s.records()


def test_runs_ending_every_way_are_no_stall(run, loop_kind):
    """The run in progress when instrumenting ends through a loop.stop()
    bound before (a timer, a signal handler), or through an exception; a
    nested run the loop refuses leaves the tracker as it was, and a stall
    after it is still reported, once."""
    s = run(USE_LOOP + """
import time, perpetuo

perpetuo.start_watcher(alert_interval=0.2, json_mode=True)

async def instrument():
    perpetuo.instrument_asyncio()

# 1. Stopped by a timer set before the loop was instrumented.
loop = new_loop()
loop.call_later(0.2, loop.stop)
loop.call_soon(lambda: loop.create_task(instrument()))
loop.run_forever()
time.sleep(0.6)
loop.close()

# 2. Ended by an exception out of a callback.
loop = new_loop()
def interrupt():
    raise KeyboardInterrupt
async def instrument_then_interrupt():
    perpetuo.instrument_asyncio()
    loop.call_later(0.1, interrupt)
    await asyncio.sleep(5)
try:
    loop.run_until_complete(instrument_then_interrupt())
except KeyboardInterrupt:
    pass
time.sleep(0.6)
loop.close()

# 3. A nested run refused, then a real stall.
def blocks():
    print("BLOCK", time.monotonic_ns(), flush=True)
    time.sleep(0.8)
    print("UNBLOCK", time.monotonic_ns(), flush=True)

async def nested_then_block():
    perpetuo.instrument_asyncio()
    await asyncio.sleep(0.1)
    coro = asyncio.sleep(0)
    try:
        asyncio.get_running_loop().run_until_complete(coro)
    except RuntimeError:
        coro.close()
        print("REFUSED", flush=True)
    await asyncio.sleep(0.1)
    blocks()

loop = new_loop()
loop.run_until_complete(nested_then_block())
loop.close()
""", args=(loop_kind,))
    assert s.finish() == 0, s.err.decode()
    lines = s.lines()
    assert "REFUSED" in lines, lines
    marks = dict(line.split() for line in lines if line != "REFUSED")
    began = s.stalls("stall_began")
    assert len(began) == 1, s.records()
    assert int(marks["BLOCK"]) < began[0]["monotonic_ns"] < \
        int(marks["UNBLOCK"])
    names = [f["name"] for f in began[0]["stall_details"]["relevant_traces"][0]
             if not f["native"]]
    assert names[-2:] == ["nested_then_block", "blocks"], names


def test_a_loop_that_refuses_to_close_stays_tracked():
    uvloop = pytest.importorskip(
        "uvloop", reason="uvloop is not installed for this Python")
    import asyncio
    import perpetuo

    async def main():
        loop = asyncio.get_running_loop()
        perpetuo.instrument_asyncio()
        with pytest.raises(RuntimeError):
            loop.close()
        assert loop._perpetuo_heartbeat.beat.tracking

    loop = uvloop.new_event_loop()
    loop.run_until_complete(main())
    loop.close()


def test_heartbeats_slower_than_half_the_threshold_are_refused(run):
    pytest.importorskip("uvloop", reason="uvloop is not installed for this "
                        "Python")
    s = run(USE_LOOP + """
import perpetuo

# Instrumented first, then a watcher too quick for its heartbeat.
loop = new_loop()
perpetuo.instrument_asyncio(loop, heartbeat_interval=0.15)
try:
    perpetuo.start_watcher(alert_interval=0.2)
except ValueError as e:
    print("WATCHER", e, flush=True)
loop.close()
# The watcher first, then a heartbeat too slow for it.
perpetuo.start_watcher(alert_interval=0.2, json_mode=True)
loop = new_loop()
try:
    perpetuo.instrument_asyncio(loop, heartbeat_interval=0.5)
except ValueError as e:
    print("LOOP", e, flush=True)
assert perpetuo.instrument_asyncio(loop, heartbeat_interval=0.1) == \
    "heartbeat"
loop.run_until_complete(asyncio.sleep(1.0))  # idle, beating: no stall
loop.close()
""", args=("uvloop",))
    assert s.finish() == 0, s.err.decode()
    lines = s.lines()
    assert lines[0].startswith("WATCHER the heartbeat's interval (0.15 s) "
                               "must be at most half"), lines
    assert lines[1].startswith("LOOP the heartbeat's interval (0.5 s)"), lines
    assert s.stalls() == [], s.records()


def test_uninstrumented_loops_are_as_they_were(run, loop_kind):
    """uninstrument_asyncio() releases the tracker and puts the loop back:
    a callback that blocks afterwards is not watched."""
    s = run(USE_LOOP + """
import time, perpetuo
from perpetuo import _setup

async def main():
    loop = asyncio.get_running_loop()
    selector = getattr(loop, "_selector", None)
    poller = getattr(selector, "_selector", None)
    attributes = set(vars(loop))
    assert perpetuo.instrument_asyncio() == MECHANISM
    hook = (_setup._selector_stand_in(loop) if MECHANISM == "selector"
            else loop._perpetuo_heartbeat.beat)
    assert hook.tracking
    await asyncio.sleep(0.1)
    assert perpetuo.uninstrument_asyncio() is True
    assert perpetuo.uninstrument_asyncio() is False
    assert not hook.tracking
    assert getattr(loop, "_selector", None) is selector
    assert getattr(selector, "_selector", None) is poller
    assert set(vars(loop)) == attributes
    await asyncio.sleep(0.1)
    time.sleep(0.6)  # not watched any more
    print("OK", flush=True)

perpetuo.start_watcher(alert_interval=0.2, json_mode=True)
asyncio.run(main())
""", args=(loop_kind,))
    assert s.finish() == 0, s.err.decode()
    assert s.lines() == ["OK"]
    assert any(r.get("event") == "watch_started" for r in s.records())
    assert s.stalls() == [], s.records()


def test_a_loop_run_by_another_thread_blames_that_thread(run):
    """A heartbeat loop instrumented in one thread and run in another: the
    tracker names the thread that runs it."""
    pytest.importorskip("uvloop", reason="uvloop is not installed for this "
                        "Python")
    s = run(USE_LOOP + """
import threading, time, perpetuo

loop = new_loop()
assert perpetuo.instrument_asyncio(loop) == "heartbeat"
perpetuo.start_watcher(alert_interval=0.2, json_mode=True)

def blocks():
    time.sleep(0.8)

async def main():
    await asyncio.sleep(0.1)
    blocks()

def runs():
    print("TID", threading.get_native_id(), flush=True)
    loop.run_until_complete(main())

worker = threading.Thread(target=runs)
worker.start()
worker.join()
loop.close()
""", args=("uvloop",))
    assert s.finish() == 0, s.err.decode()
    tid = int(s.lines()[0].split()[1])
    began = s.stalls("stall_began")
    assert len(began) == 1, s.records()
    details = began[0]["stall_details"]
    assert details["thread"]["tid"] == tid
    names = [f["name"] for f in details["relevant_traces"][0]
             if not f["native"]]
    assert names[-2:] == ["main", "blocks"], names


def test_the_stand_in_sits_where_the_loop_waits():
    """On the default loop (an epoll selector) perpetuo stands in for the
    selector's epoll object; on a SelectSelector, for the selector."""
    import asyncio
    import selectors
    import perpetuo
    from perpetuo import _setup
    from perpetuo._backend import api

    poller_type = getattr(api, "AsyncioPoller", None)
    loop = asyncio.new_event_loop()
    try:
        selector = loop._selector
        assert perpetuo.instrument_asyncio(loop) == "selector"
        stand_in = _setup._selector_stand_in(loop)
        assert stand_in.tracking
        if poller_type is not None and \
                isinstance(selector, _setup._poll_like_selectors()):
            assert loop._selector is selector
            assert isinstance(selector._selector, poller_type)
            assert selector._selector.tracking
            assert selector.select(0) == []  # waits through the stand-in
        else:
            assert isinstance(loop._selector, api.AsyncioSelector)
    finally:
        loop.close()
    assert not stand_in.tracking  # closing the loop released it
    loop = asyncio.SelectorEventLoop(selectors.SelectSelector())
    try:
        assert perpetuo.instrument_asyncio(loop) == "selector"
        assert isinstance(loop._selector, api.AsyncioSelector)
    finally:
        loop.close()


def test_instrument_asyncio_outside_a_loop():
    import perpetuo

    with pytest.raises(RuntimeError):
        perpetuo.instrument_asyncio()


def test_loops_it_cannot_instrument_are_refused():
    import perpetuo

    with pytest.raises(TypeError, match="cannot instrument a object loop"):
        perpetuo.instrument_asyncio(object())

    class NoLoop:
        pass

    with pytest.raises(TypeError, match="it has no run_forever"):
        perpetuo.instrument_asyncio(NoLoop())


def test_heartbeat_arguments_are_checked():
    uvloop = pytest.importorskip(
        "uvloop", reason="uvloop is not installed for this Python")
    import perpetuo

    loop = uvloop.new_event_loop()
    try:
        with pytest.raises(ValueError, match="more than 0"):
            perpetuo.instrument_asyncio(loop, heartbeat_interval=0)
        with pytest.raises(TypeError, match="number of seconds"):
            perpetuo.instrument_asyncio(loop, heartbeat_interval="1")
        assert perpetuo.instrument_asyncio(loop, heartbeat_interval=0.5) == \
            "heartbeat"
        assert loop._perpetuo_heartbeat.interval == 0.5
    finally:
        loop.close()
    with pytest.raises(RuntimeError, match="closed"):
        perpetuo.instrument_asyncio(loop)


def test_a_loop_running_in_another_thread_is_refused():
    uvloop = pytest.importorskip(
        "uvloop", reason="uvloop is not installed for this Python")
    import threading
    import perpetuo

    loop = uvloop.new_event_loop()
    started = threading.Event()
    loop.call_soon(started.set)
    worker = threading.Thread(target=loop.run_forever)
    worker.start()
    try:
        assert started.wait(10)
        with pytest.raises(RuntimeError, match="thread that runs the loop"):
            perpetuo.instrument_asyncio(loop)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        worker.join(10)
        loop.close()
