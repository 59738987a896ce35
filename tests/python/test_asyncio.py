"""asyncio: the loop's tracker is active while the loop runs callbacks, idle
while it waits in its selector; a real watcher reports a callback that
blocks, while it blocks, with the task's frames."""

import pytest

BLOCKING = """
import asyncio, sys, time, perpetuo

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
    await asyncio.gather(handler(sys.argv[1]), asyncio.sleep(0.2))

asyncio.run(main())
"""


@pytest.mark.parametrize("kind", ["sleep", "stall_gil"])
def test_a_blocking_handler_is_reported_while_it_blocks(run, kind):
    s = run(BLOCKING, args=(kind,))
    assert s.finish() == 0, s.err.decode()
    lines = s.lines()
    assert lines[0] == "selector"
    marks = dict(line.split() for line in lines[1:])
    began = s.stalls("stall_began")
    assert len(began) == 1, s.records()
    r = began[0]
    assert r["additional_info"]["name"].startswith("asyncio loop (thread 0x")
    assert int(marks["BLOCK"]) < r["monotonic_ns"] < int(marks["UNBLOCK"])
    details = r["stall_details"]
    assert details["thread"]["tid"] == s.proc.pid
    trace = details["relevant_traces"][0]
    python = [f for f in trace if not f["native"]]
    assert [f["name"] for f in python[-2:]] == ["handler",
                                                "deep_in_the_handler"]
    assert python[-1]["line"] == next(
        n for n, line in enumerate(BLOCKING.splitlines(), 1)
        if f"{'time.sleep' if kind == 'sleep' else 'stall_gil'}" in line
        and "# BLOCKS" in line)
    ended = s.stalls("stall_ended")
    assert len(ended) == 1 and ended[0]["stall_details"]["total_ms"] >= 700


def test_a_busy_server_without_slow_handlers_is_no_stall(run):
    s = run("""
import asyncio, time, perpetuo

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
""")
    assert s.finish() == 0, s.err.decode()
    lines = s.lines()
    assert lines[0] == "selector"
    requests = int(lines[1].split()[1])
    assert requests >= 10_000, requests
    assert any(r.get("event") == "watch_started" for r in s.records())
    assert s.stalls() == [], s.records()


def test_stopped_closed_and_new_loops(run):
    s = run("""
import asyncio, time, perpetuo
from perpetuo import _perpetuo

async def instrument_twice():
    assert perpetuo.instrument_asyncio() == "selector"
    assert perpetuo.instrument_asyncio() == "selector"
    return asyncio.get_running_loop()._selector

perpetuo.start_watcher(alert_interval=0.2, json_mode=True)
loop = asyncio.new_event_loop()
selector = loop.run_until_complete(instrument_twice())
assert isinstance(selector, _perpetuo.AsyncioSelector) and selector.tracking
# Stopped, not closed: not a stall, however long.
time.sleep(0.6)
loop.run_until_complete(asyncio.sleep(0.05))
time.sleep(0.6)
loop.close()
assert not selector.tracking
# A new loop is instrumented afresh; many, and none leaks its tracker.
for _ in range(1100):
    asyncio.run(instrument_twice())
held = [perpetuo.StallTracker(f"t{i}", 1) for i in range(1023)]
print("OK", len(held), flush=True)
""")
    assert s.finish() == 0, s.err.decode()
    assert s.lines() == ["OK 1023"]
    assert s.stalls() == [], s.records()


def test_instrument_asyncio_outside_a_loop():
    import perpetuo

    with pytest.raises(RuntimeError):
        perpetuo.instrument_asyncio()


def test_loops_it_cannot_instrument_are_refused():
    uvloop = pytest.importorskip("uvloop", reason="uvloop is not installed")
    import perpetuo

    loop = uvloop.new_event_loop()
    try:
        with pytest.raises(TypeError, match="cannot instrument a Loop loop"):
            perpetuo.instrument_asyncio(loop)
    finally:
        loop.close()
