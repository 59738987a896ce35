"""What bench/asyncio_overhead.py and bench/asyncio_detectors.py share:
starting bench/asyncio_workload.py on a loop and in a mode, and the
configurations that cannot run there."""

import json
import os
import time

from benchlib import Build, clean_env
from workerlib import TIMEOUT, Worker

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOAD = os.path.join(HERE, "asyncio_workload.py")
LOOPS = ("asyncio", "uvloop")


class Unavailable(Exception):
    pass


def parse_loops(parser, text):
    loops = text.split(",")
    if not loops or not set(loops) <= set(LOOPS):
        parser.error("--loops takes a comma-separated list of asyncio, "
                     "uvloop")
    return loops


def short_reason(why):
    return "not instrumentable" if why.startswith("not instrumentable") \
        else why


class Bench:
    """Runs the workload under args.python with this build's package;
    `unavailable` keeps the (loop, mode) that could not set themselves up,
    with why."""

    READY_TIMEOUT = TIMEOUT
    SETTLE_S = 0   # the wait between the watcher's start and the go

    def __init__(self, args, interpreter):
        self.args = args
        self.build = Build(args.build)
        self.build.check([(args.python, interpreter)])
        self.unavailable = {}   # (loop, mode) -> why
        self.versions = {}

    def env(self):
        return self.build.use(clean_env(("PYTHONASYNCIODEBUG",)))

    def workload(self, cpu):
        return [self.args.python, WORKLOAD] + (
            ["--cpu", str(cpu)] if cpu is not None else [])

    def start(self, loop, mode, role, *role_args, cpu=None):
        """Starts a workload and lets it begin once it (and its watcher, if
        any) is ready; Unavailable if the mode cannot run on this loop."""
        worker = Worker("%s %s (%s)" % (loop, mode, role),
                        self.workload(cpu) + ["--loop", loop, "--mode", mode,
                                              role, *role_args], self.env())

        def test(line):
            if not line.startswith("{"):
                return False
            obj = json.loads(line)
            return "ready" in obj or "unavailable" in obj
        ready = json.loads(worker.wait_for("out", test, "the ready line",
                                           self.READY_TIMEOUT)[1])
        if "unavailable" in ready:
            worker.finish()
            raise Unavailable(ready["unavailable"])
        self.versions["python"] = ready["python"]
        if "uvloop" in ready:
            self.versions["uvloop"] = ready["uvloop"]
        if ready.get("how"):
            self.versions.setdefault("how " + ready["loop"], ready["how"])
        if mode == "ours":
            worker.wait_watching()
        if self.SETTLE_S:
            time.sleep(self.SETTLE_S)
        worker.send("go\n")
        return worker

    def run(self, loop, mode, fn, *fn_args):
        """fn's result, or None when the configuration is n/a; once n/a,
        the configuration is not tried again."""
        if (loop, mode) in self.unavailable:
            return None
        try:
            return fn(loop, mode, *fn_args)
        except Unavailable as e:
            self.unavailable[loop, mode] = str(e)
            return None
