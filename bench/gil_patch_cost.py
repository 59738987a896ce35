#!/usr/bin/env python3
"""What the GIL patch costs: the patched CPython with its stall counter set
(sys._set_stall_counter on a real u64) next to the same interpreter with it
unset, on workloads that drop and take the GIL all the time and on one that
never does, in one run. Goal: at most 1 % more.

The patch runs a few instructions each time a thread takes or drops the
GIL: with the counter unset, a load of the pointer and a test; set, also a
load, an add and a store of the counter. So the workloads (bench/
gil_workload.py, a fresh process each run) are chosen by their GIL traffic:

  1 thread, pure Python         a fixed loop, alone: the GIL is never
                                dropped; nothing should change
  1 thread, os.read()           os.read(/dev/null, 1) in a loop: each call
                                drops the GIL and takes it back, the most
                                GIL operations per second a thread can make
  4 threads, os.read()          the same in 4 threads: each drop wakes a
                                waiter, and the GIL passes between threads
  4 threads, time.sleep(0)      each call drops the GIL and lets another
                                thread have it
  2 threads, pure Python, 1 us  sys.setswitchinterval(1e-6): the holder is
                                asked to hand the GIL over almost at every
                                check of the eval loop

"GIL pairs" is the number of times the GIL was dropped and taken again:
the set counter's (value - 1) / 2, and, under callgrind, the calls to the
interpreter's drop_gil() in both configurations.

Two measurements:
  1. wall time: RUNS runs of each configuration, a fresh process each, the
     two configurations alternating (unset first in even runs, set first in
     odd ones); the work's own time (without the interpreter's start), the
     medians, their ratio, and the spread of the ratios of the runs made
     side by side. On a shared VM this is noisy: it can show the cost of
     the counter's cache line moving between cores, which instructions do
     not count, but not a 1 % difference for sure.
  2. callgrind: the instructions executed (Ir) by a smaller fixed amount
     of the same work, once per configuration, in the work's threads only
     (--separate-threads=yes, the main thread's file left out: it holds
     the interpreter's start and end), with PYTHONHASHSEED=0. The counts
     are the same at every run where one thread works; with several,
     valgrind's scheduling decides how often the GIL passes, so the rows
     are also shown per GIL pair, and so are the instructions of
     take_gil() + drop_gil() themselves (callees excluded), where the
     patch's code is. The goal is judged on these counts. The last row is
     left out: valgrind runs one thread at a time and lets another run only
     every so many thousand blocks, so forced switches barely happen.

Usage: gil_patch_cost.py --python PATH [--runs N] [--scale F]
       [--no-callgrind] [--valgrind PATH]
--python is the patched interpreter (tools/build-patched-python.sh prints
its path). Exits non-zero, with one sentence, if it has no
sys._set_stall_counter, if the counter did not move in the set
configuration, or if a run fails.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

from benchlib import machine_description

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOAD = os.path.join(HERE, "gil_workload.py")
CONFIGS = ("unset", "set")
GOAL = 0.01
TIMEOUT = 120
GIL_FUNCTIONS = ("take_gil", "drop_gil")


class BenchError(Exception):
    pass


class Row:
    def __init__(self, label, body, threads, switch, wall_n, cg_n):
        self.label = label
        self.body = body
        self.threads = threads
        self.switch = switch
        self.wall_n = wall_n      # iterations per thread, wall time
        self.cg_n = cg_n          # the same under callgrind; None: not run

    def releases(self):
        """Whether each iteration drops and takes the GIL."""
        return self.body in ("read", "sleep0")


ROWS = [
    Row("1 thread, pure Python", "loop", 1, 0, 2000000, 100000),
    Row("1 thread, os.read()", "read", 1, 0, 500000, 20000),
    Row("4 threads, os.read()", "read", 4, 0, 50000, 5000),
    Row("4 threads, time.sleep(0)", "sleep0", 4, 0, 2500, 500),
    Row("2 threads, pure Python, 1 us", "loop", 2, 1e-6, 1000000, None),
]


def workload_argv(python, row, iterations, config):
    return [python, WORKLOAD, row.body, str(iterations), str(row.threads),
            repr(row.switch), config]


def parse_result(row, config, proc):
    if proc.returncode != 0:
        raise BenchError("%s, counter %s: the run failed (exit %d): %s"
                         % (row.label, config, proc.returncode,
                            proc.stderr.strip()[-500:]))
    try:
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise BenchError("%s, counter %s: no result in the output: %r"
                         % (row.label, config, proc.stdout[-500:]))
    return result


def gil_pairs(row, result, iterations):
    """The set counter's GIL pairs; raises if it did not move as it must."""
    value = result["counter"]
    if value is None or value % 2 != 1 or value < 3:
        raise BenchError(
            "%s: the stall counter did not move with the counter set (value "
            "%r): the patch does not count, and its cost means nothing"
            % (row.label, value))
    pairs = (value - 1) // 2
    if row.releases() and pairs < iterations * row.threads:
        raise BenchError(
            "%s: the stall counter counted %d GIL pairs for %d calls that "
            "each drop the GIL: the patch misses some"
            % (row.label, pairs, iterations * row.threads))
    return pairs


def run_wall(python, row, config, env, scale):
    n = max(1, int(row.wall_n * scale))
    proc = subprocess.run(workload_argv(python, row, n, config), env=env,
                          capture_output=True, text=True, timeout=TIMEOUT)
    result = parse_result(row, config, proc)
    if config == "set":
        result["pairs"] = gil_pairs(row, result, n)
    return result


def parse_callgrind(path):
    """The total Ir, and per function in GIL_FUNCTIONS its calls and its own
    Ir (callees excluded), from a callgrind output file."""
    names = {}
    calls = dict.fromkeys(GIL_FUNCTIONS, 0)
    self_ir = dict.fromkeys(GIL_FUNCTIONS, 0)
    total = None
    fn = cfn = None
    after_calls = False
    name_re = re.compile(r"\((\d+)\)(?: (.*))?$")

    def name_of(spec):
        m = name_re.match(spec)
        if not m:
            return spec
        if m.group(2) is not None:
            names[m.group(1)] = m.group(2)
        # Recursion levels are shown as name'2.
        return names.get(m.group(1), "").split("'")[0]

    with open(path) as f:
        for line in f:
            if line[0] in "0123456789+-*":
                fields = line.split()
                cost = int(fields[1]) if len(fields) > 1 else 0
                if after_calls:
                    after_calls = False
                elif fn in self_ir:
                    self_ir[fn] += cost
            elif line.startswith("fn="):
                fn = name_of(line[3:].rstrip("\n"))
            elif line.startswith("cfn="):
                cfn = name_of(line[4:].rstrip("\n"))
            elif line.startswith("calls="):
                after_calls = True
                if cfn in calls:
                    calls[cfn] += int(line[6:].split()[0])
            elif line.startswith(("summary:", "totals:")):
                total = int(line.split()[1])
    if total is None:
        raise BenchError("no instruction count in %s" % path)
    return {"ir": total, "calls": calls, "self": self_ir}


def run_callgrind(valgrind, python, row, config, env, workdir):
    base = os.path.join(workdir, "callgrind.%s.%d.%s" % (
        row.body, row.threads, config))
    # One file per thread: base-01 is the main thread (the interpreter's
    # start and end), the others the work's threads.
    argv = [valgrind, "--tool=callgrind", "--separate-threads=yes",
            "--callgrind-out-file=" + base] + workload_argv(
                python, row, row.cg_n, config)
    proc = subprocess.run(argv, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT * 5)
    result = parse_result(row, config, proc)
    if config == "set":
        result["pairs"] = gil_pairs(row, result, row.cg_n)
    prefix = os.path.basename(base) + "-"
    files = sorted(f for f in os.listdir(workdir) if f.startswith(prefix))
    workers = [f for f in files if f[len(prefix):].isdigit() and
               int(f[len(prefix):]) >= 2]
    # A thread that ended may leave its number to the next one started.
    if not 1 <= len(workers) <= row.threads:
        raise BenchError("%s, counter %s: callgrind wrote %d files for %d "
                         "work threads: %s" % (row.label, config,
                                               len(workers), row.threads,
                                               files))
    result.update(ir=0, calls=dict.fromkeys(GIL_FUNCTIONS, 0),
                  self=dict.fromkeys(GIL_FUNCTIONS, 0))
    for name in workers:
        part = parse_callgrind(os.path.join(workdir, name))
        result["ir"] += part["ir"]
        for key in ("calls", "self"):
            for fn in GIL_FUNCTIONS:
                result[key][fn] += part[key][fn]
    if not result["calls"]["drop_gil"]:
        raise BenchError(
            "%s, counter %s: callgrind saw no call to drop_gil() in the "
            "work's threads: the interpreter has no such function (inlined?)"
            % (row.label, config))
    return result


def median(values):
    return statistics.median(values)


def quartiles(values):
    if len(values) < 2:
        return values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def pct(ratio):
    return "%+.2f%%" % ((ratio - 1) * 100)


def report_wall(rows, wall, runs):
    print()
    print("1. wall time of the work, median of %d fresh processes per "
          "configuration, interleaved" % runs)
    print("  %-30s %9s %9s %8s %17s %8s %10s %9s %9s"
          % ("workload", "unset ms", "set ms", "set/un", "paired p25..p75",
             "min s/u", "GIL pairs", "ns/pair", "+ns/pair"))
    for row in rows:
        unset = [r["seconds"] for r in wall[row.label]["unset"]]
        done = [r["seconds"] for r in wall[row.label]["set"]]
        pairs = median([r["pairs"] for r in wall[row.label]["set"]])
        m_unset, m_set = median(unset), median(done)
        lo, hi = quartiles([s / u for s, u in zip(done, unset)])
        per_pair = m_unset / pairs * 1e9
        added = (m_set - m_unset) / pairs * 1e9
        print("  %-30s %9.1f %9.1f %8s %8s..%-8s %8s %10d %9s %9s"
              % (row.label, m_unset * 1e3, m_set * 1e3, pct(m_set / m_unset),
                 pct(lo), pct(hi), pct(min(done) / min(unset)), pairs,
                 "%.0f" % per_pair if pairs >= 1000 else "-",
                 "%+.1f" % added if pairs >= 1000 else "-"))
    print("  (set/un: the ratio of the medians; paired: the quartiles of "
          "set/unset over the runs made side by side; min s/u: the ratio of "
          "the fastest runs; GIL pairs: the set counter's, median; ns/pair: "
          "unset time per pair; +ns/pair: (set - unset) / pairs, medians; "
          "'-' where the GIL is barely used. The first row runs none of the "
          "patch's code: its spread is the machine's noise)")


def report_callgrind(rows, cg):
    print()
    print("2. callgrind: instructions (Ir) of the same fixed work, in its "
          "threads only")
    print("  %-30s %11s %11s %8s %9s %9s %9s %9s %9s"
          % ("workload", "unset Ir", "set Ir", "set/un", "Ir/iter",
             "pairs un", "pairs set", "Ir/pair", "+Ir/pair"))
    worst = None
    for row in rows:
        u, s = cg[row.label]["unset"], cg[row.label]["set"]
        iters = row.cg_n * row.threads
        pu, ps = u["calls"]["drop_gil"], s["calls"]["drop_gil"]
        ratio = s["ir"] / u["ir"]
        per_pair = "-"
        added = "-"
        if ps >= 100:
            per_pair = "%.0f" % (u["ir"] / pu)
            added = "%+.1f" % (s["ir"] / ps - u["ir"] / pu)
        print("  %-30s %11d %11d %8s %9.1f %9d %9d %9s %9s"
              % (row.label, u["ir"], s["ir"], pct(ratio), u["ir"] / iters,
                 pu, ps, per_pair, added))
        if worst is None or ratio > worst[1]:
            worst = (row.label, ratio)
    print("  (pairs: calls to drop_gil() in the work's threads; the set "
          "counter's, all threads: %s)"
          % ", ".join("%d" % cg[r.label]["set"]["pairs"] for r in rows))
    print()
    print("  the patch's own code: Ir of take_gil() + drop_gil() per call, "
          "callees excluded")
    print("  %-30s %9s %9s %9s %9s %9s"
          % ("workload", "take un", "take set", "drop un", "drop set",
             "+Ir/pair"))
    for row in rows:
        u, s = cg[row.label]["unset"], cg[row.label]["set"]
        per = {}
        for name in GIL_FUNCTIONS:
            for config, r in (("unset", u), ("set", s)):
                n = r["calls"][name]
                per[name, config] = r["self"][name] / n if n else 0.0
        added = sum(per[name, "set"] - per[name, "unset"]
                    for name in GIL_FUNCTIONS)
        print("  %-30s %9.1f %9.1f %9.1f %9.1f %+9.1f"
              % (row.label, per["take_gil", "unset"], per["take_gil", "set"],
                 per["drop_gil", "unset"], per["drop_gil", "set"], added))
    print()
    print("goal: at most %.0f%% more instructions with the counter set: %s "
          "(largest: %s, %s)"
          % (GOAL * 100, "met" if worst[1] <= 1 + GOAL else "MISSED",
             worst[0], pct(worst[1])))


def interpreter_version(python, env):
    try:
        proc = subprocess.run(
            [python, "-c", "import sys; print(sys.version.replace('\\n', "
             "' ')); print(hasattr(sys, '_set_stall_counter'))"],
            env=env, capture_output=True, text=True, timeout=TIMEOUT)
    except OSError as e:
        raise BenchError("cannot run %s: %s" % (python, e.strerror))
    if proc.returncode != 0:
        raise BenchError("%s does not run: %s" % (python,
                                                  proc.stderr.strip()))
    version, has = proc.stdout.strip().splitlines()
    if has != "True":
        raise BenchError(
            "%s (%s) has no sys._set_stall_counter: it is not built with "
            "patches/cpython-3.11-stall-counter.patch "
            "(tools/build-patched-python.sh builds one)" % (python, version))
    return version


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", required=True,
                        help="the patched interpreter")
    parser.add_argument("--runs", type=int, default=11,
                        help="wall-time runs per configuration (default 11)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiplies the wall-time runs' iterations")
    parser.add_argument("--no-callgrind", dest="callgrind",
                        action="store_false",
                        help="skip the instruction counts")
    parser.add_argument("--valgrind", default="valgrind",
                        help="valgrind (default: the one on PATH)")
    args = parser.parse_args()
    if args.runs < 1 or args.scale <= 0:
        parser.error("need at least one run and a positive scale")
    valgrind = shutil.which(args.valgrind) if args.callgrind else None
    if args.callgrind and not valgrind:
        raise BenchError("valgrind is not on PATH: install it, pass "
                         "--valgrind, or --no-callgrind")

    env = dict(os.environ)
    for name in ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP"):
        env.pop(name, None)
    env["PYTHONHASHSEED"] = "0"
    version = interpreter_version(args.python, env)
    print("gil_patch_cost: the patched CPython with its stall counter set "
          "and unset")
    print("machine: " + machine_description())
    print("interpreter: %s (%s)" % (args.python, version))
    sys.stdout.flush()

    wall = {row.label: {c: [] for c in CONFIGS} for row in ROWS}
    for run in range(args.runs):
        for row in ROWS:
            order = CONFIGS if run % 2 == 0 else CONFIGS[::-1]
            for config in order:
                wall[row.label][config].append(
                    run_wall(args.python, row, config, env, args.scale))
        for row in ROWS:
            sums = {r["checksum"] for c in CONFIGS
                    for r in wall[row.label][c]}
            if len(sums) != 1:
                raise BenchError("%s: the work's results differ between "
                                 "runs: %s" % (row.label, sorted(sums)))
    report_wall(ROWS, wall, args.runs)
    sys.stdout.flush()

    if valgrind:
        rows = [row for row in ROWS if row.cg_n]
        cg = {row.label: {} for row in rows}
        with tempfile.TemporaryDirectory(prefix="gil_patch_cost.") as work:
            for row in rows:
                for config in CONFIGS:
                    cg[row.label][config] = run_callgrind(
                        valgrind, args.python, row, config, env, work)
        report_callgrind(rows, cg)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (BenchError, subprocess.TimeoutExpired) as e:
        print("gil_patch_cost: %s" % e, file=sys.stderr)
        sys.exit(1)
