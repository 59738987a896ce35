"""Fixtures of the end-to-end tests: a real watcher against real targets.

The binaries come from the build tree named by $abs_top_builddir (exported by
`make check`): the watcher libperpetuo/watcher/perpetuo, the targets under
tests/targets/ and the examples under examples/. Every process a test starts
is killed at teardown, including watchers that are not our children (they are
signalled through a pidfd, so a recycled pid is never hit).

Times are compared on CLOCK_MONOTONIC, which is what the targets print, what
the watcher's JSON records carry as monotonic_ns and what time.monotonic_ns()
reads here.
"""

import json
import os
import select
import signal
import subprocess
import threading
import time

import pytest

# How long any one wait may take before a test fails rather than hangs.
TIMEOUT = 20.0


def _builddir():
    path = os.environ.get("abs_top_builddir")
    if not path:
        pytest.skip("abs_top_builddir is not set: run the e2e tests through "
                    "'make check', or export it (the build directory)")
    return path


@pytest.fixture(scope="session")
def builddir():
    return _builddir()


def _binary(builddir, relative, hint):
    path = os.path.join(builddir, relative)
    if not os.access(path, os.X_OK):
        pytest.skip(f"{relative} is not built in {builddir} ({hint})")
    return path


@pytest.fixture(scope="session")
def watcher(builddir):
    path = os.environ.get("PERPETUO_WATCHER") or os.path.join(
        builddir, "libperpetuo", "watcher", "perpetuo")
    if not os.access(path, os.X_OK):
        pytest.skip(f"the watcher {path} is not built (run make)")
    return path


@pytest.fixture(scope="session")
def stall_target(builddir):
    return _binary(builddir, "tests/targets/stall_target",
                   "make tests/targets/stall_target, or make check")


@pytest.fixture(scope="session")
def fork_target(builddir):
    return _binary(builddir, "tests/targets/fork_target",
                   "make tests/targets/fork_target, or make check")


@pytest.fixture(scope="session")
def examples(builddir):
    return os.path.join(builddir, "examples")


@pytest.fixture(scope="session")
def env(watcher):
    """The environment for targets: the library spawns $PERPETUO_WATCHER."""
    e = dict(os.environ)
    e["PERPETUO_WATCHER"] = watcher
    return e


class Stream:
    """Lines read from a pipe by a thread, each with its arrival time."""

    def __init__(self, pipe, name):
        self.name = name
        self.lines = []  # (time.monotonic_ns() on arrival, bytes without \n)
        self.eof = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(pipe,),
                                        daemon=True)
        self._thread.start()

    def _read(self, pipe):
        try:
            for line in iter(pipe.readline, b""):
                with self._cond:
                    self.lines.append((time.monotonic_ns(),
                                       line.rstrip(b"\n")))
                    self._cond.notify_all()
        finally:
            with self._cond:
                self.eof = True
                self._cond.notify_all()

    def text(self):
        with self._cond:
            return [l.decode("utf-8", "replace") for _, l in self.lines]

    def raw(self):
        with self._cond:
            return [l for _, l in self.lines]

    def wait_for(self, predicate, timeout=TIMEOUT, what=None):
        """Waits for the first line for which predicate(text) is true; returns
        (arrival_ns, text). Fails the test on timeout or end of stream."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                while seen < len(self.lines):
                    t, line = self.lines[seen]
                    seen += 1
                    text = line.decode("utf-8", "replace")
                    if predicate(text):
                        return t, text
                left = deadline - time.monotonic()
                if self.eof or left <= 0:
                    lines = [l.decode("utf-8", "replace")
                             for _, l in self.lines]
                    pytest.fail(
                        f"{self.name}: no line {what or predicate} after "
                        f"{timeout} s ({'end of stream' if self.eof else 'timeout'}); "
                        f"got: {lines!r}")
                self._cond.wait(left)

    def wait_eof(self, timeout=TIMEOUT):
        self._thread.join(timeout)
        if self._thread.is_alive():
            pytest.fail(f"{self.name}: still open after {timeout} s")

    def records(self):
        """Every line as JSON; fails the test on a line that is not."""
        out = []
        for line in self.raw():
            try:
                text = line.decode("utf-8")  # strict: JSON is UTF-8
                record = json.loads(text)
            except ValueError as e:
                pytest.fail(f"{self.name}: not a JSON line ({e}): {line!r}")
            assert isinstance(record, dict), line
            out.append(record)
        return out


class Proc:
    """A started process with its stdout and stderr read line by line."""

    def __init__(self, argv, env, stdin=True, merge=False, **kw):
        self.argv = [os.fspath(a) if not isinstance(a, bytes) else a
                     for a in argv]
        self.popen = subprocess.Popen(
            self.argv, env=env,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge else subprocess.PIPE, **kw)
        self.pid = self.popen.pid
        self.pidfd = os.pidfd_open(self.pid)
        name = os.path.basename(os.fsdecode(self.argv[0]))
        self.out = Stream(self.popen.stdout, f"{name}[{self.pid}] stdout")
        self.err = (self.out if merge else
                    Stream(self.popen.stderr, f"{name}[{self.pid}] stderr"))

    def send(self, data=b"\n"):
        self.popen.stdin.write(data)
        self.popen.stdin.flush()

    def close_stdin(self):
        if self.popen.stdin and not self.popen.stdin.closed:
            self.popen.stdin.close()

    def wait(self, timeout=TIMEOUT):
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{self.argv!r} did not exit within {timeout} s; "
                        f"stdout {self.out.text()!r}")

    def finish(self, timeout=TIMEOUT):
        """Waits for the exit and for both streams to end (which, for a target
        that started its own watcher, is also when the watcher has exited: it
        holds the target's stdout and stderr)."""
        rc = self.wait(timeout)
        self.out.wait_eof(timeout)
        self.err.wait_eof(timeout)
        return rc

    def value(self, prefix, timeout=TIMEOUT):
        """The integer after `prefix` on the first stdout line starting so."""
        _, line = self.out.wait_for(lambda l: l.startswith(prefix + " "),
                                    timeout, what=repr(prefix))
        return int(line.split()[-1])

    def kill(self):
        try:
            if self.popen.poll() is None:
                self.popen.kill()
                self.popen.wait(5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        self.close_stdin()
        os.close(self.pidfd)


class Pid:
    """A process that is not our child (a library-spawned watcher), held by a
    pidfd opened while it is known to be alive."""

    def __init__(self, pid):
        self.pid = pid
        self.pidfd = os.pidfd_open(pid)

    def alive(self):
        return not select.select([self.pidfd], [], [], 0)[0]

    def wait(self, timeout=TIMEOUT):
        """True once it has exited (it need not be reaped by us)."""
        return bool(select.select([self.pidfd], [], [], timeout)[0])

    def signal(self, sig):
        try:
            signal.pidfd_send_signal(self.pidfd, sig)
        except ProcessLookupError:
            pass

    def close(self):
        if self.alive():
            self.signal(signal.SIGKILL)
        os.close(self.pidfd)


class Processes:
    """Starts processes for one test and kills them all at its end."""

    def __init__(self, env, watcher, stall_target):
        self.env = env
        self.watcher_path = watcher
        self.stall_target_path = stall_target
        self._procs = []
        self._pids = []

    def start(self, argv, env=None, **kw):
        p = Proc(argv, env if env is not None else self.env, **kw)
        self._procs.append(p)
        return p

    def adopt(self, pid):
        """Holds a process that is not our child, e.g. a target's watcher."""
        p = Pid(pid)
        self._pids.append(p)
        return p

    def target(self, *args, ready=True, **kw):
        """Starts stall_target with `args`; waits for READY."""
        p = self.start([self.stall_target_path, *args], **kw)
        if ready:
            p.out.wait_for(lambda l: l == "READY", what="READY")
            if "--watch" in args:
                p.watcher = self.adopt(p.value("WATCHER"))
        return p

    def attach(self, pid, *options, started=True, **kw):
        """Starts `perpetuo [options] watch PID`; waits for watch_started."""
        w = self.start([self.watcher_path, *options, "watch", str(pid)],
                       stdin=False, **kw)
        if started:
            w.err.wait_for(lambda l: '"event":"watch_started"' in l or
                           l.startswith("perpetuo: watching pid"),
                           what="watch_started")
        return w

    def cleanup(self):
        for p in reversed(self._procs):
            p.kill()
        for p in self._pids:
            p.close()


@pytest.fixture
def procs(env, watcher, stall_target):
    ps = Processes(env, watcher, stall_target)
    try:
        yield ps
    finally:
        ps.cleanup()


def events(records, event=None, pid=None):
    """The stall records (or those of one event, of one pid)."""
    out = [r for r in records if r.get("event", "").startswith("stall_")]
    if event:
        out = [r for r in out if r["event"] == event]
    if pid is not None:
        out = [r for r in out if r["additional_info"]["pid"] == str(pid)]
    return out


def proc_state(pid):
    """(state letter, ppid) from /proc/PID/stat, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat[stat.rindex(b")") + 2:].split()
    return fields[0].decode(), int(fields[1])


def wait_state(pid, states, timeout=5.0):
    """Waits until /proc says `pid` is in one of `states`; the last state."""
    deadline = time.monotonic() + timeout
    while True:
        st = proc_state(pid)
        if st and st[0] in states:
            return st
        if time.monotonic() > deadline:
            return st
        time.sleep(0.002)


MODES = ("library", "attach")


class Run:
    """A stall_target run under a watcher: `target`, `watcher_out` (the
    stream the watcher reports on) and `watcher` (a Proc when attached, a Pid
    when the library spawned it)."""

    def __init__(self, mode, target, watcher, watcher_out):
        self.mode = mode
        self.target = target
        self.watcher = watcher
        self.watcher_out = watcher_out

    def finish(self, timeout=TIMEOUT):
        """Waits for the target, then the watcher, and every stream's end;
        returns the target's exit status."""
        rc = self.target.finish(timeout)
        if self.mode == "attach":
            self.watcher.finish(timeout)
        return rc

    def records(self):
        return self.watcher_out.records()


def scripted(procs, mode, steps, json=True, alert_ms=None, poll_ms=None,
             suppress_ms=None, target_args=(), watcher_args=(), go=True,
             **kw):
    """Runs stall_target's `steps` watched in `mode`:
    "library": the target starts its own watcher (--watch);
    "attach": `perpetuo watch PID` attaches from outside, then the target is
    let go (a `gate` step is put first). With go=False the gate is left closed
    for the test to open with run.target.send()."""
    if mode == "library":
        args = ["--watch", *(["--json"] if json else [])]
        for flag, value in (("--alert-ms", alert_ms), ("--poll-ms", poll_ms),
                            ("--suppress-ms", suppress_ms)):
            if value is not None:
                args += [flag, str(value)]
        steps = list(steps) if go else ["gate", *steps]
        target = procs.target(*args, *target_args, *steps, **kw)
        return Run(mode, target, target.watcher, target.err)
    assert mode == "attach", mode
    target = procs.target(*target_args, "gate", *steps, **kw)
    options = ["--json-mode"] if json else []
    for flag, value in (("--alert-interval", alert_ms),
                        ("--poll-interval", poll_ms),
                        ("--traceback-suppress", suppress_ms)):
        if value is not None:
            options += [flag, str(value / 1000)]
    watcher = procs.attach(target.pid, *options, *watcher_args)
    if go:
        target.send()
    return Run(mode, target, watcher, watcher.err)


def stall_windows(target):
    """[(begin_ns, end_ns)] of the target's stall steps, from its stdout."""
    begins = [int(l.split()[-1]) for l in target.out.text()
              if l.startswith("STALL BEGIN ")]
    ends = [int(l.split()[-1]) for l in target.out.text()
            if l.startswith("STALL END ")]
    assert len(begins) == len(ends), target.out.text()
    return list(zip(begins, ends))


def by_stall(records):
    """{stall_id: [its records, in order]}."""
    out = {}
    for r in events(records):
        out.setdefault(r["stall_details"]["stall_id"], []).append(r)
    return out


def python_interpreters():
    """{"3.X": path} of the CPython interpreters on this machine: Debian's
    python3, and pyenv's builds ($PYENV_ROOT, or ~/.pyenv)."""
    found = {}
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    versions = os.path.join(root, "versions")
    if os.path.isdir(versions):
        for name in sorted(os.listdir(versions)):
            parts = name.split(".")
            exe = os.path.join(versions, name, "bin", "python3")
            if len(parts) >= 2 and parts[0] == "3" and os.access(exe, os.X_OK):
                found[f"3.{parts[1]}"] = exe
    if os.access("/usr/bin/python3", os.X_OK):
        out = subprocess.run(
            ["/usr/bin/python3", "-c",
             "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True).stdout.strip()
        if out:
            found[out] = "/usr/bin/python3"
    return found
