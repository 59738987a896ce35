#!/usr/bin/env python3
"""What instrumenting Trio costs, and how fast a stall is seen: this
project's perpetuo package next to the original perpetuo 0.7.4, in one run.

Every measurement is a fresh process of bench/trio_workload.py, in one of
these configurations (the same trio version in both virtual environments):

  trio only          the venv's python, no perpetuo
  no-op C hooks      an instrument whose before/after_task_step are the
                     builtin id(): trio's own dispatch of two hooks per step
  no-op Python hooks the same with two empty Python methods
  ours               the venv's python, this package (PYTHONPATH=the build's
                     stage), perpetuo.instrument_trio() inside the run
  ours, io_waits     the same with instrument_trio(mode="io_waits")
  original           the original's venv, its instrument_trio()
  ... + watcher      and start_watcher() (the original's finds its
                     `perpetuo` on PATH: the venv's bin)

Workloads, configurations interleaved (their order rotated each round),
ROUNDS rounds, medians:
  a. empty steps: 2 and 100 tasks each `await checkpoint()` in a loop,
     STEPS task steps per task count: the run loop thread's CPU time (and
     the wall clock) per task step, the added ns per step against trio
     only, and ours' added cost / the original's.
  d. where that time goes: in one process per tool, inside one task step,
     pairs of hooks called directly and through trio's Instruments.call
     (the run loop's own dispatch): no-op C hooks, no-op Python hooks, and
     the tool's instrument. Three rounds.
  b. echo: the configuration's process is a Trio TCP echo server on
     loopback; a separate, plain Trio process runs 50 clients sending 64
     bytes and reading them back for ECHO_SECONDS, ECHO_ROUNDS rounds: round
     trips per second, the loss against trio only, and the server's CPU
     time per round trip (its main thread's, from /proc/PID/schedstat, over
     the same window). One more run first, with an instrument counting the
     server's task steps and I/O waits per round trip.
  c. detection, STALLS runs per tool: instrument_trio() +
     start_watcher(alert_interval=0.2, json_mode=True), then a task blocks
     in time.sleep(1.0), at a phase of the watcher's polls that differs
     from run to run. Detection latency: the arrival, on the pipe from the
     process's stderr (where the watcher writes), of the first stall
     record, minus the moment the sleep began (both time.monotonic_ns()).
     The target's pause: a second thread reading time.perf_counter_ns() in
     a loop during the stall, its longest gap; and our record's
     capture.pause_us. "trio only" (no watcher) gives the gap's baseline.

  e. the cffi backend, on CPython and on PyPy: workloads a (empty steps)
     and b (echo) with Debian's trio on both interpreters, Debian's python3
     and pypy3 (which imports trio through a directory of links to Debian's,
     with -S), side by side: trio only, ours on the C extension (CPython
     only), ours on the cffi backend (task_steps, io_waits, + watcher),
     and no-op Python hooks (trio's own cost of dispatching a hook); the
     echo's load warms up for 1 s (PyPy's JIT) rather than 0.2;
     the added cost against trio only on the same interpreter, in % (goal
     on PyPy: <= 5 %).

Usage: trio_overhead.py [--build DIR] [--venv DIR] [--venv-original DIR]
       [--rounds N] [--steps N] [--hook-iterations N] [--echo-rounds N]
       [--echo-seconds S] [--stalls N] [--workloads a,b,c,d,e]
       [--system-python PATH] [--pypy PATH] [--raw FILE]
--build is this project's build directory (default: the current one). The
venvs default to build/venv and build/venv-original of the source tree
(tools/python-venv.sh and tools/python-original-venv.sh create them).
Exits non-zero, with one sentence, if a configuration fails.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

from benchlib import (BenchError, Build, clean_env, exit_on_error, fixed,
                      interleaved, machine_description, median, print_end,
                      progress, spread)
from workerlib import Worker, measure_load

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOAD = os.path.join(HERE, "trio_workload.py")
SOURCE = os.path.dirname(HERE)
TASK_COUNTS = (2, 100)
CLIENTS = 50
MESSAGE = 64
STALL_S = 1.0
ALERT_S = 0.2
POLL_S = 0.05    # both watchers' default poll interval
SETTLE_S = 0.1
WATCHER_TIMEOUT = 20
STEP_GOAL = 0.5    # ours' added cost per step / the original's
ECHO_GOAL = 0.02   # ours' loss of round trips per second
PYPY_GOAL = 0.05   # the cffi backend's added cost on PyPy
E_ECHO_WARMUP_S = 1.0
DIST_PACKAGES = "/usr/lib/python3/dist-packages"
TRIO_PACKAGES = ("trio", "outcome", "sniffio", "sortedcontainers", "idna",
                 "attr", "attrs", "exceptiongroup", "async_generator")


class Config:
    def __init__(self, label, tool, hooks, watcher=False, interp="venv",
                 backend=None):
        self.label = label
        self.tool = tool      # "trio", "ours" or "original"
        self.hooks = hooks    # trio_workload.py --hooks
        self.watcher = watcher
        self.interp = interp  # "venv" (its tool's), "cpython" or "pypy"
        self.backend = backend  # PERPETUO_BACKEND for ours, or None


STEP_CONFIGS = [
    Config("trio only", "trio", "none"),
    Config("no-op C hooks", "trio", "null-c"),
    Config("no-op Python hooks", "trio", "null-py"),
    Config("ours", "ours", "perpetuo"),
    Config("ours + watcher", "ours", "perpetuo", True),
    Config("ours, io_waits", "ours", "perpetuo-io"),
    Config("original", "original", "perpetuo"),
    Config("original + watcher", "original", "perpetuo", True),
]
ECHO_CONFIGS = [c for c in STEP_CONFIGS if c.tool != "trio" or
                c.hooks == "none"]
HOOK_CONFIGS = [
    Config("ours", "ours", "perpetuo"),
    Config("original", "original", "perpetuo"),
]
HOOK_ROUNDS = 3
STALL_CONFIGS = [
    Config("trio only", "trio", "none"),
    Config("ours", "ours", "perpetuo", True),
    Config("original", "original", "perpetuo", True),
]
# Workload e, on each interpreter: Debian's python3, and pypy3.
BACKEND_CONFIGS = {
    interp: [Config("trio only", "trio", "none", interp=interp),
             Config("no-op Python hooks", "trio", "null-py", interp=interp)] +
    ([Config("ours, C extension", "ours", "perpetuo", interp=interp,
             backend="c")] if interp == "cpython" else []) +
    [Config("ours, cffi", "ours", "perpetuo", interp=interp,
            backend="cffi"),
     Config("ours, cffi + watcher", "ours", "perpetuo", True, interp=interp,
            backend="cffi"),
     Config("ours, cffi, io_waits", "ours", "perpetuo-io", interp=interp,
            backend="cffi")]
    for interp in ("cpython", "pypy")}


class Bench:
    def __init__(self, args):
        self.args = args
        self.build = Build(args.build)
        self.stage = self.build.stage
        self.python = {
            "trio": os.path.join(args.venv, "bin", "python"),
            "ours": os.path.join(args.venv, "bin", "python"),
            "original": os.path.join(args.venv_original, "bin", "python"),
        }
        needed = []
        if set(args.workloads) & set("abcd"):
            needed += [(self.python["trio"], "the venv's python "
                        "(tools/python-venv.sh creates it)"),
                       (self.python["original"], "the original's venv "
                        "(tools/python-original-venv.sh creates it)")]
        if "e" in args.workloads:
            needed += [(args.system_python, "Debian's python3"),
                       (args.pypy or "pypy3", "pypy3 (Debian's pypy3)"),
                       (os.path.join(DIST_PACKAGES, "trio"),
                        "Debian's trio (python3-trio)")]
        self.build.check(needed)
        self.versions = {}
        self.trio_links = None

    def argv(self, config):
        """The interpreter's command line for a configuration."""
        if config.interp == "cpython":
            return [self.args.system_python]
        if config.interp == "pypy":
            # Debian's trio through links, and nothing else of
            # dist-packages: no site.
            return [self.args.pypy, "-S"]
        return [self.python[config.tool]]

    def links(self):
        """A directory of links to Debian's trio and what it imports, for
        pypy3 (made once, in the build directory)."""
        if self.trio_links is None:
            self.trio_links = os.path.join(os.path.abspath(self.args.build),
                                           "bench-pypy-trio")
            os.makedirs(self.trio_links, exist_ok=True)
            for name in TRIO_PACKAGES:
                target = os.path.join(DIST_PACKAGES, name)
                link = os.path.join(self.trio_links, name)
                if os.path.exists(target) and not os.path.lexists(link):
                    os.symlink(target, link)
        return self.trio_links

    def env(self, tool, config=None):
        env = clean_env(("PERPETUO_BACKEND",))
        interp = config.interp if config else "venv"
        if interp == "pypy":
            env["PYTHONPATH"] = self.links()
        if config is not None and config.backend:
            env["PERPETUO_BACKEND"] = config.backend
        if tool == "ours":
            self.build.use(env, os.pathsep.join(
                [self.stage] + ([self.links()] if interp == "pypy" else [])))
        elif tool == "original":
            bin_dir = os.path.join(self.args.venv_original, "bin")
            env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
        return env

    def start(self, config, role, *role_args, label=None):
        """Starts a workload in `config` and lets it begin once it (and its
        watcher, if any) is ready."""
        label = label or "%s (%s)" % (config.label, role)
        argv = self.argv(config) + [WORKLOAD, "--hooks", config.hooks]
        if config.watcher:
            argv += ["--watcher", "--alert-interval", str(ALERT_S)]
        worker = Worker(label, argv + [role, *role_args],
                        self.env(config.tool, config))
        ready = worker.wait_json("ready", "the ready line")
        self.check_ready(config, worker, ready)
        if config.watcher:
            worker.wait_watching(WATCHER_TIMEOUT)
        worker.send("go\n")
        return worker

    def check_ready(self, config, worker, ready):
        where = ready["perpetuo"]
        expected = {"ours": self.stage, "original": self.args.venv_original}
        if config.tool in expected and not (
                where and where.startswith(expected[config.tool] + os.sep)):
            worker.kill()
            raise BenchError("%s imported perpetuo from %s, not from %s"
                             % (worker.label, where, expected[config.tool]))
        if config.interp != "venv":
            self.versions.setdefault("Debian's trio (%s)" % config.interp,
                                     ready["trio"])
            if ready.get("backend") not in (None, config.backend):
                worker.kill()
                raise BenchError("%s runs perpetuo's %s backend, not %s"
                                 % (worker.label, ready["backend"],
                                    config.backend))
            return
        venv = "original" if config.tool == "original" else "venv"
        self.versions.setdefault("trio (%s)" % venv, ready["trio"])
        if len(set(v for k, v in self.versions.items()
                   if k.startswith("trio"))) > 1:
            worker.kill()
            raise BenchError("the two venvs have different trio versions: %s"
                             % self.versions)

    def steps(self, config):
        worker = self.start(config, "steps", "--tasks",
                            ",".join(str(n) for n in TASK_COUNTS),
                            "--steps", str(self.args.steps))
        results = {}
        for _ in TASK_COUNTS:
            r = worker.wait_json("tasks", "a steps result")
            results[r["tasks"]] = {"cpu": r["cpu_ns"] / r["steps"],
                                   "wall": r["ns"] / r["steps"]}
        worker.finish()
        return results, len(worker.stall_lines())

    def hooks(self, config):
        worker = self.start(config, "hooks", "--iterations",
                            str(self.args.hook_iterations))
        results = {}
        for _ in range(3):
            r = worker.wait_json("hooks", "a hooks result")
            results[r["hooks"]] = r
        worker.finish()
        return results

    def echo(self, config):
        server = self.start(config, "server")
        try:
            port = server.wait_json("port", "the server's port")["port"]
            load_python = (self.python["trio"] if config.interp == "venv"
                           else self.args.system_python)
            load = Worker("the load generator for %s" % config.label,
                          [load_python, WORKLOAD, "load",
                           "--port", str(port), "--clients", str(CLIENTS),
                           "--size", str(MESSAGE),
                          # PyPy's JIT warms up under the load first.
                          "--warmup", "0.2" if config.interp == "venv"
                          else str(E_ECHO_WARMUP_S),
                           "--seconds", str(self.args.echo_seconds)],
                          self.env("trio", Config("load", "trio", "none",
                                                  interp=config.interp
                                                  if config.interp == "venv"
                                                  else "cpython")))
            r, cpu_ns = measure_load(server, load)
            server.finish()
        finally:
            server.kill()
        if config.hooks == "count":
            counts = server.wait_json("steps", "the server's counts")
            return {name: n / r["all_round_trips"]
                    for name, n in counts.items()}
        rate = r["round_trips"] / (r["ns"] / 1e9)
        return {"rate": rate, "cpu_us": cpu_ns / 1e3 / r["round_trips"]}, \
            len(server.stall_lines())

    def stall(self, config, run):
        # The stall begins at a different phase of the watcher's polls in
        # each run, spread evenly over one poll interval.
        settle = SETTLE_S + POLL_S * run / self.args.stalls
        worker = self.start(config, "stall", "--seconds", str(STALL_S),
                            "--settle", "%.4f" % settle,
                            label="%s (stall %d)" % (config.label, run + 1))
        r = worker.wait_json("sleep_began", "the stall's result")
        worker.finish()
        result = {"gap_us": r["gap_ns"] / 1e3, "reads": r["reads"]}
        if not config.watcher:
            return result
        stalls = worker.stall_lines()
        if not stalls:
            raise BenchError("%s: the watcher reported no stall; it said: %s"
                             % (worker.label, worker.tail()))
        when, line = stalls[0]
        record = json.loads(line)
        details = record.get("stall_details", {})
        capture = details.get("capture") or {}
        result.update({
            "latency_ms": (when - r["sleep_began"]) / 1e6,
            "length_ms": details.get("length_ms"),
            "pause_us": capture.get("pause_us"),
            "total_us": capture.get("total_us"),
            "frames": sum(len(trace)
                          for trace in details.get("relevant_traces", [])),
        })
        if config.tool == "ours" and result["pause_us"] is None:
            raise BenchError("%s: our first stall record has no capture: %s"
                             % (worker.label, line.strip()[:300]))
        return result


def ratio(a, b):
    return a / b if b else float("nan")


def package_version(python, env):
    code = ("import importlib.metadata as m, sys\n"
            "try: print(m.version('perpetuo'))\n"
            "except m.PackageNotFoundError: print('?')\n"
            "print(sys.version.split()[0])")
    out = subprocess.run([python, "-c", code], env=env, check=True,
                         stdout=subprocess.PIPE, universal_newlines=True)
    return out.stdout.split()


def build_version(build):
    """The staged package has no metadata: the build's version."""
    try:
        with open(os.path.join(build, "config.h")) as f:
            for line in f:
                if line.startswith("#define PACKAGE_VERSION "):
                    return line.split()[2].strip('"') + " (this build)"
    except OSError:
        pass
    return "? (this build)"


def report_steps(results, stall_counts, rounds):
    print()
    print("a. Empty task steps: CPU ns per task step (the run loop thread's "
          "CPU time), median")
    print("   of %d runs (min..max); added: the median over rounds of the "
          "difference with" % rounds)
    print("   trio only in the same round; x orig: added / the original's "
          "added")

    def per(label, n, clock):
        return [r[clock] for r in results[label][n]]

    def added_ns(label, n, clock):
        return median([a - b for a, b in zip(per(label, n, clock),
                                             per("trio only", n, clock))])

    orig = {(n, c): added_ns("original", n, c)
            for n in TASK_COUNTS for c in ("cpu", "wall")}
    head = "%-20s" % "configuration" + "".join(
        " | %5s %-11s %5s %6s" % ("%d" % n, "tasks", "added", "x orig")
        for n in TASK_COUNTS)
    print(head)
    print("-" * len(head))
    for config in STEP_CONFIGS:
        row = "%-20s" % config.label
        for n in TASK_COUNTS:
            values = per(config.label, n, "cpu")
            added = added_ns(config.label, n, "cpu")
            first = config.label == "trio only"
            row += " | %5s %-11s %5s %6s" % (
                fixed(median(values)), spread(values),
                "" if first else fixed(added),
                "" if first else fixed(ratio(added, orig[n, "cpu"]), 2))
        print(row)
    for label, count in stall_counts.items():
        if count:
            print("note: %s: the watcher reported %d stall record(s) during "
                  "the runs" % (label, count))
    print()
    for n in TASK_COUNTS:
        for clock, what in (("cpu", "CPU time"), ("wall", "wall clock")):
            ours = added_ns("ours", n, clock)
            r = ratio(ours, orig[n, clock])
            print("%3d tasks, %-10s: ours adds %4s ns per step, the original "
                  "%4s: ratio %s, goal <= %.2f %s"
                  % (n, what, fixed(ours), fixed(orig[n, clock]), fixed(r, 2),
                     STEP_GOAL, "met" if r <= STEP_GOAL else "NOT met"))


def report_hooks(results, rounds):
    print()
    print("d. Where the added time goes: one pair of hooks (after_task_step "
          "+ before_task_step)")
    print("   inside a task step, called directly and through trio's "
          "Instruments.call as the")
    print("   run loop calls them; ns per pair net of an empty loop, median "
          "of %d runs;" % rounds)
    print("   run's group: the same tests and calls on the run's own "
          "instrument group (whose")
    print("   class instrument_trio() changes), net of trio's empty one")
    head = "%-20s | %7s | %12s | %21s | %s" % (
        "hooks", "direct", "through trio", "trio's dispatch alone",
        "run's group")
    print(head)
    print("-" * len(head))
    for label, rows in results.items():
        direct = median([r["direct_ns"] for r in rows])
        dispatch = median([r["dispatch_ns"] for r in rows])
        group = median([r.get("run_group_ns") for r in rows])
        print("%-20s | %7s | %12s | %21s | %s" % (
            label, fixed(direct), fixed(dispatch), fixed(dispatch - direct),
            fixed(group)))


def report_echo(results, stall_counts, per_trip, rounds):
    print()
    print("b. Echo over loopback, %d clients in a plain Trio process, %d-byte "
          "messages, median" % (CLIENTS, MESSAGE))
    print("   of %d runs (min..max); loss and added: medians over rounds of "
          "the change from" % rounds)
    print("   trio only in the same round; CPU: the server's run loop "
          "thread's, per round trip")
    base = results["trio only"]

    def change(label, key):
        """Per round, this configuration's value / trio only's, less 1."""
        return median([r[key] / b[key] - 1
                       for r, b in zip(results[label], base)])

    head = "%-20s | %7s %-15s %7s | %6s %6s %7s" % (
        "configuration", "trips/s", "(min..max)", "loss", "CPU us", "added",
        "")
    print(head)
    print("-" * len(head))
    for config in ECHO_CONFIGS:
        rows = results[config.label]
        rates = [r["rate"] for r in rows]
        cpu = [r["cpu_us"] for r in rows]
        first = config.label == "trio only"
        print("%-20s | %7s %-15s %7s | %6s %6s %7s" % (
            config.label, fixed(median(rates)), spread(rates),
            "" if first else "%.1f %%" % (-100 * change(config.label, "rate")),
            fixed(median(cpu), 2),
            "" if first else fixed(median([r["cpu_us"] - b["cpu_us"]
                                         for r, b in zip(rows, base)]), 2),
            "" if first else "%+.1f %%" % (100 * change(config.label,
                                                        "cpu_us"))))
    for label, count in stall_counts.items():
        if count:
            print("note: %s: the watcher reported %d stall record(s) during "
                  "the runs" % (label, count))
    print()
    print("The server runs %.2f task steps and %.3f I/O waits per round trip "
          "(counted in a" % (per_trip["steps"], per_trip["io_waits"]))
    print("separate run, with a counting instrument).")
    for label in ("ours", "ours, io_waits"):
        loss = -change(label, "rate")
        print("Goal: %s loses <= %.0f %% of the round trips per second: %s "
              "(%.1f %%)" % (label, 100 * ECHO_GOAL,
                             "met" if loss <= ECHO_GOAL else "NOT met",
                             100 * loss))


def report_stalls(results, runs):
    print()
    print("c. Detection: a task blocks the run loop in time.sleep(%.1f), "
          "alert interval %.1f s," % (STALL_S, ALERT_S))
    print("   poll %.2f s; median of %d runs (min..max), each starting the "
          "stall at another" % (POLL_S, runs))
    print("   phase of the polls. latency: the first stall record's arrival "
          "minus the")
    print("   sleep's start; length: the stall's length in that record; "
          "capture: our record's")
    print("   capture.total_us; gap: the longest gap between clock reads of "
          "another thread")
    print("   of the target during the stall; pause: our record's "
          "capture.pause_us")
    head = "%-10s | %-20s | %6s | %7s | %-21s | %-15s" % (
        "tool", "latency ms", "length", "capture", "gap us", "pause us")
    print(head)
    print("-" * len(head))
    for config in STALL_CONFIGS:
        rows = results[config.label]

        def col(key, digits, scale=1.0):
            values = [r.get(key) for r in rows]
            if any(v is None for v in values):
                return "-"
            values = [v * scale for v in values]
            return "%s %s" % (fixed(median(values), digits),
                              spread(values, digits))

        def mid(key, digits, scale=1.0):
            values = [r.get(key) for r in rows]
            if any(v is None for v in values):
                return "-"
            return fixed(median(values) * scale, digits)
        print("%-10s | %-20s | %6s | %7s | %-21s | %-15s" % (
            config.label, col("latency_ms", 1), mid("length_ms", 1),
            mid("total_us", 1, 1e-3), col("gap_us", 0), col("pause_us", 0)))
    print()
    print("Frames in the first record: ours %s (native), the original %s "
          "(Python, read while the" % (
              fixed(median([r["frames"] for r in results["ours"]])),
              fixed(median([r["frames"] for r in results["original"]]))))
    print("process is stopped). Our record comes once the stack is named "
          "(capture above).")


def run_backends(bench, args):
    """Workload e: empty steps and echo, per interpreter, configurations
    interleaved as in a and b."""
    results = {}
    for interp, configs in BACKEND_CONFIGS.items():
        steps = {c.label: {n: [] for n in TASK_COUNTS} for c in configs}
        echo = {c.label: [] for c in configs}
        stalls = {c.label: 0 for c in configs}
        for _, config in interleaved(configs, args.rounds,
                                     "e: %s, steps" % interp):
            values, count = bench.steps(config)
            stalls[config.label] += count
            for n in TASK_COUNTS:
                steps[config.label][n].append(values[n])
        for _, config in interleaved(configs, args.echo_rounds,
                                     "e: %s, echo" % interp):
            value, count = bench.echo(config)
            stalls[config.label] += count
            echo[config.label].append(value)
        results[interp] = {"steps": steps, "echo": echo, "stalls": stalls}
    return results


def report_backends(results, rounds, echo_rounds):
    print()
    print("e. The cffi backend, with Debian's trio (%s) on Debian's python3 "
          "and on pypy3;" % ", ".join(
              "%s %s" % (k.split("(")[1].rstrip(")"), v)
              for k, v in sorted(results.get("versions", {}).items())))
    print("   empty steps: CPU ns per task step, median of %d runs; echo: "
          "round trips/s, median" % rounds)
    print("   of %d runs, and the server's run loop CPU time per round trip; "
          "added, loss: the" % echo_rounds)
    print("   median over rounds of the change from trio only on the same "
          "interpreter in the")
    print("   same round")
    goals = []
    for interp in ("cpython", "pypy"):
        r = results[interp]
        steps, echo = r["steps"], r["echo"]
        base_steps, base_echo = steps["trio only"], echo["trio only"]
        print()
        print("   %s" % {"cpython": "CPython (Debian's python3)",
                         "pypy": "PyPy (Debian's pypy3)"}[interp])
        head = "%-22s" % "configuration" + "".join(
            " | %3d tasks %-11s %7s" % (n, "", "added") for n in TASK_COUNTS) \
            + " | %7s %7s | %6s %7s" % ("trips/s", "loss", "CPU us", "added")
        print(head)
        print("-" * len(head))
        for config in BACKEND_CONFIGS[interp]:
            label = config.label
            first = label == "trio only"
            row = "%-22s" % label
            for n in TASK_COUNTS:
                values = [v["cpu"] for v in steps[label][n]]
                added = median([v["cpu"] / b["cpu"] - 1 for v, b in
                                zip(steps[label][n], base_steps[n])])
                row += " | %9s %-11s %7s" % (
                    fixed(median(values)), spread(values),
                    "" if first else "%+.1f %%" % (100 * added))
                if label == "ours, cffi" and interp == "pypy":
                    goals.append(("%d tasks, CPU per step" % n, added))
            rates = [v["rate"] for v in echo[label]]
            loss = -median([v["rate"] / b["rate"] - 1
                            for v, b in zip(echo[label], base_echo)])
            cpu = median([v["cpu_us"] / b["cpu_us"] - 1
                          for v, b in zip(echo[label], base_echo)])
            row += " | %7s %7s | %6s %7s" % (
                fixed(median(rates)), "" if first else "%.1f %%" % (100 * loss),
                fixed(median([v["cpu_us"] for v in echo[label]]), 1),
                "" if first else "%+.1f %%" % (100 * cpu))
            if label == "ours, cffi" and interp == "pypy":
                goals.append(("echo, round trips/s lost", loss))
                goals.append(("echo, the server's CPU per round trip", cpu))
            print(row)
        for label, count in r["stalls"].items():
            if count:
                print("note: %s: the watcher reported %d stall record(s) "
                      "during the runs" % (label, count))
    print()
    for what, value in goals:
        print("Goal: on PyPy, the cffi backend adds <= %.0f %% (%s): %s "
              "(%+.1f %%)" % (100 * PYPY_GOAL, what,
                              "met" if value <= PYPY_GOAL else "NOT met",
                              100 * value))


def run_steps(bench, args):
    steps = {c.label: {n: [] for n in TASK_COUNTS} for c in STEP_CONFIGS}
    stall_counts = {c.label: 0 for c in STEP_CONFIGS if c.watcher}
    for _, config in interleaved(STEP_CONFIGS, args.rounds, "steps"):
        values, stalls = bench.steps(config)
        for n in TASK_COUNTS:
            steps[config.label][n].append(values[n])
        if config.watcher:
            stall_counts[config.label] += stalls
    return steps, stall_counts


def run_hooks(bench, args):
    hooks = {"no-op C hooks": [], "no-op Python hooks": [], "ours": [],
             "original": []}
    names = {"null-c": "no-op C hooks", "null-py": "no-op Python hooks"}
    for _, config in interleaved(HOOK_CONFIGS, HOOK_ROUNDS, "hooks"):
        for name, r in bench.hooks(config).items():
            hooks[names.get(name, config.label)].append(r)
    return hooks


def run_echo(bench, args):
    progress("echo, counting the server's task steps")
    per_trip = bench.echo(Config("counted", "trio", "count"))
    echo = {c.label: [] for c in ECHO_CONFIGS}
    stall_counts = {c.label: 0 for c in ECHO_CONFIGS if c.watcher}
    for _, config in interleaved(ECHO_CONFIGS, args.echo_rounds, "echo"):
        value, stalls = bench.echo(config)
        echo[config.label].append(value)
        if config.watcher:
            stall_counts[config.label] += stalls
    return echo, stall_counts, per_trip


def run_stalls(bench, args):
    stall = {c.label: [] for c in STALL_CONFIGS}
    for run, config in interleaved(STALL_CONFIGS, args.stalls, "stalls",
                                   "run"):
        stall[config.label].append(bench.stall(config, run))
    return stall


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default=".",
                        help="this project's build directory (default: .)")
    parser.add_argument("--venv",
                        default=os.path.join(SOURCE, "build", "venv"))
    parser.add_argument("--venv-original",
                        default=os.path.join(SOURCE, "build", "venv-original"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=250000,
                        help="task steps per task count and run")
    parser.add_argument("--hook-iterations", type=int, default=300000)
    parser.add_argument("--echo-rounds", type=int, default=8)
    parser.add_argument("--echo-seconds", type=float, default=0.6)
    parser.add_argument("--stalls", type=int, default=5,
                        help="stalling runs per tool")
    parser.add_argument("--workloads", default="a,b,c,d,e",
                        help="which of a,b,c,d,e to run (default: all)")
    parser.add_argument("--system-python", default="/usr/bin/python3",
                        help="Debian's python3, for workload e")
    parser.add_argument("--pypy", default=shutil.which("pypy3"),
                        help="pypy3, for workload e (default: on PATH)")
    parser.add_argument("--raw", help="also write every result, as JSON")
    args = parser.parse_args()
    args.workloads = sorted(set(args.workloads.split(",")))
    if not args.workloads or not set(args.workloads) <= set("abcde"):
        parser.error("--workloads takes a comma-separated list of a, b, c, "
                     "d, e")
    args.venv = os.path.abspath(args.venv)
    args.venv_original = os.path.abspath(args.venv_original)
    if min(args.rounds, args.echo_rounds, args.stalls) < 1:
        parser.error("need at least one round and one stall")
    bench = Bench(args)
    began = time.monotonic()

    print("trio_overhead: Trio instrumentation, this project's perpetuo next "
          "to the original")
    print("machine: %s" % machine_description())
    if set(args.workloads) & set("abcd"):
        ours_version, py = package_version(bench.python["ours"],
                                           bench.env("ours"))
        if ours_version == "?":
            ours_version = build_version(args.build)
        orig_version, py_orig = package_version(bench.python["original"],
                                                bench.env("original"))
        print("python %s (venv), %s (original's venv); perpetuo: ours %s, "
              "original %s" % (py, py_orig, ours_version, orig_version))
    if "e" in args.workloads:
        print("e: %s; %s" % tuple(
            subprocess.run(argv + ["-c", "import sys; print(sys.version."
                                   "replace(chr(10), ' '))"],
                           check=True, stdout=subprocess.PIPE,
                           universal_newlines=True).stdout.strip()
            for argv in ([args.system_python], [args.pypy, "-S"])))
    sys.stdout.flush()

    runs = {"a": run_steps, "b": run_echo, "c": run_stalls, "d": run_hooks,
            "e": run_backends}
    results = {name: runs[name](bench, args) for name in args.workloads}
    if set(args.workloads) & set("abcd"):
        print("trio %s in both venvs" % bench.versions.get("trio (venv)"))
    if "a" in results:
        report_steps(*results["a"], args.rounds)
    if "b" in results:
        report_echo(*results["b"], args.echo_rounds)
    if "c" in results:
        report_stalls(results["c"], args.stalls)
    if "d" in results:
        report_hooks(results["d"], HOOK_ROUNDS)
    if "e" in results:
        results["e"]["versions"] = {k: v for k, v in bench.versions.items()
                                    if k.startswith("Debian")}
        report_backends(results["e"], args.rounds, args.echo_rounds)
    print()
    print_end(began)
    if args.raw:
        with open(args.raw, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    exit_on_error(main, "trio_overhead")
