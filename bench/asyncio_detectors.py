#!/usr/bin/env python3
"""The in-process asyncio stall detectors users install today (aiocop and
pyleak, from PyPI) and asyncio's debug mode, next to perpetuo's watcher, on
the same stalls: whether each reports one, how soon, with what stack, and at
what cost to the loop.

Detectors, each set up as its documentation says (bench/asyncio_workload.py
has the details), threshold 0.2 s where there is one:

  perpetuo  instrument_asyncio(loop) + start_watcher() (poll 0.05 s, alert
            0.2 s): the out-of-process watcher, JSON on stderr
  aiocop    patch_audit_functions(), start_blocking_io_detection(),
            detect_slow_tasks(threshold_ms=200, on_slow_task=...), activate():
            wraps every callback the loop schedules, reports when a slow one
            returns; a sampling thread adds stacks of CPU-bound callbacks
  pyleak    async with no_event_loop_blocking(action="log", threshold=0.2):
            a thread schedules a callback every 0.05 s and waits 0.2 s for it
            to run, then takes the loop thread's stack
            (sys._current_frames()); logs each block at once, and the stacks
            when the block exits
  debug     loop.set_debug(True), loop.slow_callback_duration = 0.1: logs
            "Executing <handle> took N seconds" after a slow callback

Scenarios, each a fresh process, RUNS times per detector, loop and
scenario: a task's step calls block_the_loop(), which blocks for 1 s in
time.sleep() (the GIL released) or in perpetuo.stall_gil() (the GIL held, in
C). The process stamps the stall's start and end on stdout
(time.monotonic_ns()); the driver stamps each line of the process's stderr
as it arrives, on the same clock. Reported: the first report's arrival minus
the start ("latency"), whether it came during the stall or after its end,
when the stack came if it came later (pyleak), and whether the stack names
block_the_loop (the innermost frames are shown).

Overhead: the worst case of bench/asyncio_overhead.py (a call_soon()
ping-pong, one callback per loop iteration), each detector against no
detector, interleaved, OVERHEAD_ROUNDS rounds: added CPU ns per iteration.

Usage: asyncio_detectors.py [--build DIR] [--python PATH] [--runs N]
       [--loops asyncio,uvloop] [--overhead-rounds N] [--iterations N]
       [--raw FILE]
--python must have aiocop, pyleak and uvloop (default: build/venv/bin/python
of the source tree, which tools/python-venv.sh creates). Exits non-zero,
with one sentence, if a run fails.
"""

import argparse
import json
import os
import re
import sys
import time

import asynciolib
from asynciolib import parse_loops, short_reason
from benchlib import (exit_on_error, fixed, interleaved, machine_description,
                      median, print_end, spread)

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)
DETECTORS = (("perpetuo", "ours"), ("aiocop", "aiocop"),
             ("pyleak", "pyleak"), ("debug", "debug"))
KINDS = (("sleep", "time.sleep(1)"), ("gil", "GIL held in C 1 s"))
BLOCKER = "block_the_loop"
TIMEOUT = 60


class Bench(asynciolib.Bench):
    def __init__(self, args):
        super().__init__(args, "the interpreter with aiocop and pyleak "
                         "(tools/python-venv.sh creates it)")

    def env(self):
        env = super().env()
        # Where the detectors' own reports go: no buffering in the way.
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def stall(self, loop, mode, kind):
        worker = self.start(loop, mode, "stall", "--kind", kind)
        began = worker.wait_json("began", "the stall's start")["began"]
        ended = worker.wait_json("ended", "the stall's end")["ended"]
        worker.finish()
        with worker.cond:
            lines = list(worker.lines["err"])
        result = {"began": began, "ended": ended, "stall_ms":
                  (ended - began) / 1e6}
        result.update(ANALYSES[mode](lines))
        for key in ("report_at", "stack_at"):
            at = result.pop(key, None)
            result[key.replace("_at", "_ms")] = (
                None if at is None else (at - began) / 1e6)
            result[key.replace("_at", "_during")] = (
                None if at is None else at < ended)
        return result

    def pingpong(self, loop, mode):
        worker = self.start(loop, mode, "pingpong", "--iterations",
                            str(self.args.iterations // (
                                10 if mode == "debug" else 1)),
                            "--tasks-iterations", "1000")
        r = worker.wait_json("case", "a pingpong result", TIMEOUT)
        worker.wait_json("case", "a pingpong result", TIMEOUT)
        worker.finish()
        return r["cpu_ns"] / r["n"]


def innermost(names, count=3):
    return " < ".join(reversed(names[-count:])) if names else ""


def analyse_perpetuo(lines):
    for when, line in lines:
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        if record.get("event") != "stall_began":
            continue
        trace = (record["stall_details"].get("relevant_traces") or [[]])[0]
        python = [f["name"] for f in trace if not f.get("native")]
        native = [f["name"] for f in trace if f.get("native")]
        return {"report_at": when, "names": BLOCKER in python,
                "stack": "py: %s; native: %s" % (innermost(python),
                                                  innermost(native, 2))}
    return {}


def analyse_aiocop(lines):
    for when, line in lines:
        if not line.startswith('{"aiocop"'):
            continue
        event = json.loads(line)["aiocop"]
        if not event["exceeded"]:
            continue
        traces = [e["trace"] for e in event["blocking_events"]] + [
            s["trace"] for s in event["cpu_samples"]]
        # aiocop's traces read innermost first: "frame <- frame <- ...".
        first = traces[0].split(" <- ")[:3] if traces else []
        what = ", ".join(e["event"] for e in event["blocking_events"]) or \
            "%s, %d CPU samples" % (event["reason"],
                                    sum(s["count"]
                                        for s in event["cpu_samples"]))
        return {"report_at": when,
                "names": any(BLOCKER in t for t in traces),
                "stack": "%s: %s" % (what, " < ".join(
                    f.rsplit(":", 1)[-1] for f in first) or "no stack")}
    return {}


def analyse_pyleak(lines):
    result = {}
    for i, (when, line) in enumerate(lines):
        if "report_at" not in result and "Event loop blocked for" in line:
            result["report_at"] = when
        if "Blocking Stack:" in line:
            stack = []
            for _, frame in lines[i + 1:]:
                m = re.match(r'\s+File "[^"]*", line \d+, in (\S+)', frame)
                if m:
                    stack.append(m.group(1))
                elif not frame.startswith("      "):
                    break
            result.update({"stack_at": when, "names": BLOCKER in stack,
                           "stack": innermost(stack)})
            break
    return result


def analyse_debug(lines):
    for when, line in lines:
        m = re.search(r"Executing (.*) took ([\d.]+) seconds", line)
        if not m:
            continue
        coro = re.search(r"coro=<([^>]*)>", m.group(1))
        handle = coro.group(1) if coro else m.group(1)[:60]
        return {"report_at": when, "names": BLOCKER in m.group(1),
                "stack": "handle: %s" % re.sub(r"/\S*/", "", handle)}
    return {}


ANALYSES = {"ours": analyse_perpetuo, "aiocop": analyse_aiocop,
            "pyleak": analyse_pyleak, "debug": analyse_debug}


def report_stalls(bench, results, runs):
    print()
    print("Stalls: a task step blocks the loop for 1 s; %d runs each. "
          "reported: runs with a" % runs)
    print("report; first report: ms from the stall's start to the report's "
          "arrival, median")
    print("(min..max), \"during\" if it came before the stall ended, "
          "\"after\" if not; stack: ms")
    print("to the stack when it came later; names: whether the stack names "
          "%s();" % BLOCKER)
    print("innermost frames first (one run's)")
    head = "%-9s %-8s %-18s | %-8s | %-24s | %-10s | %-5s | %s" % (
        "detector", "loop", "stall", "reported", "first report ms",
        "stack ms", "names", "stack")
    print(head)
    print("-" * len(head))
    for label, mode in DETECTORS:
        for loop in bench.loops:
            for kind, what in KINDS:
                prefix = "%-9s %-8s %-18s | " % (label, loop, what)
                if (loop, mode) in bench.unavailable:
                    print(prefix + "n/a (%s)" % short_reason(
                        bench.unavailable[loop, mode]))
                    continue
                rows = [r for r in results[label, loop, kind] if r]
                seen = [r for r in rows if r.get("report_ms") is not None]
                stack_rows = [r for r in rows if "names" in r]
                first = "-"
                if seen:
                    lat = [r["report_ms"] for r in seen]
                    during = sum(1 for r in seen if r["report_during"])
                    first = "%s %s %s" % (
                        fixed(median(lat)), spread(lat),
                        "during" if during == len(seen) else
                        "after" if not during else "%d/%d during"
                        % (during, len(seen)))
                later = [r["stack_ms"] for r in rows
                         if r.get("stack_ms") is not None]
                names = sum(1 for r in stack_rows if r["names"])
                print(prefix + "%-8s | %-24s | %-10s | %-5s | %s" % (
                    "%d/%d" % (len(seen), len(rows)), first,
                    fixed(median(later)) if later else "",
                    "%d/%d" % (names, len(rows)) if stack_rows else "no",
                    stack_rows[0]["stack"] if stack_rows else "none"))


def report_overhead(bench, results, rounds):
    print()
    print("Overhead: one callback per loop iteration (call_soon ping-pong), "
          "the loop thread's")
    print("CPU ns per iteration, median of %d runs; added: median over "
          "rounds of the" % rounds)
    print("difference with no detector in the same round; x plain: "
          "throughput ratio")
    head = "%-9s | " % "detector" + " | ".join(
        "%-8s %6s %7s %7s" % (loop, "ns", "added", "x plain")
        for loop in bench.loops)
    print(head)
    print("-" * len(head))
    for label, mode in (("none", "plain"),) + DETECTORS:
        line = "%-9s" % label
        for loop in bench.loops:
            if (loop, mode) in bench.unavailable:
                line += " | %-32s" % "n/a"
                continue
            rows = results[loop, mode]
            base = results[loop, "plain"]
            pairs = [(r, b) for r, b in zip(rows, base) if r and b]
            first = mode == "plain"
            line += " | %-8s %6s %7s %7s" % (
                "", fixed(median([r for r in rows if r])),
                "" if first else fixed(median([r - b for r, b in pairs])),
                "" if first else fixed(median([b / r for r, b in pairs]), 3))
        print(line)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default=".",
                        help="this project's build directory (default: .)")
    parser.add_argument("--python",
                        default=os.path.join(SOURCE, "build", "venv", "bin",
                                             "python"))
    parser.add_argument("--runs", type=int, default=3,
                        help="stalling runs per detector, loop and scenario")
    parser.add_argument("--loops", default="asyncio,uvloop")
    parser.add_argument("--overhead-rounds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=100000)
    parser.add_argument("--raw", help="also write every result, as JSON")
    args = parser.parse_args()
    loops = parse_loops(parser, args.loops)
    if min(args.runs, args.overhead_rounds) < 1:
        parser.error("need at least one run and one round")
    bench = Bench(args)
    bench.loops = loops
    began = time.monotonic()
    print("asyncio_detectors: perpetuo's watcher, aiocop, pyleak and debug "
          "mode on the same stalls")
    print("machine: %s" % machine_description())
    sys.stdout.flush()

    stalls = {(label, loop, kind): [] for label, _ in DETECTORS
              for loop in loops for kind, _ in KINDS}
    configs = [(label, mode, loop, kind) for label, mode in DETECTORS
               for loop in loops for kind, _ in KINDS]
    for _, (label, mode, loop, kind) in interleaved(configs, args.runs,
                                                    "stalls", "run"):
        stalls[label, loop, kind].append(
            bench.run(loop, mode, bench.stall, kind))
    overhead = {(loop, mode): [] for loop in loops
                for mode in ("plain",) + tuple(m for _, m in DETECTORS)}
    oconfigs = list(overhead)
    for _, (loop, mode) in interleaved(oconfigs, args.overhead_rounds,
                                       "overhead"):
        overhead[loop, mode].append(bench.run(loop, mode, bench.pingpong))

    print("python %s (%s), uvloop %s" % (
        bench.versions.get("python", "?"), args.python,
        bench.versions.get("uvloop", "none")))
    report_stalls(bench, stalls, args.runs)
    report_overhead(bench, overhead, args.overhead_rounds)
    print()
    print_end(began)
    if args.raw:
        with open(args.raw, "w") as f:
            json.dump({"stalls": {" ".join(k): v for k, v in stalls.items()},
                       "overhead": {" ".join(k): v
                                    for k, v in overhead.items()},
                       "unavailable": {" ".join(k): v for k, v in
                                       bench.unavailable.items()}},
                      f, indent=1)
    return 0


if __name__ == "__main__":
    exit_on_error(main, "asyncio_detectors")
