"""One measured process of bench/asyncio_overhead.py and
bench/asyncio_detectors.py: an asyncio program on the default loop or on
uvloop, with or without a stall detector, in one of four roles.

Usage: asyncio_workload.py [--cpu N] --loop LOOP --mode MODE ROLE [options]

LOOP: asyncio (the default selector loop) or uvloop (uvloop.new_event_loop()).

MODE, set up inside the running loop before the measured part:
  plain       nothing
  instrument  perpetuo.instrument_asyncio(loop), no watcher
  ours        perpetuo.instrument_asyncio(loop) + perpetuo.start_watcher()
              (the defaults: poll 0.05 s, alert 0.2 s, JSON on stderr)
  debug       loop.set_debug(True); loop.slow_callback_duration = 0.1
  aiocop      as aiocop's README sets it up: patch_audit_functions(),
              start_blocking_io_detection(), detect_slow_tasks(threshold_ms=
              200, on_slow_task=...), activate(); each event is printed on
              stderr as one JSON line {"aiocop": ...}
  pyleak      the measured part runs inside pyleak's
              `async with no_event_loop_blocking(action="log", threshold=0.2)`
              (check_interval 0.05, its default), logging to stderr
A mode that cannot set itself up on this loop prints {"unavailable": WHY}
and exits 0: instrument_asyncio() raising TypeError, or a missing package.

ROLE
  pingpong --iterations N --tasks-iterations M
           (a) one callback per loop iteration: a callback that schedules
           itself with loop.call_soon(), N times (after a warm-up of N/10);
           (b) 100 tasks each `await asyncio.sleep(0)` M times in all (100
           callbacks per iteration). Prints {"case":..., "n":..., "ns":WALL,
           "cpu_ns":THREAD_CPU} for each.
  server   prints {"port":P}, then echoes what each connection sends
           (asyncio streams: start_server, read, write, drain) until stdin
           closes.
  load     --port P --clients C --seconds T --size B (plain, default loop,
           protocols) C connections each send B bytes and wait for them to
           come back, in a loop; prints "start" and "stop" around the T
           measured seconds (after a warm-up), then {"round_trips":N,"ns":...}.
  stall    --kind sleep|gil --seconds S
           After a settling time, a task's step calls block_the_loop(),
           which prints {"began":MONOTONIC_NS} on stdout, blocks S seconds
           in time.sleep() (kind sleep) or perpetuo.stall_gil() (kind gil,
           holding the GIL in C), then prints {"ended":MONOTONIC_NS}; the
           loop then runs on for a while, so that every detector has had
           the time to report.

Every role but load first prints {"ready":...} (the loop, what the mode
returned, the versions) and waits for a line on stdin: the driver answers
once the watcher says it is watching, so the measured part never overlaps
its start.
"""

import argparse
import asyncio
import json
import logging
import os
import sys
import time

from workloadlib import add_load_role, load_state, load_window, say

WARMUP = 0.1
TASKS = 100
STALL_THRESHOLD_S = 0.2   # every detector's threshold, debug mode's aside
DEBUG_SLOW_S = 0.1
SETTLE_S = 0.3
TAIL_S = 0.6


def err_json(obj):
    sys.stderr.write(json.dumps(obj) + "\n")
    sys.stderr.flush()


def new_loop(kind):
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def versions(args):
    info = {"python": sys.version.split()[0], "loop": args.loop}
    if args.loop == "uvloop":
        import uvloop

        info["uvloop"] = uvloop.__version__
    return info


def on_aiocop_event(event):
    samples = event.cpu_stack_samples or []
    err_json({"aiocop": {
        "reason": event.reason,
        "elapsed_ms": event.elapsed_ms,
        "exceeded": event.exceeded_threshold,
        "blocking_events": [{"event": e["event"], "trace": e["trace"],
                             "entry_point": e["entry_point"]}
                            for e in event.blocking_events],
        "cpu_samples": [{"trace": s["trace"], "count": s["count"]}
                        for s in samples],
        "at": time.monotonic_ns()}})


class Mode:
    """Sets up the mode inside the running loop; `scope()` is the context
    the measured part runs in (pyleak's detector, or nothing)."""

    def __init__(self, args):
        self.args = args
        self.how = None
        self.pyleak = None

    def setup(self, loop):
        mode = self.args.mode
        if mode in ("instrument", "ours"):
            import perpetuo

            try:
                self.how = perpetuo.instrument_asyncio(loop)
            except TypeError as e:
                return "not instrumentable: %s" % e
            if mode == "ours":
                perpetuo.start_watcher()
        elif mode == "debug":
            loop.set_debug(True)
            loop.slow_callback_duration = DEBUG_SLOW_S
        elif mode == "aiocop":
            try:
                import aiocop
            except ImportError as e:
                return str(e)
            aiocop.patch_audit_functions()
            aiocop.start_blocking_io_detection()
            aiocop.detect_slow_tasks(
                threshold_ms=int(STALL_THRESHOLD_S * 1000),
                on_slow_task=on_aiocop_event)
            aiocop.activate()
        elif mode == "pyleak":
            try:
                from pyleak import no_event_loop_blocking
            except ImportError as e:
                return str(e)
            self.pyleak = no_event_loop_blocking(action="log",
                                                 threshold=STALL_THRESHOLD_S)
        return None

    async def __aenter__(self):
        if self.pyleak is not None:
            await self.pyleak.__aenter__()
        return self

    async def __aexit__(self, *exc):
        if self.pyleak is not None:
            await self.pyleak.__aexit__(*exc)


async def setup(args):
    loop = asyncio.get_running_loop()
    mode = Mode(args)
    why = mode.setup(loop)
    if why is not None:
        say({"unavailable": why})
        return None
    say({"ready": True, "how": mode.how, **versions(args)})
    await loop.run_in_executor(None, sys.stdin.readline)
    return mode


def pingpong_once(loop, n):
    done = loop.create_future()
    left = n

    def ping():
        nonlocal left
        left -= 1
        if left:
            loop.call_soon(ping)
        else:
            done.set_result(None)

    loop.call_soon(ping)
    return done


async def yielder(count):
    sleep = asyncio.sleep
    for _ in range(count):
        await sleep(0)


async def tasks_once(n):
    per_task = max(1, n // TASKS)
    await asyncio.gather(*(yielder(per_task) for _ in range(TASKS)))
    return per_task * TASKS


async def measure(what, coro_factory, n):
    await coro_factory(max(1, int(n * WARMUP)))
    start = time.perf_counter_ns()
    start_cpu = time.thread_time_ns()
    done = await coro_factory(n)
    return {"case": what, "n": done if isinstance(done, int) else n,
            "ns": time.perf_counter_ns() - start,
            "cpu_ns": time.thread_time_ns() - start_cpu}


async def run_pingpong(args):
    mode = await setup(args)
    if mode is None:
        return
    loop = asyncio.get_running_loop()
    async with mode:
        results = [
            await measure("callback", lambda n: pingpong_once(loop, n),
                          args.iterations),
            await measure("tasks", tasks_once, args.tasks_iterations),
        ]
    for r in results:
        say(r)


async def echo(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    writer.close()


async def run_server(args):
    mode = await setup(args)
    if mode is None:
        return
    loop = asyncio.get_running_loop()
    async with mode:
        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        say({"port": server.sockets[0].getsockname()[1]})
        await loop.run_in_executor(None, sys.stdin.read)
        server.close()
        await server.wait_closed()


class Client(asyncio.Protocol):
    def __init__(self, state, message):
        self.state = state
        self.message = message
        self.got = 0

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.got += len(data)
        if self.got < len(self.message):
            return
        self.got = 0
        self.state["all"] += 1
        if self.state["counting"]:
            self.state["count"] += 1
        if not self.state["done"]:
            self.transport.write(self.message)


async def run_load(args):
    loop = asyncio.get_running_loop()
    message = b"x" * args.size
    state = load_state()
    clients = []
    for _ in range(args.clients):
        transport, client = await loop.create_connection(
            lambda: Client(state, message), "127.0.0.1", args.port)
        clients.append(transport)
    for transport in clients:
        transport.write(message)
    elapsed = await load_window(asyncio.sleep, state, args)
    for transport in clients:
        transport.close()
    say({"round_trips": state["count"], "ns": elapsed,
         "all_round_trips": state["all"]})


perpetuo = None


def block_the_loop(kind, seconds):
    say({"began": time.monotonic_ns()})
    if kind == "sleep":
        time.sleep(seconds)
    else:
        perpetuo.stall_gil(seconds)
    say({"ended": time.monotonic_ns()})


async def handler(kind, seconds):
    await asyncio.sleep(SETTLE_S)
    block_the_loop(kind, seconds)
    await asyncio.sleep(TAIL_S)


async def run_stall(args):
    global perpetuo
    # Imported before the detectors start: aiocop reports an import in a
    # callback as blocking I/O.
    import perpetuo

    mode = await setup(args)
    if mode is None:
        return
    async with mode:
        await handler(args.kind, args.seconds)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--loop", default="asyncio",
                        choices=["asyncio", "uvloop"])
    parser.add_argument("--cpu", type=int,
                        help="run on this CPU only (and so does a watcher "
                        "it starts)")
    parser.add_argument("--mode", default="plain",
                        choices=["plain", "instrument", "ours", "debug",
                                 "aiocop", "pyleak"])
    roles = parser.add_subparsers(dest="role", required=True)
    pingpong = roles.add_parser("pingpong")
    pingpong.add_argument("--iterations", type=int, default=200000)
    pingpong.add_argument("--tasks-iterations", type=int, default=200000)
    roles.add_parser("server")
    add_load_role(roles)
    stall = roles.add_parser("stall")
    stall.add_argument("--kind", choices=["sleep", "gil"], default="sleep")
    stall.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    if args.mode in ("debug", "pyleak"):
        # Where debug mode and pyleak write their reports.
        logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                            format="%(created).6f %(name)s: %(message)s")
    role = {"pingpong": run_pingpong, "server": run_server,
            "load": run_load, "stall": run_stall}[args.role]
    loop = new_loop(args.loop)
    try:
        loop.run_until_complete(role(args))
    finally:
        loop.close()


if __name__ == "__main__":
    main()
