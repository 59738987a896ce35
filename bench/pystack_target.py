#!/usr/bin/env python3
"""The program bench/pystack_pause.py measures: Python threads deep in
Python code, and a main thread that stalls, watched by perpetuo.

THREADS threads each recurse DEPTH Python frames deep (every frame holding
an int, a str, a float and a list), then sleep in time.sleep() for as long
as the process lives. The main thread goes DEPTH frames deep the same way,
registers a tracker and starts the watcher (JSON records on stderr, no
traceback suppression: every stall's first record has its stacks), then
stalls STALLS times: go_active(), time.sleep(STALL_MS), go_idle(),
time.sleep(IDLE_MS). Afterwards it closes the tracker, stops the watcher
and waits, still DEPTH frames deep, until its stdin closes: the same
process, at rest, for another tool to look at.

On stdout, one line each:
  ready PID PATH            the threads are in place and the watcher watches
                            (PATH: the perpetuo package's __init__.py); the
                            program then waits for a line on stdin
  stall I BEGIN_NS END_NS   stall I ran from BEGIN_NS to END_NS
                            (time.monotonic_ns())
  idle                      no tracker, no watcher any more; waiting for
                            stdin to close
  done

Usage: pystack_target.py [--threads N] [--depth N] [--stalls N]
       [--stall-ms MS] [--idle-ms MS] [--locals] [--poll-ms MS]
       [--alert-ms MS]
Needs the perpetuo package importable, and PERPETUO_WATCHER naming the
watcher unless the package bundles one.
"""

import argparse
import os
import sys
import threading
import time

import perpetuo

# The watcher reads the target's debug information right after it starts
# watching and does not poll meanwhile: a stall that early could be missed.
SETTLE_S = 0.5


def dive(n, bottom):
    """Recurses until n frames of it are on the stack, then calls bottom();
    the locals are what a capture with print_locals shows."""
    level = n
    label = "level %d" % n
    ratio = n / 7.0
    items = [n, label, ratio]
    if n > 1:
        return dive(n - 1, bottom)
    return bottom(level, label, ratio, items)


def sleep_for_ever(*_):
    while True:
        time.sleep(3600)


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--depth", type=int, default=50)
    parser.add_argument("--stalls", type=int, default=15)
    parser.add_argument("--stall-ms", type=float, default=100.0)
    parser.add_argument("--idle-ms", type=float, default=50.0)
    parser.add_argument("--locals", action="store_true",
                        help="print_locals=True (default: False)")
    parser.add_argument("--poll-ms", type=float, default=10.0)
    parser.add_argument("--alert-ms", type=float, default=50.0)
    args = parser.parse_args()
    if args.depth < 1 or args.threads < 0 or args.stalls < 0:
        parser.error("need a depth of at least 1 and no negative counts")

    ready = threading.Semaphore(0)

    def worker():
        def bottom(*_):
            ready.release()
            sleep_for_ever()
        dive(args.depth, bottom)

    for i in range(args.threads):
        threading.Thread(target=worker, name="deep-%d" % i,
                         daemon=True).start()
    for _ in range(args.threads):
        ready.acquire()

    def stalls(*_):
        # Created active: made idle at once, before anyone watches.
        tracker = perpetuo.StallTracker("pystack", threading.get_ident())
        tracker.go_idle()
        perpetuo.start_watcher(poll_interval=args.poll_ms / 1000,
                               alert_interval=args.alert_ms / 1000,
                               traceback_suppress=0,
                               print_locals=args.locals, json_mode=True)
        time.sleep(SETTLE_S)
        out("ready %d %s" % (os.getpid(), perpetuo.__file__))
        if not sys.stdin.readline():
            return
        for i in range(1, args.stalls + 1):
            begin = time.monotonic_ns()
            tracker.go_active()
            time.sleep(args.stall_ms / 1000)
            tracker.go_idle()
            end = time.monotonic_ns()
            out("stall %d %d %d" % (i, begin, end))
            time.sleep(args.idle_ms / 1000)
        tracker.close()
        perpetuo.stop_watcher()
        out("idle")
        sys.stdin.read()

    dive(args.depth, stalls)
    out("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
