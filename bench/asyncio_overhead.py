#!/usr/bin/env python3
"""What instrumenting an asyncio loop costs, next to asyncio's debug mode,
on the default loop and on uvloop, in one run.

Every measurement is a fresh process of bench/asyncio_workload.py under
--python, in one of these configurations, on each loop:

  plain       no instrumentation (the baseline)
  instrument  perpetuo.instrument_asyncio(loop), no watcher
  ours        perpetuo.instrument_asyncio(loop) + perpetuo.start_watcher(),
              as a production setup runs it
  debug       loop.set_debug(True), loop.slow_callback_duration = 0.1

A configuration that cannot set itself up (instrument_asyncio() raising
TypeError on a loop it cannot instrument, uvloop not installed) is shown
as "n/a" with the reason, and the others go on.

Workloads, configurations interleaved (their order rotated each round),
medians:
  a. the worst case: a callback that schedules itself with call_soon(), so
     that every loop iteration runs one callback (one select() or one libuv
     iteration each), ITERATIONS times; then 100 tasks each awaiting
     asyncio.sleep(0) (100 callbacks per iteration). The loop thread's CPU
     time (and the wall clock) per callback; added: the median over rounds
     of the difference with plain on the same loop in the same round;
     x plain: plain's time / the configuration's (a throughput ratio).
     Debug mode runs a tenth of the iterations (it is 5-20 times slower).
     Every process starts its measured part SETTLE_S after it is ready (a
     watcher reads the target's debug information when it starts: about
     70 ms of CPU, a one-time cost).
  b. echo: the configuration's process is an asyncio streams echo server
     on loopback; a separate plain process (uvloop when installed, so that
     the load is not the bottleneck) runs 50 clients, each sending 64 bytes
     and waiting for them to come back, for ECHO_SECONDS after a warm-up:
     round trips per second, the loss against plain on the same loop in the
     same round, and the server's CPU time per round trip (its main
     thread's, /proc/PID/schedstat, over the same window) with the share of
     a core it used. Both processes run on one CPU (--echo-cpu, the last one
     by default): on loopback, server and clients take turns (each waits for
     the other's batch), so on two CPUs the round trips per second depend
     mostly on how fast an idle vCPU wakes up, which varies twofold from run
     to run on a shared VM; on one CPU they are 1 / (the server's CPU + the
     clients' CPU per round trip).

Usage: asyncio_overhead.py [--build DIR] [--python PATH] [--rounds N]
       [--iterations N] [--echo-rounds N] [--echo-seconds S]
       [--echo-cpu N|none] [--workloads a,b] [--loops asyncio,uvloop]
       [--raw FILE]
--build is this project's build directory (default: the current one);
--python the interpreter measured (default: this one). The staged package
comes first on PYTHONPATH. Exits non-zero, with one sentence, if a
configuration fails.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import asynciolib
from asynciolib import parse_loops, short_reason
from benchlib import (BenchError, exit_on_error, fixed, interleaved,
                      machine_description, median, print_end, spread)
from workerlib import Worker, measure_load

MODES = ("plain", "instrument", "ours", "debug")
CASES = (("callback", "1 callback/iteration"), ("tasks", "100 tasks"))
CLIENTS = 50
MESSAGE = 64
DEBUG_SHARE = 10      # debug mode runs 1/DEBUG_SHARE of the iterations
TIMEOUT = 120
ITERATION_GOAL_NS = 60
ECHO_GOAL = 0.02


class Bench(asynciolib.Bench):
    # A watcher reads the target's symbols and debug information once it
    # watches: tens of ms of CPU, a start-up cost kept out of the measured
    # part (every configuration waits alike).
    SETTLE_S = 0.3
    READY_TIMEOUT = TIMEOUT

    def __init__(self, args):
        super().__init__(args, "the interpreter")

    def pingpong(self, loop, mode):
        n = self.args.iterations
        if mode == "debug":
            n //= DEBUG_SHARE
        worker = self.start(loop, mode, "pingpong", "--iterations", str(n),
                            "--tasks-iterations", str(n))
        results = {}
        for _ in CASES:
            r = worker.wait_json("case", "a pingpong result", TIMEOUT)
            results[r["case"]] = {"cpu": r["cpu_ns"] / r["n"],
                                  "wall": r["ns"] / r["n"]}
        worker.finish()
        return results

    def echo(self, loop, mode):
        cpu = self.args.echo_cpu
        server = self.start(loop, mode, "server", cpu=cpu)
        try:
            port = server.wait_json("port", "the server's port")["port"]
            load = Worker("the load generator for %s %s" % (loop, mode),
                          self.workload(cpu) + [
                              "--loop", self.load_loop, "load",
                              "--port", str(port), "--clients",
                              str(CLIENTS), "--size", str(MESSAGE),
                              "--seconds", str(self.args.echo_seconds)],
                          self.env())
            r, used = measure_load(server, load)
            server.finish()
        finally:
            server.kill()
        if not r["round_trips"]:
            raise BenchError("%s %s: no round trip in the measured window"
                             % (loop, mode))
        return {"rate": r["round_trips"] * 1e9 / r["ns"],
                "cpu_us": used / 1e3 / r["round_trips"],
                "busy": used / r["ns"]}


def uvloop_version(python, env):
    out = subprocess.run(
        [python, "-c", "import uvloop; print(uvloop.__version__)"], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        universal_newlines=True)
    return out.stdout.strip() if out.returncode == 0 else None


def report_pingpong(bench, results, rounds):
    for clock, what in (("cpu", "the loop thread's CPU time"),
                        ("wall", "the wall clock")):
        print()
        print("a. Worst case: ns per callback (%s), median of %d runs "
              "(min..max);" % (what, rounds))
        print("   \"1 callback/iteration\": a call_soon() ping-pong, one "
              "callback per loop iteration;")
        print("   \"100 tasks\": 100 tasks each awaiting asyncio.sleep(0). "
              "added: median over rounds")
        print("   of the difference with plain on the same loop in the same "
              "round; x plain:")
        print("   plain's ns / this row's (throughput ratio)")
        head = "%-20s" % "loop, config" + "".join(
            " | %-20s %-15s %6s %7s" % (label, "", "added", "x plain")
            for _, label in CASES)
        print(head)
        print("-" * len(head))
        for label, loop, mode in available(bench):
            rows = results[loop][mode]
            base = results[loop]["plain"]
            line = "%-20s" % label
            for case, _ in CASES:
                values = [r[case][clock] for r in rows if r]
                pairs = [(r[case][clock], b[case][clock])
                         for r, b in zip(rows, base) if r and b]
                added = median([a - b for a, b in pairs])
                times = median([b / a for a, b in pairs])
                first = mode == "plain"
                line += " | %-20s %-15s %6s %7s" % (
                    fixed(median(values)), spread(values),
                    "" if first else fixed(added),
                    "" if first else fixed(times, 3))
            print(line)
        if clock == "cpu":
            for loop in bench.loops:
                if (loop, "ours") in bench.unavailable:
                    continue
                rows = results[loop]["ours"]
                base = results[loop]["plain"]
                added = median([r["callback"]["cpu"] - b["callback"]["cpu"]
                                for r, b in zip(rows, base) if r and b])
                print("Goal: ours adds <= %d ns per loop iteration "
                      "(worst case, %s): %s (%s ns)"
                      % (ITERATION_GOAL_NS, loop,
                         "met" if added <= ITERATION_GOAL_NS else "NOT met",
                         fixed(added)))


def available(bench):
    """(label, loop, mode) of each configuration in a table's order; those
    that could not run get their n/a row here."""
    for loop in bench.loops:
        for mode in MODES:
            label = "%s, %s" % (loop, mode)
            if (loop, mode) in bench.unavailable:
                print("%-20s | n/a (%s)" % (label, short_reason(
                    bench.unavailable[loop, mode])))
                continue
            yield label, loop, mode


def report_echo(bench, results, rounds):
    print()
    print("b. Echo server (asyncio streams) over loopback, %d clients in a "
          "plain %s process," % (CLIENTS, bench.load_loop))
    print("   %s" % ("both on CPU %d" % bench.args.echo_cpu
                     if bench.args.echo_cpu is not None else
                     "on any CPU"))
    print("   %d-byte messages, median of %d runs (min..max); loss and CPU "
          "change: medians over" % (MESSAGE, rounds))
    print("   rounds of the change from plain on the same loop in the same "
          "round; CPU: the")
    print("   server's loop thread's, per round trip; busy: its share of a "
          "core")
    head = "%-20s | %7s %-15s %7s %7s | %6s %7s %5s" % (
        "loop, config", "trips/s", "(min..max)", "x plain", "loss", "CPU us",
        "change", "busy")
    print(head)
    print("-" * len(head))
    for label, loop, mode in available(bench):
        rows = results[loop][mode]
        base = results[loop]["plain"]
        pairs = [(r, b) for r, b in zip(rows, base) if r and b]
        rates = [r["rate"] for r in rows if r]
        first = mode == "plain"
        ratio = median([r["rate"] / b["rate"] for r, b in pairs])
        cpu_change = median([r["cpu_us"] / b["cpu_us"] - 1
                             for r, b in pairs])
        print("%-20s | %7s %-15s %7s %7s | %6s %7s %4.0f%%" % (
            label, fixed(median(rates)), spread(rates),
            "" if first else fixed(ratio, 3),
            "" if first else "%.1f %%" % (100 * (1 - ratio)),
            fixed(median([r["cpu_us"] for r in rows if r]), 2),
            "" if first else "%+.1f %%" % (100 * cpu_change),
            100 * median([r["busy"] for r in rows if r])))
    for loop in bench.loops:
        if (loop, "ours") in bench.unavailable:
            continue
        pairs = [(r, b) for r, b in zip(results[loop]["ours"],
                                        results[loop]["plain"]) if r and b]
        loss = 1 - median([r["rate"] / b["rate"] for r, b in pairs])
        print("Goal: ours loses <= %.0f %% of the echo server's round trips "
              "(%s): %s (%.1f %%)" % (100 * ECHO_GOAL, loop,
                                      "met" if loss <= ECHO_GOAL
                                      else "NOT met", 100 * loss))


def run_rounds(bench, rounds, fn, what):
    results = {loop: {mode: [] for mode in MODES} for loop in bench.loops}
    configs = [(loop, mode) for loop in bench.loops for mode in MODES]
    for _, (loop, mode) in interleaved(configs, rounds, what):
        results[loop][mode].append(bench.run(loop, mode, fn))
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default=".",
                        help="this project's build directory (default: .)")
    parser.add_argument("--python", default=sys.executable,
                        help="the interpreter measured (default: this one)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=200000,
                        help="callbacks per case and run (debug mode: a "
                        "tenth)")
    parser.add_argument("--echo-rounds", type=int, default=7)
    parser.add_argument("--echo-seconds", type=float, default=1.0)
    parser.add_argument("--echo-cpu", default=str((os.cpu_count() or 1) - 1),
                        help="the CPU the echo server and its clients run "
                        "on, or \"none\" (default: the last one)")
    parser.add_argument("--workloads", default="a,b",
                        help="which of a,b to run (default: both)")
    parser.add_argument("--loops", default="asyncio,uvloop")
    parser.add_argument("--raw", help="also write every result, as JSON")
    args = parser.parse_args()
    workloads = set(args.workloads.split(","))
    if not workloads or not workloads <= {"a", "b"}:
        parser.error("--workloads takes a comma-separated list of a, b")
    loops = parse_loops(parser, args.loops)
    args.echo_cpu = None if args.echo_cpu == "none" else int(args.echo_cpu)
    if min(args.rounds, args.echo_rounds) < 1:
        parser.error("need at least one round")
    bench = Bench(args)
    bench.loops = loops
    began = time.monotonic()
    uv = uvloop_version(args.python, bench.env())
    if "uvloop" in loops and uv is None:
        for mode in MODES:
            bench.unavailable["uvloop", mode] = "uvloop is not installed"
    bench.load_loop = "uvloop" if uv else "asyncio"

    print("asyncio_overhead: instrument_asyncio() next to debug mode, on "
          "asyncio's default loop and uvloop")
    print("machine: %s" % machine_description())
    sys.stdout.flush()
    results = {}
    if "a" in workloads:
        results["a"] = run_rounds(bench, args.rounds, bench.pingpong,
                                  "worst case")
    if "b" in workloads:
        results["b"] = run_rounds(bench, args.echo_rounds, bench.echo,
                                  "echo")
    print("python %s (%s), uvloop %s; instrument_asyncio() returned: %s"
          % (bench.versions.get("python", "?"), args.python, uv or "none",
             ", ".join("%s on %s" % (v, k[4:])
                       for k, v in sorted(bench.versions.items())
                       if k.startswith("how ")) or "nothing"))
    if "a" in results:
        report_pingpong(bench, results["a"], args.rounds)
    if "b" in results:
        report_echo(bench, results["b"], args.echo_rounds)
    print()
    print_end(began)
    if args.raw:
        with open(args.raw, "w") as f:
            json.dump({"results": results,
                       "unavailable": {"%s %s" % k: v for k, v in
                                       bench.unavailable.items()}},
                      f, indent=1)
    return 0


if __name__ == "__main__":
    exit_on_error(main, "asyncio_overhead")
