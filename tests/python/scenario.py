"""A program run in a subprocess, whose stderr holds the watcher's reports:
the scenarios of the Python tests (tests/python) and of the PyPy tests
(tests/pypy), which run it with another interpreter."""

import json
import subprocess
import sys
import textwrap

TIMEOUT = 30.0

# A tracker of a thread of its own stalls 0.4 s there; the thread prints
# "NATIVE <its native id>" first.
THREAD_STALL = """
import threading, time, perpetuo
perpetuo.start_watcher(alert_interval=0.1)
def worker():
    t = perpetuo.StallTracker("worker", threading.get_ident())
    print("NATIVE", threading.get_native_id(), flush=True)
    time.sleep(0.4)
    t.close()
th = threading.Thread(target=worker, name="stall-worker")
th.start()
th.join()
"""

# At least 3 s and 100 k Trio task steps (a slow machine takes longer),
# instrumented and watched; prints "STEPS <count>" at the end.
FAST_STEPS = """
import time, trio, perpetuo
async def main():
    perpetuo.instrument_trio()
    perpetuo.start_watcher(alert_interval=0.2)
    steps = 0
    start = time.monotonic()
    while (time.monotonic() - start < 3.0 or steps < 100_000) and \\
            time.monotonic() - start < 30.0:
        await trio.lowlevel.checkpoint()
        steps += 1
    print("STEPS", steps, flush=True)
trio.run(main)
"""


class Scenario:
    """A Python program run in a subprocess; its stderr holds the reports.
    `interpreter` is the command that runs it (this Python by default)."""

    def __init__(self, code, env, args=(), interpreter=(sys.executable,),
                 timeout=TIMEOUT):
        self.timeout = timeout
        self.proc = subprocess.Popen(
            [*interpreter, "-c", textwrap.dedent(code), *args], env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        self.out = self.err = b""

    def finish(self, timeout=None):
        self.out, self.err = self.proc.communicate(
            timeout=self.timeout if timeout is None else timeout)
        return self.proc.returncode

    def lines(self):
        return self.out.decode().splitlines()

    def records(self):
        """The watcher's JSON records (every line of stderr must be one)."""
        found = []
        for line in self.err.decode().splitlines():
            if line.startswith("{"):
                found.append(json.loads(line))
        return found

    def stalls(self, event="stall_began"):
        return [r for r in self.records() if r.get("event") == event]

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
