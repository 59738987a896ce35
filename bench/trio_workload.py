"""One measured process of bench/trio_overhead.py: a Trio program, with or
without a stall tracker's instrument, in one of five roles.

Usage: trio_workload.py --hooks HOOKS [--watcher] ROLE [options]

HOOKS, added with trio.lowlevel.add_instrument() inside the run:
  none         nothing: plain trio
  perpetuo     perpetuo.instrument_trio(): whichever perpetuo is importable
               (PYTHONPATH decides: this project's, or the original)
  perpetuo-io  perpetuo.instrument_trio(mode="io_waits") (this project's only)
  null-c       before/after_task_step are the builtin `id`: what trio's own
               dispatch costs, with hooks that do (almost) nothing in C
  null-py      before/after_task_step are Python methods that do nothing
  count        counts task steps and I/O waits (server role: printed at the
               end as {"steps":N,"io_waits":N})
--watcher      perpetuo.start_watcher() after the instrument

ROLE
  steps  --tasks 2,100 --steps N
         For each task count, that many tasks each `await checkpoint()` in a
         loop, N task steps in all (after a warm-up of N/10); prints
         {"tasks":T,"steps":S,"ns":WALL,"cpu_ns":THREAD_CPU} per count.
  hooks  --iterations N
         Where an instrument's time goes, inside one task step: for each of
         the no-op C hooks, the no-op Python hooks and (when HOOKS names it)
         perpetuo's instrument, N pairs of after_task_step + before_task_step
         (before_task_step alone for an instrument without the other: this
         project's, which ticks at each step's start) called directly, then
         through trio's dispatch (an Instruments object as trio.run's, with
         that instrument alone), net of an empty loop; prints
         {"hooks":NAME,"direct_ns":PAIR,"dispatch_ns":PAIR} for each, and for
         perpetuo's "run_group_ns": through the run's own group (whose class
         instrument_trio() may change), net of trio's empty one.
  server prints {"port":P}, then echoes what each connection sends until
         stdin closes.
  load   --port P --clients C --seconds T --size B (plain trio, no hooks)
         C connections each send B bytes and read them back, in a loop;
         prints "start" and "stop" around the T measured seconds (after a
         warm-up), then {"round_trips":N,"ns":ELAPSED,"all_round_trips":N}
         (the last counts the warm-up too).
  stall  --seconds S --settle D
         After D seconds, a task blocks the run loop in time.sleep(S) while a
         second thread reads time.perf_counter_ns() in a loop; prints
         {"sleep_began":MONOTONIC_NS,"gap_ns":LONGEST_GAP,"reads":N}.

Every role but load first prints {"ready":...} (which perpetuo and trio it
runs) and waits for a line on stdin: the driver answers once the watcher
says it is watching, so the measured part never overlaps its start.
Only trio, perpetuo, the standard library and bench/workloadlib.py are
used.
"""

import argparse
import sys
import threading
import time

import trio

from workloadlib import add_load_role, load_state, load_window, say

# Warm-up steps as a fraction of the measured ones.
WARMUP = 0.1
# The stall's second thread stops reading the clock this long before the
# sleep ends, so the sleeper waking up and asking for the GIL is not counted
# as a gap.
SPIN_MARGIN_S = 0.05


class NullCHooks:
    """Hooks that are C callables doing nothing: `id` is found on the class,
    is no descriptor, so trio calls id(task) with no Python frame."""

    before_task_step = id
    after_task_step = id


class NullPyHooks:
    def before_task_step(self, task):
        pass

    def after_task_step(self, task):
        pass


class CountingHooks:
    def __init__(self):
        self.counts = {"steps": 0, "io_waits": 0}

    def before_task_step(self, task):
        self.counts["steps"] += 1

    def after_io_wait(self, timeout):
        self.counts["io_waits"] += 1


async def setup(args):
    """Adds the hooks (inside the run, as instrument_trio() requires) and
    starts the watcher; then tells the driver and waits for its go."""
    info = {"ready": True, "trio": trio.__version__, "perpetuo": None}
    if args.hooks.startswith("perpetuo") or args.watcher:
        import perpetuo

        info["perpetuo"] = perpetuo.__file__
        # This project's package says which backend it runs on.
        info["backend"] = getattr(getattr(perpetuo, "_backend", None),
                                  "name", None)
    if args.hooks == "perpetuo":
        perpetuo.instrument_trio()
    elif args.hooks == "perpetuo-io":
        perpetuo.instrument_trio(mode="io_waits")
    elif args.hooks == "null-c":
        trio.lowlevel.add_instrument(NullCHooks())
    elif args.hooks == "null-py":
        trio.lowlevel.add_instrument(NullPyHooks())
    elif args.hooks == "count":
        args.counter = CountingHooks()
        trio.lowlevel.add_instrument(args.counter)
    if args.watcher:
        perpetuo.start_watcher(alert_interval=args.alert_interval,
                               json_mode=True)
    say(info)
    # In a worker thread: the run loop keeps going (and its tracker idle).
    await trio.to_thread.run_sync(sys.stdin.readline)


async def stepper(count):
    checkpoint = trio.lowlevel.checkpoint
    for _ in range(count):
        await checkpoint()


async def steps_round(tasks, steps):
    per_task = max(1, steps // tasks)
    start = time.perf_counter_ns()
    start_cpu = time.thread_time_ns()
    async with trio.open_nursery() as nursery:
        for _ in range(tasks):
            nursery.start_soon(stepper, per_task)
    return {"tasks": tasks, "steps": tasks * per_task,
            "ns": time.perf_counter_ns() - start,
            "cpu_ns": time.thread_time_ns() - start_cpu}


async def run_steps(args):
    await setup(args)
    for tasks in args.tasks:
        await steps_round(tasks, int(args.steps * WARMUP))
        say(await steps_round(tasks, args.steps))


def current_instruments():
    """The run's Instruments object. Private to trio: the benchmark needs
    the instrument perpetuo added, which no public API returns, and the
    very dispatch the run loop uses."""
    from trio._core._run import GLOBAL_RUN_CONTEXT

    return GLOBAL_RUN_CONTEXT.runner.instruments


def time_direct(iterations, hooks, task):
    """ns per hooks.after_task_step(task) + hooks.before_task_step(task)
    (or before_task_step alone, for an instrument with no after hook), net
    of the same empty loop. In that order: the step this runs in is active,
    and stays so."""
    start = time.perf_counter_ns()
    for _ in range(iterations):
        pass
    empty = time.perf_counter_ns() - start
    after = getattr(hooks, "after_task_step", None)
    start = time.perf_counter_ns()
    if after is None:
        for _ in range(iterations):
            hooks.before_task_step(task)
    else:
        for _ in range(iterations):
            after(task)
            hooks.before_task_step(task)
    return (time.perf_counter_ns() - start - empty) / iterations


def time_dispatch(iterations, dispatch, task):
    """The same pair, as trio's run loop calls it."""
    start = time.perf_counter_ns()
    for _ in range(iterations):
        pass
    empty = time.perf_counter_ns() - start
    start = time.perf_counter_ns()
    for _ in range(iterations):
        if "after_task_step" in dispatch:
            dispatch.call("after_task_step", task)
        if "before_task_step" in dispatch:
            dispatch.call("before_task_step", task)
    return (time.perf_counter_ns() - start - empty) / iterations


async def run_hooks(args):
    await setup(args)
    from trio._core._instrumentation import Instruments

    task = trio.lowlevel.current_task()
    candidates = [("null-c", NullCHooks()), ("null-py", NullPyHooks())]
    if args.hooks.startswith("perpetuo"):
        added = list(current_instruments()["_all"])
        if len(added) != 1:
            raise RuntimeError("expected one instrument in the run, found %r"
                               % added)
        candidates.append((args.hooks, added[0]))
    empty = Instruments([])
    for name, hooks in candidates:
        result = {"hooks": name,
                  "direct_ns": time_direct(args.iterations, hooks, task),
                  "dispatch_ns": time_dispatch(args.iterations,
                                               Instruments([hooks]), task)
                  - time_dispatch(args.iterations, empty, task)}
        if name.startswith("perpetuo"):
            # The run's own group, whose class instrument_trio() may have
            # changed so as to run the hooks itself.
            result["run_group_ns"] = time_dispatch(
                args.iterations, current_instruments(), task) - \
                time_dispatch(args.iterations, empty, task)
        say(result)


async def echo(stream):
    try:
        while True:
            data = await stream.receive_some(65536)
            if not data:
                return
            await stream.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


async def run_server(args):
    await setup(args)
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, echo, listeners)
        say({"port": listeners[0].socket.getsockname()[1]})
        await trio.to_thread.run_sync(sys.stdin.read)
        nursery.cancel_scope.cancel()
    if args.hooks == "count":
        say(args.counter.counts)


async def run_load(args):
    message = b"x" * args.size
    state = load_state()

    async def client(stream):
        while not state["done"]:
            await stream.send_all(message)
            got = 0
            while got < args.size:
                data = await stream.receive_some(args.size - got)
                if not data:
                    raise RuntimeError("the server closed a connection")
                got += len(data)
            state["all"] += 1
            if state["counting"]:
                state["count"] += 1

    streams = [await trio.open_tcp_stream("127.0.0.1", args.port)
               for _ in range(args.clients)]
    async with trio.open_nursery() as nursery:
        for stream in streams:
            nursery.start_soon(client, stream)
        elapsed = await load_window(trio.sleep, state, args)
    for stream in streams:
        await stream.aclose()
    say({"round_trips": state["count"], "ns": elapsed,
         "all_round_trips": state["all"]})


def spin(begin, result, seconds):
    """Reads the clock in a loop for `seconds`; keeps the longest gap."""
    begin.wait()
    now = time.perf_counter_ns()
    end = now + int(seconds * 1e9)
    longest = reads = 0
    while now < end:
        before = now
        now = time.perf_counter_ns()
        reads += 1
        if now - before > longest:
            longest = now - before
    result["gap_ns"] = longest
    result["reads"] = reads


async def run_stall(args):
    await setup(args)
    begin = threading.Event()
    result = {}
    spinner = threading.Thread(
        target=spin, args=(begin, result, args.seconds - SPIN_MARGIN_S))
    spinner.start()
    await trio.sleep(args.settle)
    begin.set()
    sleep_began = time.monotonic_ns()
    time.sleep(args.seconds)
    spinner.join()
    say({"sleep_began": sleep_began, **result})
    # Time for the watcher's last records before the process ends.
    await trio.sleep(args.tail)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hooks", default="none",
                        choices=["none", "perpetuo", "perpetuo-io", "null-c",
                                 "null-py", "count"])
    parser.add_argument("--watcher", action="store_true")
    parser.add_argument("--alert-interval", type=float, default=0.2)
    roles = parser.add_subparsers(dest="role", required=True)
    steps = roles.add_parser("steps")
    steps.add_argument("--tasks", default="2,100",
                       type=lambda s: [int(n) for n in s.split(",")])
    steps.add_argument("--steps", type=int, default=200000)
    hooks = roles.add_parser("hooks")
    hooks.add_argument("--iterations", type=int, default=300000)
    roles.add_parser("server")
    add_load_role(roles)
    stall = roles.add_parser("stall")
    stall.add_argument("--seconds", type=float, default=1.0)
    stall.add_argument("--settle", type=float, default=0.1)
    stall.add_argument("--tail", type=float, default=0.3)
    args = parser.parse_args()
    role = {"steps": run_steps, "hooks": run_hooks, "server": run_server,
            "load": run_load, "stall": run_stall}[args.role]
    trio.run(role, args)


if __name__ == "__main__":
    main()
