"""Instructions per Trio task step, counted by callgrind: what each
instrument adds to a step, without this machine's timing noise.

Each configuration's bench/trio_workload.py `steps` role runs twice under
`valgrind --tool=callgrind`, with N and then 3 N task steps (each after its
warm-up of a tenth as many); the difference of the two processes' totals,
divided by the difference of their steps, is the instructions of one step,
everything else (the interpreter's start, imports, the instrument's setup)
cancelling out. Instructions are not nanoseconds (a cache miss costs more
than an add), but they show what a change adds, repeatably, where timings
here move by more than the difference measured. bench/trio_overhead.py
gives the time.

Configurations, on two interpreters: the venv's python (tools/python-venv.sh:
trio from PyPI) and Debian's python3 with its trio:

  trio only        no instrument
  no-op C hooks    before/after_task_step the builtin `id`, through trio's
                   own dispatch
  ours             perpetuo.instrument_trio() of this build
  ours, io_waits   instrument_trio(mode="io_waits")
  original         perpetuo 0.7.4 (tools/python-original-venv.sh; same trio
                   as the venv)

Then the same for a Trio TCP echo server on loopback (each configuration's
trio_workload.py `server` under callgrind, loaded for 3 s and then 9 s by 50
clients in a plain Trio process outside it): instructions per round trip.
Under callgrind the server is some fifty times slower, so its run-loop
batches hold more tasks than at full speed: fewer I/O waits per round trip.

Usage: cd build && python3 ../bench/trio_instructions.py [--steps N]
       [--tasks 2,100] [--jobs J] [--no-echo]
"""

import argparse
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from benchlib import (BenchError, Build, clean_env, exit_on_error, fixed,
                      machine_description, print_end, progress)
from workerlib import Worker

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOAD = os.path.join(HERE, "trio_workload.py")
WARMUP = 0.1        # trio_workload.py's warm-up, a fraction of the steps
TIMEOUT_S = 900
SYSTEM_PYTHON = "/usr/bin/python3"
ECHO_CLIENTS = 50
ECHO_SIZE = 64
ECHO_WARMUP_S = 1.0
ECHO_SECONDS = 3.0

# (label, tool, --hooks)
CONFIGS = [
    ("trio only", "trio", "none"),
    ("no-op C hooks", "trio", "null-c"),
    ("ours", "ours", "perpetuo"),
    ("ours, io_waits", "ours", "perpetuo-io"),
    ("original", "original", "perpetuo"),
]


def callgrind_total(path):
    with open(path) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise BenchError("no instruction count in %s" % path)


class Run:
    def __init__(self, args):
        self.args = args
        self.build = Build(args.build)
        self.valgrind = shutil.which(args.valgrind)
        self.pythons = {
            "venv": os.path.join(args.venv, "bin", "python"),
            "original": os.path.join(args.venv_original, "bin", "python"),
            "debian": args.system_python,
        }
        needed = [(self.pythons["venv"], "the venv's python "
                   "(tools/python-venv.sh creates it)"),
                  (self.pythons["debian"], "Debian's python3")]
        if any(tool == "original" for _, tool, _ in CONFIGS):
            needed.append((self.pythons["original"], "the original's venv "
                           "(tools/python-original-venv.sh creates it)"))
        self.build.check(needed)
        if not self.valgrind:
            raise BenchError("valgrind is missing (apt-get install valgrind)")

    def rows(self):
        """(interpreter, label, tool, hooks) of every measured row."""
        for interp in ("venv", "debian"):
            for label, tool, hooks in CONFIGS:
                if tool == "original" and interp != "venv":
                    continue  # the original lives in its own venv only
                yield interp, label, tool, hooks

    def argv_env(self, interp, tool, hooks, out, role):
        python = self.pythons["original" if tool == "original" else interp]
        env = clean_env(("PERPETUO_BACKEND",))
        if tool == "ours":
            self.build.use(env)
        argv = [self.valgrind, "--tool=callgrind", "--callgrind-out-file=" +
                out, python, WORKLOAD, "--hooks", hooks] + role
        return argv, env

    def check_ready(self, interp, tool, ready):
        where = ready["perpetuo"]
        expected = {"ours": self.build.stage,
                    "original": self.args.venv_original}.get(tool)
        if expected and not (where and where.startswith(
                os.path.abspath(expected) + os.sep)):
            raise BenchError("%s %s imported perpetuo from %s, not from %s"
                             % (interp, tool, where, expected))

    def count(self, interp, tool, hooks, tasks, steps, workdir):
        """(instructions, task steps, trio's version) of one process."""
        out = os.path.join(workdir, "callgrind.%s.%s.%s.%d.%d" % (
            interp, tool, hooks, tasks, steps))
        argv, env = self.argv_env(interp, tool, hooks, out, [
            "steps", "--tasks", str(tasks), "--steps", str(steps)])
        proc = subprocess.run(argv, env=env, input="go\n", capture_output=True,
                              text=True, timeout=TIMEOUT_S)
        results = [json.loads(line) for line in proc.stdout.splitlines()
                   if line.startswith("{")]
        ready = [r for r in results if r.get("ready")]
        done = [r for r in results if "tasks" in r]
        if proc.returncode or not ready or not done:
            raise BenchError("%s %s (%s) failed (status %d): %s" % (
                interp, tool, hooks, proc.returncode,
                (proc.stderr.strip().splitlines() or ["no output"])[-1]))
        self.check_ready(interp, tool, ready[0])
        per_task = max(1, int(steps * WARMUP) // tasks)
        return callgrind_total(out), done[0]["steps"] + per_task * tasks, \
            ready[0]["trio"]

    def echo_count(self, interp, tool, hooks, seconds, workdir):
        """(instructions, round trips) of one echo server under callgrind,
        loaded by a plain Trio process (not under callgrind) for `seconds`
        after its warm-up."""
        out = os.path.join(workdir, "callgrind.echo.%s.%s.%s.%g" % (
            interp, tool, hooks, seconds))
        argv, env = self.argv_env(interp, tool, hooks, out, ["server"])
        label = "the echo server (%s, %s)" % (interp, tool)
        server = Worker(label, argv, env)
        try:
            self.check_ready(interp, tool, server.wait_json(
                "ready", "the ready line", TIMEOUT_S))
            server.send("go\n")
            port = server.wait_json("port", "the port", TIMEOUT_S)["port"]
            load = Worker("its load", [
                self.pythons["venv"], WORKLOAD, "load", "--port", str(port),
                "--clients", str(ECHO_CLIENTS), "--size", str(ECHO_SIZE),
                "--warmup", str(ECHO_WARMUP_S), "--seconds", str(seconds)],
                clean_env(("PERPETUO_BACKEND",)))
            try:
                trips = load.wait_json("round_trips", "the load's result",
                                       TIMEOUT_S)["all_round_trips"]
                load.finish()
            finally:
                load.kill()
            server.finish()
        finally:
            server.kill()
        return callgrind_total(out), trips

    def measure_echo(self, row, workdir):
        interp, label, tool, hooks = row
        short = self.echo_count(interp, tool, hooks, ECHO_SECONDS, workdir)
        long = self.echo_count(interp, tool, hooks, 3 * ECHO_SECONDS, workdir)
        return (long[0] - short[0]) / (long[1] - short[1])

    def measure(self, row, tasks, workdir):
        interp, label, tool, hooks = row
        small = self.count(interp, tool, hooks, tasks, self.args.steps,
                           workdir)
        large = self.count(interp, tool, hooks, tasks, 3 * self.args.steps,
                           workdir)
        return (large[0] - small[0]) / (large[1] - small[1]), large[2]


def report(run, results, versions, tasks_list):
    print()
    print("Instructions per task step (callgrind), the difference of a run "
          "of 3 N and one of N steps;")
    print("added: minus trio only on the same interpreter; x orig: added / "
          "the original's added")
    for interp in ("venv", "debian"):
        print()
        print("%s: Python %s, trio %s" % (
            "the venv" if interp == "venv" else "Debian's python3",
            versions.get((interp, "python"), "?"),
            versions.get((interp, "trio"), "?")))
        head = "%-16s" % "configuration" + "".join(
            " | %4d tasks %7s %6s" % (n, "added", "x orig") for n in tasks_list)
        print(head)
        print("-" * len(head))
        for row in run.rows():
            if row[0] != interp:
                continue
            line = "%-16s" % row[1]
            for n in tasks_list:
                value = results[row, n]
                base = results[(interp, "trio only", "trio", "none"), n]
                orig = results.get((("venv", "original", "original",
                                     "perpetuo"), n))
                added = value - base
                first = row[1] == "trio only"
                ratio = (added / (orig - results[
                    ("venv", "trio only", "trio", "none"), n])
                    if orig is not None and interp == "venv" else None)
                line += " | %10s %7s %6s" % (
                    fixed(value), "" if first else fixed(added),
                    "" if first or ratio is None else fixed(ratio, 2))
            print(line)


def report_echo(run, echo, versions):
    print()
    print("Echo server, instructions per round trip (callgrind on the server; "
          "%d clients in a" % ECHO_CLIENTS)
    print("plain Trio process, not under callgrind): the difference of a "
          "%g s and a %g s load;" % (3 * ECHO_SECONDS, ECHO_SECONDS))
    print("added: minus trio only on the same interpreter, and as a share "
          "of it")
    head = "%-32s | %10s %7s %7s" % ("configuration", "per trip", "added",
                                     "")
    print(head)
    print("-" * len(head))
    for row in run.rows():
        if row not in echo:
            continue
        interp = row[0]
        base = echo[(interp, "trio only", "trio", "none")]
        added = echo[row] - base
        first = row[1] == "trio only"
        print("%-32s | %10s %7s %7s" % (
            "%s, trio %s" % (row[1], versions.get((interp, "trio"), "?")),
            fixed(echo[row]), "" if first else fixed(added),
            "" if first else "%+.1f %%" % (100 * added / base)))


def python_version(python):
    return subprocess.run(
        [python, "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True, text=True, check=True).stdout.strip()


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default=".",
                        help="this project's build directory (default: .)")
    parser.add_argument("--venv", default=None)
    parser.add_argument("--venv-original", default=None)
    parser.add_argument("--system-python", default=SYSTEM_PYTHON)
    parser.add_argument("--valgrind", default="valgrind")
    parser.add_argument("--steps", type=int, default=4000,
                        help="N: task steps of the smaller run")
    parser.add_argument("--tasks", default="2,100",
                        help="task counts (default: 2,100)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="task-step processes under callgrind at once "
                        "(their counts do not depend on it; the echo servers "
                        "run one at a time, their batches depending on the "
                        "CPU left to them)")
    parser.add_argument("--no-echo", dest="echo", action="store_false",
                        help="leave out the echo server (about 7 minutes)")
    args = parser.parse_args()
    args.venv = args.venv or os.path.join(args.build, "venv")
    args.venv_original = args.venv_original or os.path.join(
        args.build, "venv-original")
    tasks_list = [int(n) for n in args.tasks.split(",")]
    began = time.monotonic()
    run = Run(args)
    print("trio_instructions: instructions per Trio task step, this "
          "project's perpetuo next to the original")
    print("machine: %s" % machine_description())
    versions = {}
    for interp in ("venv", "debian"):
        versions[interp, "python"] = python_version(run.pythons[interp])
    results = {}
    with tempfile.TemporaryDirectory() as workdir, \
            concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        jobs = {pool.submit(run.measure, row, n, workdir): (row, n)
                for row in run.rows() for n in tasks_list}
        for i, job in enumerate(concurrent.futures.as_completed(jobs)):
            row, n = jobs[job]
            results[row, n], trio_version = job.result()
            versions[row[0], "trio"] = trio_version
            progress("%d of %d: %s, %s, %d tasks" % (i + 1, len(jobs),
                                                     row[0], row[1], n))
        echo = {}
        rows = [row for row in run.rows() if row[1] != "no-op C hooks"]
        for i, row in enumerate(rows if args.echo else []):
            progress("echo, %d of %d: %s, %s" % (i + 1, len(rows), row[0],
                                                 row[1]))
            echo[row] = run.measure_echo(row, workdir)
    report(run, results, versions, tasks_list)
    if echo:
        report_echo(run, echo, versions)
    print()
    print_end(began)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    exit_on_error(main, "trio_instructions")
