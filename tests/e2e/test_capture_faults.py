"""Fault injection around stack captures: whatever goes wrong while the
watcher has threads of the target stopped (the watcher killed or told to
stop, the target killed, threads exiting, a thread that cannot stop), the
target is resumed, nothing of it is left stopped or unreaped, and the watcher
either goes on watching or ends cleanly.

PERPETUO_TEST_FREEZE_HOLD_MS makes the watcher hold the threads it stopped
a while longer after copying their stacks, which opens a wide window to hit.
A thread stopped by the watcher shows state 't' in /proc/PID/task/TID/stat
and the watcher as its TracerPid.

Each scenario is repeated ROUNDS times against churn_target. Time bounds are
safety bounds (how long a thread may stay stopped, how long reaping may
take), generous for a loaded 2-core machine, never performance figures.
"""

import ctypes
import json
import os
import select
import signal
import subprocess
import threading
import time

import pytest

from conftest import TIMEOUT, _binary, events, proc_state

ROUNDS = 50
HOLD_MS = 100
# The watcher's options: stalls after 50 ms, a look every 10 ms, stacks for
# every stall.
FAST = ["--json-mode", "--alert-interval", "0.05", "--poll-interval", "0.01",
        "--traceback-suppress", "0"]
POLL_S = 0.01
# Past its hold, a thread is kept stopped at most the watcher's 50 ms budget,
# or until the next poll for one that stopped late; one second more is for a
# loaded machine.
MARGIN_S = 0.05 + POLL_S + 1.0


@pytest.fixture(scope="session")
def churn_target(builddir):
    return _binary(builddir, "tests/targets/churn_target",
                   "make tests/targets/churn_target, or make check")


def hold_env(env, ms):
    e = dict(env)
    e["PERPETUO_TEST_FREEZE_HOLD_MS"] = str(ms)
    return e


def start_churn(procs, path, *args, env=None):
    target = procs.start([path, *args], env=env)
    target.out.wait_for(lambda l: l == "READY", what="READY")
    return target


# ------------------------------------------------------------ /proc helpers

def task_ids(pid):
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except (FileNotFoundError, ProcessLookupError):
        return []


def task_state(pid, tid):
    """The state letter of a thread, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/task/{tid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return chr(stat[stat.rindex(b")") + 2])


def tracer_pid(pid, tid):
    """TracerPid of a thread, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/task/{tid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"TracerPid:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return None


def wait_reapable(pid, timeout):
    """Waits until our child `pid` can be reaped (without reaping it): True,
    or False after `timeout`. Polled every half millisecond, so the moment
    is known closely (Popen.wait with a timeout polls up to 50 ms apart)."""
    deadline = time.monotonic() + timeout
    while os.waitid(os.P_PID, pid,
                    os.WEXITED | os.WNOWAIT | os.WNOHANG) is None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.0005)
    return True


def held_threads(pid):
    """[(tid, state, tracer)] of the threads stopped or traced."""
    out = []
    for tid in task_ids(pid):
        state, tracer = task_state(pid, tid), tracer_pid(pid, tid)
        if (state and state in "tT") or tracer:
            out.append((tid, state, tracer))
    return out


def wait_traced_by(pid, wpid, states="t", timeout=TIMEOUT):
    """Waits until a thread of `pid` is in one of `states` with `wpid` as its
    tracer (for 't': the watcher has it stopped, mid-capture); its tid."""
    deadline = time.monotonic() + timeout
    while True:
        for tid in task_ids(pid):
            state = task_state(pid, tid)
            if state and state in states and tracer_pid(pid, tid) == wpid:
                return tid
        if time.monotonic() > deadline:
            pytest.fail(f"no thread of {pid} in state {states!r} traced by "
                        f"{wpid} within {timeout} s")
        time.sleep(0.001)


def assert_released(pid, timeout=2.0):
    """No thread of `pid` is stopped or traced. Polled a little: a thread the
    kernel has just let go of may need a moment to run again."""
    deadline = time.monotonic() + timeout
    while (held := held_threads(pid)) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert not held, (f"threads of {pid} still stopped or traced {timeout} s "
                      f"later (tid, state, TracerPid): {held}")


class StopMonitor:
    """Samples /proc every 2 ms: how long any thread of `pid` was seen
    stopped ('t' or 'T') without a break, and how many stops it saw."""

    def __init__(self, pid):
        self.pid = pid
        self.longest = 0.0
        self.longest_tid = None
        self.stops = 0
        self.still = {}  # tid: when first seen in its current stop
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._done.is_set():
            now = time.monotonic()
            stopped = set()
            for tid in task_ids(self.pid):
                state = task_state(self.pid, tid)
                if not state or state not in "tT":
                    continue
                stopped.add(tid)
                if tid not in self.still:
                    self.still[tid] = now
                    self.stops += 1
                if now - self.still[tid] > self.longest:
                    self.longest = now - self.still[tid]
                    self.longest_tid = tid
            for tid in list(self.still):
                if tid not in stopped:
                    del self.still[tid]
            self._done.wait(0.002)

    def stop(self):
        self._done.set()
        self._thread.join(TIMEOUT)
        return self

    def check(self, bound):
        print(f"longest stop seen: {self.longest * 1000:.1f} ms "
              f"({self.stops} stops)")
        assert self.longest <= bound, (
            f"thread {self.longest_tid} of {self.pid} was seen stopped for "
            f"{self.longest:.3f} s (bound {bound:.3f} s); still stopped at "
            f"the end: {sorted(self.still)}")


# ------------------------------------------------------------ target output

def wait_progress(target, after_ns, beat=False):
    """Waits for the stalling thread (and, with beat, the heartbeat thread)
    to print a line stamped after `after_ns`: it runs."""
    target.out.wait_for(
        lambda l: l.startswith("STALL ") and " END " in l and
        int(l.split()[-1]) > after_ns, what=f"a stall ending after {after_ns}")
    if beat:
        target.out.wait_for(
            lambda l: l.startswith("BEAT ") and int(l.split()[2]) > after_ns,
            what=f"a heartbeat after {after_ns}")


def nth(n, needle):
    """A wait_for predicate true on the n-th line holding `needle`."""
    seen = [0]

    def predicate(line):
        seen[0] += needle in line
        return seen[0] >= n
    return predicate


BEGAN = '"event":"stall_began"'


def check_threads(capture):
    """Each thread has a stack or says why not: an exited thread is an
    error sentence, never a missing or broken entry. The count of errors."""
    assert isinstance(capture, dict), capture
    assert isinstance(capture["threads"], list), capture
    errors = 0
    for t in capture["threads"]:
        assert isinstance(t["tid"], int) and t["tid"] > 0, t
        if t["error"] is None:
            assert t["frames"] > 0, t
        else:
            assert isinstance(t["error"], str) and t["error"], t
            errors += 1
    return errors


PR_SET_CHILD_SUBREAPER = 36


def set_subreaper(on):
    """The library's watcher is orphaned by its spawner: as a subreaper, this
    process inherits it and can read its exit status."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) != 0:
        pytest.skip("prctl(PR_SET_CHILD_SUBREAPER) failed: errno "
                    f"{ctypes.get_errno()}; cannot read the status of the "
                    "library's watcher")


# ----------------------------------------------------------------- scenarios

def test_watcher_sigkilled_mid_capture(procs, churn_target):
    """SIGKILL the watcher while it has a thread stopped: the kernel lets the
    threads go; none is left stopped or traced, and the target goes on. Odd
    rounds stop every thread (--all-threads), even rounds the stalled one."""
    target = start_churn(procs, churn_target, "--stall-ms", "80",
                         "--gap-ms", "10", "--beat-ms", "10")
    env = hold_env(procs.env, HOLD_MS)
    mid_capture = 0
    for k in range(ROUNDS):
        w = procs.attach(target.pid, *FAST,
                         *(["--all-threads"] if k % 2 else []), env=env)
        wait_traced_by(target.pid, w.pid)
        w.popen.kill()
        assert w.wait(5) == -signal.SIGKILL
        killed_ns = time.monotonic_ns()
        w.err.wait_eof()
        # Killed within the hold: before the stall's record was written.
        mid_capture += not any(BEGAN in l for l in w.err.text())
        assert_released(target.pid)
        wait_progress(target, killed_ns, beat=True)
    print(f"{mid_capture} of {ROUNDS} kills within a capture")
    assert mid_capture >= ROUNDS * 0.9, \
        f"only {mid_capture} of {ROUNDS} kills hit a capture"


def test_target_sigkilled_mid_capture(procs, churn_target):
    """SIGKILL the target while the watcher has it stopped: the watcher still
    reports the stall with what it got, ends (status 0, "pid N exited"), and
    the target's parent reaps it promptly: a dead thread the watcher traced
    is the watcher's to reap (a thread group's leader last), and until it
    does, the parent's wait cannot return. So the parent must be able to
    reap the target while the watcher is still busy with the capture's
    stacks, not only once the watcher has exited. Odd rounds: churning
    threads and --all-threads."""
    env = hold_env(procs.env, HOLD_MS)
    reap_bound = HOLD_MS / 1000 + MARGIN_S + 2.0
    slowest = 0.0
    after_watcher = []
    for k in range(ROUNDS):
        many = k % 2 == 1
        args = ["--stall-ms", "1000", "--gap-ms", "10"]
        if many:
            args += ["--churn", "2", "--beat-ms", "20"]
        target = start_churn(procs, churn_target, *args)
        w = procs.attach(target.pid, *FAST,
                         *(["--all-threads"] if many else []), env=env)
        wait_traced_by(target.pid, w.pid)
        target.popen.kill()
        start = time.monotonic()
        if not wait_reapable(target.pid, reap_bound):
            pytest.fail(f"the killed target {target.pid} was not reaped "
                        f"within {reap_bound} s: state "
                        f"{proc_state(target.pid)}, threads held "
                        f"{held_threads(target.pid)}, watcher state "
                        f"{proc_state(w.pid)}")
        slowest = max(slowest, time.monotonic() - start)
        if select.select([w.pidfd], [], [], 0)[0]:
            after_watcher.append((k, "many threads" if many else "one thread"))
        assert target.popen.wait() == -signal.SIGKILL
        assert w.finish() == 0, w.err.text()
        records = w.err.records()
        began = events(records, "stall_began")
        assert len(began) == 1, records
        capture = began[0]["stall_details"].get("capture")
        check_threads(capture)
        assert capture["threads"], capture
        first = capture["threads"][0]
        assert first["relevant"] and first["tid"] == target.pid, capture
        assert records[-1]["event"] == "watch_ended", records[-1]
        assert f"pid {target.pid} exited" in records[-1]["message"]
        target.out.wait_eof()
    print(f"slowest reap after SIGKILL: {slowest * 1000:.1f} ms; reaped "
          f"only once the watcher had exited: {len(after_watcher)} rounds")
    # A loaded machine may now and then run the watcher to its end before
    # this process sees the target reapable: a few rounds are let pass.
    assert len(after_watcher) <= ROUNDS // 10, (
        "the killed target could be reaped only once the watcher had exited "
        "(the watcher kept its dead threads unreaped), rounds: "
        f"{after_watcher}")


def test_threads_exiting_during_captures(procs, churn_target):
    """Short-lived threads come and go while the watcher (the target's own,
    --all-threads) lists, stops and unwinds them all, stall after stall: it
    keeps reporting, names exited threads with an error, leaves nothing
    stopped, and ends with status 0 on SIGTERM."""
    hold_ms = 20
    set_subreaper(True)
    wpid = None
    try:
        target = start_churn(
            procs, churn_target, "--watch", "--json", "--all-threads",
            "--alert-ms", "50", "--poll-ms", "10", "--stall-ms", "80",
            "--gap-ms", "20", "--kind", "mixed", "--churn", "6",
            "--life-us", "500", "--beat-ms", "20",
            env=hold_env(procs.env, hold_ms))
        wpid = target.value("WATCHER")
        watcher = procs.adopt(wpid)
        st = proc_state(wpid)
        assert st is not None and st[1] == os.getpid(), st
        monitor = StopMonitor(target.pid)
        try:
            target.err.wait_for(nth(ROUNDS, BEGAN), timeout=30,
                                what=f"{ROUNDS} stalls")
        finally:
            monitor.stop()
        assert watcher.alive(), "the watcher died"
        began = [r for r in target.err.records()
                 if r.get("event") == "stall_began"]
        exited = 0
        for r in began:
            capture = r["stall_details"]["capture"]
            check_threads(capture)
            assert capture["error"] is None, capture
            assert capture["relevant_found"], capture
            first = capture["threads"][0]
            assert first["relevant"] and first["tid"] == target.pid, capture
            assert first["frames"] > 0, capture
            exited += sum("exited" in (t["error"] or "")
                          for t in capture["threads"])
        print(f"{exited} threads exited during {len(began)} captures")
        assert exited > 0, "no thread exited during a capture: nothing tested"
        assert monitor.stops >= ROUNDS // 2, monitor.stops
        monitor.check(hold_ms / 1000 + MARGIN_S)

        watcher.signal(signal.SIGTERM)
        assert watcher.wait(TIMEOUT), "the watcher ignored SIGTERM"
        _, status = os.waitpid(wpid, 0)
        wpid = None
        assert os.waitstatus_to_exitcode(status) == 0
        target.err.wait_for(lambda l: '"event":"watch_ended"' in l and
                            "SIGTERM" in l, what="watch_ended")
        assert_released(target.pid)
        wait_progress(target, time.monotonic_ns(), beat=True)
    finally:
        set_subreaper(False)
        if wpid is not None:
            try:
                os.kill(wpid, signal.SIGKILL)
                os.waitpid(wpid, 0)
            except (ChildProcessError, ProcessLookupError):
                pass


def test_watcher_sigterm_mid_capture(procs, churn_target):
    """SIGTERM while the watcher has a thread stopped: it finishes the
    capture, reports it, resumes the target and exits 0."""
    target = start_churn(procs, churn_target, "--stall-ms", "80",
                         "--gap-ms", "10", "--beat-ms", "10")
    env = hold_env(procs.env, HOLD_MS)
    mid_capture = 0
    for k in range(ROUNDS):
        w = procs.attach(target.pid, *FAST,
                         *(["--all-threads"] if k % 2 else []), env=env)
        wait_traced_by(target.pid, w.pid)
        sent = time.monotonic_ns()
        w.popen.terminate()
        assert w.wait(HOLD_MS / 1000 + MARGIN_S + 2.0) == 0, w.err.text()
        arrived, _ = w.err.wait_for(lambda l: BEGAN in l)
        mid_capture += arrived > sent
        w.finish()
        records = w.err.records()
        began = events(records, "stall_began")
        assert len(began) == 1, records
        capture = began[0]["stall_details"]["capture"]
        check_threads(capture)
        first = capture["threads"][0]
        assert first["relevant"] and first["tid"] == target.pid, capture
        assert first["frames"] > 0, capture
        assert records[-1]["event"] == "watch_ended", records[-1]
        assert "SIGTERM" in records[-1]["message"], records[-1]
        assert_released(target.pid)
        wait_progress(target, sent, beat=True)
    print(f"{mid_capture} of {ROUNDS} SIGTERMs within a capture")
    assert mid_capture >= ROUNDS * 0.9, \
        f"only {mid_capture} of {ROUNDS} SIGTERMs came within a capture"


# A thread in uninterruptible sleep: the parent of vfork() waits for its
# child killably, which /proc shows as 'D', and a ptrace interrupt cannot stop
# it until the child exits. churn_target --kind vfork stalls so.

def test_uninterruptible_thread(procs, churn_target):
    """The stalled thread is in 'D' at every capture: the watcher gives up
    waiting for it, says why, and lets it go as soon as it stops; the
    target goes on stalling and the watcher on reporting."""
    hold_ms = 20
    target = start_churn(procs, churn_target, "--kind", "vfork",
                         "--stall-ms", "100", "--gap-ms", "20",
                         "--beat-ms", "20")
    w = procs.attach(target.pid, *FAST, env=hold_env(procs.env, hold_ms))
    monitor = StopMonitor(target.pid)
    try:
        w.err.wait_for(nth(ROUNDS, BEGAN), timeout=30,
                       what=f"{ROUNDS} stalls")
    finally:
        monitor.stop()
    assert w.popen.poll() is None, "the watcher died"
    no_stop = 0
    for r in events(w.err.records(), "stall_began"):
        capture = r["stall_details"]["capture"]
        check_threads(capture)
        (first,) = capture["threads"]
        assert first["relevant"] and first["tid"] == target.pid, capture
        if first["state"] == "D" and "did not stop" in (first["error"] or ""):
            no_stop += 1
            assert first["frames"] == 0, capture
    print(f"{no_stop} of {ROUNDS} captures met a 'D' thread")
    assert no_stop >= ROUNDS * 0.9, f"only {no_stop} captures met a 'D' thread"
    monitor.check(hold_ms / 1000 + MARGIN_S)
    w.popen.terminate()
    assert w.wait() == 0
    assert_released(target.pid)
    wait_progress(target, time.monotonic_ns(), beat=True)


def test_watcher_sigkilled_while_thread_uninterruptible(procs, churn_target):
    """SIGKILL the watcher while the thread it could not stop is still in
    'D', traced by it: the kernel lets it go at once, and once it leaves 'D'
    it runs on, not stopped for an interrupt nobody will answer."""
    target = start_churn(procs, churn_target, "--kind", "vfork",
                         "--stall-ms", "120", "--gap-ms", "10",
                         "--beat-ms", "10")
    for _ in range(ROUNDS):
        w = procs.attach(target.pid, *FAST)
        wait_traced_by(target.pid, w.pid, states="D")
        w.popen.kill()
        assert w.wait(5) == -signal.SIGKILL
        killed_ns = time.monotonic_ns()
        assert_released(target.pid)
        wait_progress(target, killed_ns, beat=True)
        assert_released(target.pid)


def test_many_uninterruptible_threads(procs, churn_target):
    """80 threads in 'D' at each capture (--all-threads): each one is let go
    as soon as it stops, however many the watcher has to look after."""
    target = start_churn(procs, churn_target, "--blockers", "80",
                         "--block-ms", "150", "--stall-ms", "100",
                         "--gap-ms", "20")
    w = procs.attach(target.pid, *FAST, "--all-threads")
    monitor = StopMonitor(target.pid)
    try:
        w.err.wait_for(nth(ROUNDS, BEGAN), timeout=45,
                       what=f"{ROUNDS} stalls")
        # Long enough for a thread left stopped by the last capture to
        # outlast the bound.
        time.sleep(MARGIN_S + 0.5)
    finally:
        monitor.stop()
    assert w.popen.poll() is None, "the watcher died"
    # More than any fixed table a watcher might keep of them, in one capture.
    no_stop = max(sum("did not stop" in (t["error"] or "")
                      for t in r["stall_details"]["capture"]["threads"])
                  for r in events(w.err.records(), "stall_began"))
    assert no_stop > 64, f"at most {no_stop} threads were met in 'D' at once"
    monitor.check(MARGIN_S)
    w.popen.terminate()
    assert w.wait() == 0
    assert_released(target.pid)


def test_blocked_output_releases_uninterruptible_thread(procs, churn_target,
                                                        watcher):
    """The watcher's output is a pipe nobody reads, and it fills up just as a
    capture meets a thread in 'D': while the report waits for room, the
    thread is still let go as soon as it stops; once the pipe is read, the
    report comes, whole."""
    target = start_churn(procs, churn_target, "--kind", "vfork",
                         "--stall-ms", "300", "--gap-ms", "30")
    r, w = os.pipe()
    proc = subprocess.Popen(
        [watcher, *FAST, "--output-fd", str(w), "watch", str(target.pid)],
        env=procs.env, pass_fds=(w,), stdin=subprocess.DEVNULL)
    data = bytearray()
    draining = threading.Event()
    draining.set()

    def drain():
        while draining.is_set():
            if select.select([r], [], [], 0.01)[0]:
                data.extend(os.read(r, 65536))

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    monitor = None
    try:
        # The moment a capture has the stalled thread seized while it is
        # in 'D' (the watcher waits for it to stop): fill the pipe.
        wait_traced_by(target.pid, proc.pid, states="D")
        draining.clear()
        reader.join(TIMEOUT)
        os.set_blocking(w, False)
        try:
            while True:
                os.write(w, b" " * 4096)
        except BlockingIOError:
            pass
        monitor = StopMonitor(target.pid)
        time.sleep(1.0)
        assert proc.poll() is None, "the watcher died"
        with open(f"/proc/{proc.pid}/wchan") as f:
            waiting_in = f.read()
        monitor.stop()
        assert "poll" in waiting_in, f"the watcher is not waiting to write " \
            f"(wchan {waiting_in})"
        # The thread's stop itself may be shorter than the monitor's 2 ms
        # period; what proves it was let go while the watcher still waits
        # to write is that nothing of the target is traced any more.
        assert_released(target.pid)
        with open(f"/proc/{proc.pid}/wchan") as f:
            assert "poll" in f.read(), "the watcher stopped waiting to write"
        monitor.check(0.05 + 0.02 + 0.5)
        # Now read: the record of that capture comes, whole.
        deadline = time.monotonic() + TIMEOUT
        while BEGAN.encode() not in data.replace(b" " * 4096, b""):
            assert time.monotonic() < deadline, "no stall record came"
            if select.select([r], [], [], 0.1)[0]:
                data.extend(os.read(r, 65536))
    finally:
        draining.clear()
        if monitor:
            monitor.stop()
        proc.kill()
        proc.wait()
        os.close(w)
        os.close(r)
    records = [json.loads(line) for line in bytes(data).split(b"\n")
               if BEGAN.encode() in line]
    capture = records[-1]["stall_details"]["capture"]
    assert capture["threads"][0]["tid"] == target.pid, capture
    assert "did not stop" in capture["threads"][0]["error"], capture
