"""The measured processes of the benchmark drivers: their output read as it
arrives, and the echo servers' load."""

import json
import subprocess
import threading
import time

from benchlib import BenchError

TIMEOUT = 60
STALL = "Stall detected"
WATCHING = "Successfully monitoring"


class Worker:
    """A process whose stdout and stderr lines are collected as they arrive,
    each with its arrival time on the monotonic clock."""

    def __init__(self, label, argv, env):
        self.label = label
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.lines = {"out": [], "err": []}
        self.open = {"out": True, "err": True}
        self.seen = {"out": 0, "err": 0}
        self.cond = threading.Condition()
        self.readers = [
            threading.Thread(target=self._read, args=(name, pipe), daemon=True)
            for name, pipe in (("out", self.proc.stdout),
                               ("err", self.proc.stderr))]
        for reader in self.readers:
            reader.start()

    def _read(self, name, pipe):
        for raw in iter(pipe.readline, b""):
            now = time.monotonic_ns()
            with self.cond:
                self.lines[name].append((now, raw.decode(errors="replace")))
                self.cond.notify_all()
        with self.cond:
            self.open[name] = False
            self.cond.notify_all()

    def tail(self):
        with self.cond:
            text = "".join(line for _, line in self.lines["err"][-5:])
        return text.strip() or "nothing on stderr"

    def wait_for(self, name, test, what, timeout=TIMEOUT):
        """The next line of stream `name` that passes `test`, with its
        arrival time; the lines before it are passed over for good."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                lines = self.lines[name]
                while self.seen[name] < len(lines):
                    when, line = lines[self.seen[name]]
                    self.seen[name] += 1
                    if test(line):
                        return when, line
                left = deadline - time.monotonic()
                if not self.open[name] or left <= 0:
                    break
                self.cond.wait(left)
        self.kill()
        raise BenchError("%s: %s never came (%s); it said: %s"
                         % (self.label, what,
                            "the process ended" if self.proc.poll() is not None
                            else "timed out", self.tail()))

    def wait_json(self, key, what, timeout=TIMEOUT):
        def test(line):
            return line.startswith("{") and key in json.loads(line)
        return json.loads(self.wait_for("out", test, what, timeout)[1])

    def wait_watching(self, timeout=TIMEOUT):
        """Until the watcher the process started says it watches."""
        self.wait_for("err", lambda line: WATCHING in line,
                      "the watcher's \"%s\"" % WATCHING, timeout)

    def send(self, text):
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def finish(self):
        """Waits for the end of the process and of its output: a watcher
        that inherited stderr keeps it open until it is gone too."""
        self.proc.stdin.close()
        try:
            status = self.proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            raise BenchError("%s did not end within %d s" % (self.label,
                                                            TIMEOUT))
        for reader in self.readers:
            reader.join(TIMEOUT)
        if status != 0:
            raise BenchError("%s failed (exit status %d): %s"
                             % (self.label, status, self.tail()))

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stall_lines(self):
        with self.cond:
            return [(when, line) for when, line in self.lines["err"]
                    if STALL in line]


def thread_cpu_ns(pid):
    """CPU time of the process's main thread (the run loop), in ns."""
    with open("/proc/%d/schedstat" % pid) as f:
        return int(f.read().split()[0])


def measure_load(server, load):
    """The result of the load generator `load` ({"round_trips":...}), and
    the CPU ns the server's main thread used between the load's "start" and
    "stop"; `load` has ended either way."""
    try:
        load.wait_for("out", lambda line: line == '"start"\n',
                      "the load's start")
        cpu_start = thread_cpu_ns(server.proc.pid)
        load.wait_for("out", lambda line: line == '"stop"\n',
                      "the load's stop")
        cpu_ns = thread_cpu_ns(server.proc.pid) - cpu_start
        r = load.wait_json("round_trips", "the load's result")
        load.finish()
    finally:
        load.kill()
    return r, cpu_ns
