#!/usr/bin/env python3
"""How long reading every thread's Python stack stops the target: the
watcher next to `py-spy dump`, on the same process.

For each row, 1, 16 and 64 threads, print_locals off and on, one process of
bench/pystack_target.py: THREADS threads DEPTH (50) Python frames deep, each
frame holding an int, a str, a float and a list, sleeping at the bottom in
time.sleep(); its main thread, DEPTH frames deep too, owns a tracker and
stalls STALLS times (100 ms each), watched by the watcher it started (JSON,
poll 10 ms, alert 50 ms, traceback_suppress=0: every stall's first record
has its stacks). At a stall's first record the watcher stops every thread,
reads their Python stacks (and locals) with process_vm_readv, copies the
stalled thread's native stack and resumes them all. From each record's
stall_details.capture:

  pause_us    first thread interrupted .. last one resumed: what the target
              loses
  total_us    the whole capture, until the stacks are read and named

The first capture of a process is cold (no code object read yet: names,
file names and line tables are read then, and cached) and is shown apart;
the medians and p90 are over the others.

Then, in the same process (tracker closed, watcher stopped, every thread
still DEPTH frames deep), DUMPS runs of `py-spy dump --pid PID` (with
--locals for the locals rows), one after the other: py-spy's wall time per
dump (its whole process: start, reading the interpreter's symbols, the
dump), and how long it keeps the target stopped (py-spy stops the process
with ptrace while it reads, unless --nonblocking).

The target's stops are seen from outside by an observer process, the same
for both tools, polling /proc/PID/task/TID/stat in a tight loop (the files
kept open, read with pread) and taking a thread in state 't' or 'T' for
stopped. Both tools stop and resume the threads in the order /proc lists
them, so the first and last listed threads are polled on every round and
the others one per round, in turn (the report counts the rounds that saw
only one of the others stopped). A stop runs from the first round that
sees a thread stopped to the last one; its length is taken halfway between
that span and the span from the round before to the round after, so it is
right to within one round (the period is printed). Per stall or per dump,
the observed pause is the sum of its stops; for ours it is a cross-check of
pause_us. The observer runs at the priority of the others, so the threads
that a stop or a resume wakes can take its CPU for a moment: a stall or a
dump where it was off the CPU as a stop began or ended, for more than
200 us and a tenth of the stop, is left out of the observed figures (and
counted).

Usage: pystack_pause.py [--build DIR] [--python PATH] [--py-spy PATH]
       [--threads 1,16,64] [--stalls N] [--dumps N]
--build is this project's build directory (default: the current one);
--python the interpreter the package was built for (default: this one).
Exits non-zero, with one sentence, if a capture is broken (no Python
capture, an error, fewer Python threads than the target runs, the deepest
thread under DEPTH frames, locals missing or unasked-for; fewer than two
stalls reported), if py-spy fails or shows fewer frames, or if the observer,
on the CPU all along, sees no stop during a dump.
"""

import argparse
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from benchlib import fmt, machine_description, median, percentile

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = os.path.join(HERE, "pystack_target.py")
DEPTH = 50
STALL_MS = 100
IDLE_MS = 50
POLL_MS = 10
ALERT_MS = 50
GOAL_US = 2000.0  # 16 threads, no locals
GOAL_THREADS = 16
TIMEOUT = 30.0
# More than this between two of the observer's rounds (about 10 us apart)
# and it was off the CPU: a stop could begin or end unseen meanwhile.
GAP_NS = 200000
DUMP_TIMEOUT = 60.0
DUMP_GAP_S = 0.05
LOCALS = ("level", "label", "ratio", "items")


class BenchError(Exception):
    pass


# ---------------------------------------------------------------- observer

def observe(pid):
    """The observer's process: polls the target's threads until SIGTERM,
    then prints what it saw as JSON."""
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    task = "/proc/%d/task" % pid
    fds = [os.open("%s/%s/stat" % (task, tid), os.O_RDONLY)
           for tid in os.listdir(task)]
    ends = fds[:1] + fds[-1:] if len(fds) > 1 else fds
    others = fds[1:-1] or [None]
    print(json.dumps({"threads": len(fds)}), flush=True)

    def stopped(fd):
        try:
            raw = os.pread(fd, 512, 0)
        except OSError:
            return False  # the thread is gone
        # The state follows the name, which may hold ")" itself.
        at = raw.rindex(b")") + 2
        return raw[at:at + 1] in (b"t", b"T")

    clock = time.monotonic_ns
    episodes = []
    gaps = []
    rounds = middle_only = 0
    first = last = before = None
    previous = clock()
    began = previous
    while not stop:
        start = clock()
        other = others[rounds % len(others)]
        at_ends = any([stopped(fd) for fd in ends])
        in_middle = other is not None and stopped(other)
        now = (start + clock()) // 2
        rounds += 1
        if now - previous > GAP_NS:
            gaps.append((previous, now - previous))
        middle_only += in_middle and not at_ends
        seen = at_ends or in_middle
        if seen:
            if first is None:
                first, before = now, previous
            last = now
        elif first is not None:
            # [first, last] is inside the episode, [before, now] holds it;
            # slack: how far off either end may be.
            episodes.append(((before + first) // 2,
                             ((last - first) + (now - before)) // 2,
                             max(first - before, now - last)))
            first = None
        previous = now
    elapsed = clock() - began
    print(json.dumps({"episodes": episodes, "gaps": gaps, "rounds": rounds,
                      "middle_only": middle_only,
                      "period_ns": elapsed / max(rounds, 1),
                      "sweep_ns": elapsed / max(rounds, 1) * len(others)}),
          flush=True)


class Lines:
    """A process whose stdout lines are queued as they arrive."""

    def __init__(self, label, argv, **kwargs):
        self.label = label
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                     universal_newlines=True, **kwargs)
        self.queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.queue.put(line.rstrip("\n"))
        self.queue.put(None)

    def line(self, what, timeout=TIMEOUT):
        try:
            line = self.queue.get(timeout=timeout)
        except queue.Empty:
            raise BenchError("%s: no %s within %.0f s"
                             % (self.label, what, timeout))
        if line is None:
            raise BenchError("%s ended (exit status %s) before its %s"
                             % (self.label, self.proc.wait(), what))
        return line

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


class Observer(Lines):
    def __init__(self, pid, expected):
        super().__init__("the observer of pid %d" % pid,
                         [sys.executable, os.path.abspath(__file__),
                          "--observe", str(pid)])
        try:
            seen = json.loads(self.line("list of threads"))["threads"]
            if seen != expected:
                raise BenchError("the observer found %d threads in pid %d, "
                                 "expected %d" % (seen, pid, expected))
        except BenchError:
            self.kill()
            raise

    def finish(self):
        self.proc.send_signal(signal.SIGTERM)
        result = json.loads(self.line("result"))
        self.proc.wait()
        return result


def episodes_within(observed, begin, end):
    """The stopped time observed in [begin, end], in how many stops, and
    whether the observer was kept off the CPU where it mattered: as a stop
    began or ended, for longer than GAP_NS and a tenth of the stop, or
    anywhere in the window if it saw no stop. (Off the CPU in the middle of
    a stop changes nothing: it sees the stop on both sides.)"""
    inside = [e for e in observed["episodes"] if begin <= e[0] <= end]
    if inside:
        blind = any(slack > max(GAP_NS, length / 10)
                    for _, length, slack in inside)
    else:
        blind = any(g < end and g + n > begin for g, n in observed["gaps"])
    return sum(e[1] for e in inside) / 1e3, len(inside), blind


# ------------------------------------------------------------------ a row

class Row:
    def __init__(self, threads, with_locals):
        self.threads = threads
        self.locals = with_locals
        self.label = "%d thread%s, locals %s" % (
            threads, "" if threads == 1 else "s",
            "on" if with_locals else "off")


def run_row(args, env, row, workdir):
    err_path = os.path.join(workdir, "t%d-%s.err"
                            % (row.threads, "l" if row.locals else "n"))
    cmd = [args.python, TARGET, "--threads", str(row.threads),
           "--depth", str(DEPTH), "--stalls", str(args.stalls),
           "--stall-ms", str(STALL_MS), "--idle-ms", str(IDLE_MS),
           "--poll-ms", str(POLL_MS), "--alert-ms", str(ALERT_MS)]
    if row.locals:
        cmd.append("--locals")
    with open(err_path, "w") as err:
        target = Lines("the target (%s)" % row.label, cmd, env=env,
                       stdin=subprocess.PIPE, stderr=err)
    observer = None
    try:
        fields = target.line("ready line").split(" ", 2)
        if len(fields) != 3 or fields[0] != "ready":
            raise BenchError("%s said %r, not its ready line"
                             % (target.label, " ".join(fields)))
        pid, package = int(fields[1]), fields[2]
        if not package.startswith(args.stage + os.sep):
            raise BenchError("%s imported perpetuo from %s, not from %s"
                             % (target.label, package, args.stage))
        expected = row.threads + 1
        observer = Observer(pid, expected)
        target.proc.stdin.write("go\n")
        target.proc.stdin.flush()
        windows = []
        deadline = TIMEOUT + args.stalls * (STALL_MS + IDLE_MS) / 1000 * 3
        while True:
            line = target.line("stall or idle line", deadline)
            if line == "idle":
                break
            fields = line.split()
            if len(fields) != 4 or fields[0] != "stall":
                raise BenchError("%s said %r, not a stall line"
                                 % (target.label, line))
            windows.append((int(fields[2]), int(fields[3])))
        ours_seen = observer.finish()
        observer = None

        observer = Observer(pid, expected)
        dumps = []
        for _ in range(args.dumps):
            dumps.append(py_spy_dump(args, row, pid))
            time.sleep(DUMP_GAP_S)
        spy_seen = observer.finish()
        observer = None

        target.proc.stdin.close()
        if target.line("done line") != "done":
            raise BenchError("%s did not end cleanly" % target.label)
        try:
            status = target.proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            status = "none: still running"
        if status != 0:
            raise BenchError("%s ended with exit status %s"
                             % (target.label, status))
    finally:
        if observer:
            observer.kill()
        target.kill()

    with open(err_path) as f:
        records = [json.loads(line) for line in f if line.startswith("{")]
    began = [r for r in records if r.get("event") == "stall_began"]
    check_records(began, row, args.stalls)
    return summarize(row, began, windows, ours_seen, dumps, spy_seen)


def py_spy_dump(args, row, pid):
    cmd = [args.py_spy, "dump", "--pid", str(pid)]
    if row.locals:
        cmd.append("--locals")
    begin = time.monotonic_ns()
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True,
                              timeout=DUMP_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise BenchError("%s did not finish within %.0f s"
                         % (" ".join(cmd), DUMP_TIMEOUT))
    end = time.monotonic_ns()
    if proc.returncode != 0:
        raise BenchError("%s failed (exit status %d): %s"
                         % (" ".join(cmd), proc.returncode,
                            proc.stderr.strip() or "no message"))
    # Every thread DEPTH frames deep in dive(), and its locals if asked:
    # py-spy's dump is worth comparing only if it is as complete as ours.
    lines = proc.stdout.splitlines()
    dives = sum(1 for line in lines if line.lstrip().startswith("dive ("))
    want = (row.threads + 1) * DEPTH
    if dives < want:
        raise BenchError("%s showed %d frames of dive(), expected %d"
                         % (" ".join(cmd), dives, want))
    if row.locals and not any(line.strip().startswith("label: ")
                              for line in lines):
        raise BenchError("%s showed no locals" % " ".join(cmd))
    return begin, end, proc.stderr.strip()


# ---------------------------------------------------------------- figures

def check_records(began, row, stalls):
    label = row.label
    if len(began) < 2:
        raise BenchError("%s: the watcher reported %d of the %d stalls; at "
                         "least 2 are needed" % (label, len(began), stalls))
    for r in began:
        details = r["stall_details"]
        sid = details.get("stall_id")
        capture = details.get("capture")
        if capture is None:
            raise BenchError("%s: the record of stall %s has no capture "
                             "(rate_limited: %s)"
                             % (label, sid, details.get("rate_limited")))
        if capture.get("error"):
            raise BenchError("%s: the capture of stall %s failed: %s"
                             % (label, sid, capture["error"]))
        python = capture.get("python")
        if python is None:
            raise BenchError("%s: the capture of stall %s has no "
                             "capture.python: the Python stacks were not "
                             "read" % (label, sid))
        if python.get("error"):
            raise BenchError("%s: reading the Python stacks of stall %s "
                             "failed: %s" % (label, sid, python["error"]))
        if python.get("threads", 0) < row.threads + 1:
            raise BenchError("%s: the capture of stall %s found %s Python "
                             "threads, the target runs %d"
                             % (label, sid, python.get("threads"),
                                row.threads + 1))
        deepest = max([t["python"]["frames"] for t in capture["threads"]
                       if t.get("python")] or [0])
        if deepest < DEPTH:
            raise BenchError("%s: the deepest Python stack of stall %s has "
                             "%d frames, fewer than %d"
                             % (label, sid, deepest, DEPTH))
        for key in ("pause_us", "stop_us", "total_us"):
            if capture.get(key) is None:
                raise BenchError("%s: the capture of stall %s lacks %s"
                                 % (label, sid, key))
        frames = [f for trace in details["relevant_traces"]
                  for f in trace if f.get("native") is False
                  and f.get("name") == "dive"]
        if not frames:
            raise BenchError("%s: the stalled thread's trace of stall %s has "
                             "no frame of dive()" % (label, sid))
        names = {v["name"] for v in frames[-1].get("locals") or []}
        if row.locals and not set(LOCALS) <= names:
            raise BenchError("%s: the locals of stall %s's innermost dive() "
                             "frame are %s, expected %s"
                             % (label, sid, sorted(names), list(LOCALS)))
        if not row.locals and frames[-1].get("locals") is not None:
            raise BenchError("%s: stall %s's frames have locals, not asked "
                             "for" % (label, sid))


def summarize(row, began, windows, ours_seen, dumps, spy_seen):
    began = sorted(began, key=lambda r: r["stall_details"]["stall_id"])
    caps = [r["stall_details"]["capture"] for r in began]
    # Each record goes with the stall it reports (its monotonic_ns is the
    # moment the stall was seen, just before the capture).
    observed = []
    for r in began[1:]:
        at = r["monotonic_ns"]
        for i, (begin, end) in enumerate(windows):
            following = (windows[i + 1][0] if i + 1 < len(windows)
                         else end + IDLE_MS * 1000000)
            if begin <= at < following:
                observed.append((r["stall_details"]["capture"]["pause_us"],
                                 episodes_within(ours_seen, begin,
                                                 following)))
                break
    unseen = [us for us, (_, stops, blind) in observed
              if not stops and not blind]
    if unseen:
        raise BenchError("%s: the observer, running all along, saw no stop "
                         "during %d of the %d stalls (the first's pause_us: "
                         "%.0f)" % (row.label, len(unseen), len(observed),
                                    unseen[0]))
    seen = [o for _, o in observed if not o[2]]
    spy = [episodes_within(spy_seen, begin, end) for begin, end, _ in dumps]
    missed = [i for i, (_, stops, blind) in enumerate(spy)
              if not stops and not blind]
    if missed:
        begin, end, said = dumps[missed[0]]
        raise BenchError("%s: the observer, running all along, saw no stop "
                         "during %d of the %d py-spy dumps (the first: "
                         "%.1f ms, py-spy said: %s)"
                         % (row.label, len(missed), len(spy),
                            (end - begin) / 1e6, said or "nothing on stderr"))
    spy_seen_ok = [o for o in spy if not o[2]]
    if not spy_seen_ok:
        raise BenchError("%s: the observer was kept off the CPU as every "
                         "py-spy dump's stop began or ended: is the machine "
                         "busy? (load average %s)"
                         % (row.label, " ".join("%.2f" % x
                                                for x in os.getloadavg())))
    warm = caps[1:]
    return {
        "row": row,
        "records": len(began),
        "stalls": len(windows),
        "pause": [c["pause_us"] for c in warm],
        "stop": [c["stop_us"] for c in warm],
        "total": [c["total_us"] for c in warm],
        "reads": [c["python"]["reads"] for c in warm],
        "first": caps[0],
        "observed": [o[0] for o in seen],
        "observed_stops": [o[1] for o in seen],
        "difference": [o[0] - us for us, o in observed if not o[2]],
        "blind": (len(observed) - len(seen), len(observed),
                  len(spy) - len(spy_seen_ok), len(spy)),
        "spy_pause": [o[0] for o in spy_seen_ok],
        "spy_stops": [o[1] for o in spy_seen_ok],
        "spy_wall": [(end - begin) / 1e6 for begin, end, _ in dumps],
        "periods": (ours_seen["period_ns"], spy_seen["period_ns"],
                    ours_seen["sweep_ns"], spy_seen["sweep_ns"]),
        "middle_only": (ours_seen["middle_only"], spy_seen["middle_only"]),
    }




def report(results, dumps):
    print()
    print("Pause of the target, us (ours: warm captures, all but the first "
          "of each row;\npy-spy: %d dumps per row, as the observer saw them):"
          % dumps)
    head = ("%-24s | %7s %7s %7s %7s | %8s %8s | %7s"
            % ("threads, locals", "pause", "p90", "capture", "cold",
               "py-spy", "py-spy", "ours /"))
    print(head)
    print("%-24s | %7s %7s %7s %7s | %8s %8s | %7s"
          % ("", "median", "", "median", "pause", "pause", "wall ms",
             "py-spy"))
    print("-" * len(head))
    for s in results:
        pause = median(s["pause"])
        spy = median(s["spy_pause"])
        print("%-24s | %7s %7s %7s %7s | %8s %8s | %7s"
              % (s["row"].label, fmt(pause), fmt(percentile(s["pause"], 0.9)),
                 fmt(median(s["total"])), fmt(s["first"]["pause_us"]),
                 fmt(spy), fmt(median(s["spy_wall"])),
                 "%.3f" % (pause / spy) if spy else "-"))
    print()
    print("pause: capture.pause_us (first thread stopped .. last resumed); "
          "capture:\ncapture.total_us; cold: the first capture's pause; "
          "py-spy pause: the target's\nstopped time per dump, observed; "
          "py-spy wall: the whole `py-spy dump` process;\nours / py-spy: "
          "the pause medians' ratio.")

    print()
    print("Details, us: ours' bare stop, remote reads per capture, the cold "
          "capture;\nthe observer's view of both (cross-check of pause_us):")
    head = ("%-24s | %7s %6s %9s | %8s %8s %5s | %8s %5s"
            % ("threads, locals", "stop", "reads", "cold", "observed",
               "minus", "stops", "py-spy", "stops"))
    print(head)
    print("%-24s | %7s %6s %9s | %8s %8s %5s | %8s %5s"
          % ("", "median", "median", "capture", "median", "pause_us",
             "", "observed", ""))
    print("-" * len(head))
    for s in results:
        print("%-24s | %7s %6s %9s | %8s %8s %5s | %8s %5s"
              % (s["row"].label, fmt(median(s["stop"])),
                 fmt(median(s["reads"])), fmt(s["first"]["total_us"]),
                 fmt(median(s["observed"])), fmt(median(s["difference"])),
                 "/".join(str(n) for n in sorted(set(s["observed_stops"]))),
                 fmt(median(s["spy_pause"])),
                 "/".join(str(n) for n in sorted(set(s["spy_stops"])))))
    print()
    print("observed: the stopped time the observer saw per stall, median; "
          "minus pause_us:\nthe median of observed - pause_us per stall; "
          "stops: how many separate stops\nit saw per stall or dump "
          "(each value that occurred).")
    print()
    print("Observer's resolution, one round (the first and last threads, "
          "and one other),\nours' phase / py-spy's; every thread seen "
          "within; rounds that saw a thread\nstopped between the first and "
          "the last while neither was (0: the stops\nbegin and end at the "
          "two polled every round):")
    for s in results:
        ours_p, spy_p, ours_s, spy_s = s["periods"]
        print("  %-24s %5.1f / %5.1f us; %4.0f / %4.0f us; %d / %d"
              % ((s["row"].label, ours_p / 1e3, spy_p / 1e3, ours_s / 1e3,
                  spy_s / 1e3) + s["middle_only"]))
    print("Left out of the observed figures, the observer having been off "
          "the CPU as a stop\nbegan or ended for over %.0f us and a tenth "
          "of the stop (or during the\nwindow, if it saw none): stalls / "
          "dumps" % (GAP_NS / 1e3))
    for s in results:
        print("  %-24s %d of %d / %d of %d" % ((s["row"].label,) + s["blind"]))
    print("Stall records: %s" % ", ".join(
        "%s %d/%d" % (s["row"].label, s["records"], s["stalls"])
        for s in results))

    print()
    for s in results:
        if s["row"].threads == GOAL_THREADS and not s["row"].locals:
            m = median(s["pause"])
            print("Goal: pause <= %.0f us for %d threads without locals: %s "
                  "(median %s us, p90 %s us)"
                  % (GOAL_US, GOAL_THREADS,
                     "met" if m <= GOAL_US else "NOT met", fmt(m),
                     fmt(percentile(s["pause"], 0.9))))
    above = [s["row"].label for s in results
             if not median(s["pause"]) < median(s["spy_pause"])]
    print("Goal: below py-spy's pause on every row: %s"
          % ("met" if not above else "NOT met (" + "; ".join(above) + ")"))
    print()
    print("load average at the end: %s"
          % " ".join("%.2f" % x for x in os.getloadavg()))


def version(cmd):
    try:
        out = subprocess.run(cmd, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT,
                             universal_newlines=True, timeout=TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BenchError("%s cannot run: %s" % (cmd[0], e))
    if out.returncode != 0:
        raise BenchError("%s failed: %s" % (" ".join(cmd), out.stdout.strip()))
    return out.stdout.strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default=".",
                        help="this project's build directory (default: .)")
    parser.add_argument("--python", default=sys.executable,
                        help="the interpreter the package was built for "
                        "(default: this one)")
    parser.add_argument("--py-spy", dest="py_spy",
                        help="py-spy (default: the one on PATH)")
    parser.add_argument("--threads", default="1,16,64",
                        help="thread counts besides the main thread, "
                        "comma-separated (default 1,16,64)")
    parser.add_argument("--stalls", type=int, default=15,
                        help="stalls per row (default 15)")
    parser.add_argument("--dumps", type=int, default=10,
                        help="py-spy dumps per row (default 10)")
    parser.add_argument("--observe", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.observe:
        observe(args.observe)
        return 0
    thread_counts = [int(x) for x in args.threads.split(",") if x]
    if args.stalls < 2 or args.dumps < 1 or not thread_counts:
        parser.error("need at least 2 stalls, 1 dump and one thread count")
    args.py_spy = args.py_spy or shutil.which("py-spy")
    if not args.py_spy:
        raise BenchError("py-spy is not on PATH: pass --py-spy (tools/"
                         "python-venv.sh installs it in build/venv)")
    build = os.path.abspath(args.build)
    args.stage = os.path.join(build, "bindings", "python", "stage")
    watcher = os.path.join(build, "libperpetuo", "watcher", "perpetuo")
    for path, what in ((os.path.join(args.stage, "perpetuo"),
                        "the staged perpetuo package (make builds it)"),
                       (watcher, "the watcher (make builds it)")):
        if not os.path.exists(path):
            raise BenchError("%s is missing: %s" % (what, path))
    env = dict(os.environ)
    env.pop("PYTHONHOME", None)
    env["PYTHONPATH"] = args.stage
    env["LD_LIBRARY_PATH"] = os.path.join(build, "libperpetuo", ".libs") + (
        ":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    env["PERPETUO_WATCHER"] = watcher

    print("pystack_pause: per row %d stalls of %d ms (every thread %d "
          "Python frames deep; watcher poll %d ms, alert %d ms), then %d "
          "py-spy dumps" % (args.stalls, STALL_MS, DEPTH, POLL_MS, ALERT_MS,
                            args.dumps))
    print("machine: " + machine_description())
    print("target: %s; %s"
          % (version([args.python, "--version"]),
             version([args.py_spy, "--version"])))
    sys.stdout.flush()

    rows = [Row(n, with_locals) for n in thread_counts
            for with_locals in (False, True)]
    results = []
    with tempfile.TemporaryDirectory(prefix="pystack_pause.") as workdir:
        for row in rows:
            results.append(run_row(args, env, row, workdir))
            print("  ran %s" % row.label)
            sys.stdout.flush()
    report(results, args.dumps)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        print("pystack_pause: %s" % e, file=sys.stderr)
        sys.exit(1)
