#!/usr/bin/env python3
"""How long a stack capture stops the target, and how long until the report.

Runs bench/capture_target (N threads, each 40 calls deep; the main thread
stalls at the bottom of its stack STALLS times) for N = 1, 16 and 64, with
the relevant thread alone stopped and with --all-threads, and reads from the
watcher's JSON records, for each stall's first record:

  pause_us         first thread interrupted .. last one resumed: what the
                   target loses
  stop_us          first interrupted .. all stopped: the bare stop, before
                   any copying; pause_us - stop_us is the copying and the
                   resuming
  total_us         from deciding to capture to the stacks unwound and named:
                   the capture's share of the time to the report
  threads_stopped

The first capture of a run is cold (libunwind's and libdw's caches are empty,
the modules' debug information not read yet), so it is shown apart from the
others. As the same-run baseline, every configuration runs again with native
stacks off (the watch option native_stacks = 0): no record may carry a
capture, so the pause is 0. In both runs the stalling thread itself measures
the longest gap between its clock reads during each stall (about 1 us apart
otherwise): with stacks on it includes the watcher's stop, with stacks off it
is the machine's own noise.

Usage: capture_pause.py --watcher PATH --target PATH [--stalls N]
       [--threads 1,16,64]
Exits non-zero, saying why, if a record of a run with stacks on lacks its
capture, or one with stacks off has one.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

from benchlib import fmt, machine_description, median, percentile

STALL_MS = 80
IDLE_MS = 20
DEPTH = 40
GOAL_US = 1000.0  # relevant thread only, 16 threads


class BenchError(Exception):
    pass




def idle_ms(threads, all_threads):
    # The watcher polls nothing while it unwinds every thread (about 1.5 ms
    # per thread of 40 frames here); the idle time lets it come back before
    # the next stall has run long enough to be missed.
    return IDLE_MS + (2 * threads if all_threads else 0)


def run_target(args, threads, all_threads, stacks, workdir):
    output = os.path.join(
        workdir,
        "t%d-%s-%s.json"
        % (threads, "all" if all_threads else "rel", "on" if stacks else "off"),
    )
    idle = idle_ms(threads, all_threads)
    cmd = [
        args.target,
        "--output", output,
        "--watcher", args.watcher,
        "--threads", str(threads),
        "--stalls", str(args.stalls),
        "--stall-ms", str(STALL_MS),
        "--idle-ms", str(idle),
    ]
    if all_threads:
        cmd.append("--all-threads")
    if not stacks:
        cmd.append("--no-stacks")
    timeout = 30 + args.stalls * (STALL_MS + idle) / 1000 * 3
    try:
        proc = subprocess.run(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            universal_newlines=True, timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise BenchError("%s did not finish within %.0f s"
                         % (" ".join(cmd), timeout))
    if proc.returncode != 0 or "done" not in proc.stdout.split("\n"):
        raise BenchError("%s failed (exit status %d): %s"
                         % (" ".join(cmd), proc.returncode,
                            proc.stderr.strip() or "no message"))
    gaps = []
    for line in proc.stdout.splitlines():
        fields = line.split()
        if len(fields) == 6 and fields[0] == "stall":
            gaps.append(float(fields[3]))
    records = []
    with open(output) as f:
        for line in f:
            record = json.loads(line)
            if record.get("event") == "stall_began":
                records.append(record)
    return records, gaps


def check_records(records, stacks, label, stalls):
    if not records:
        raise BenchError("%s: the watcher reported none of the %d stalls"
                         % (label, stalls))
    for r in records:
        details = r["stall_details"]
        capture = details.get("capture")
        sid = details.get("stall_id")
        if not stacks:
            if capture is not None and capture.get("pause_us", 0) != 0:
                raise BenchError(
                    "%s: stall %s has a capture (pause %.1f us) although "
                    "native stacks are off" % (label, sid, capture["pause_us"]))
            continue
        if capture is None:
            raise BenchError("%s: the record of stall %s has no capture "
                             "(rate_limited: %s)"
                             % (label, sid, details.get("rate_limited")))
        if capture.get("error"):
            raise BenchError("%s: the capture of stall %s failed: %s"
                             % (label, sid, capture["error"]))
        for key in ("pause_us", "stop_us", "total_us", "threads_stopped"):
            if capture.get(key) is None:
                raise BenchError("%s: the capture of stall %s lacks %s"
                                 % (label, sid, key))


def relevant_frames(record):
    traces = record["stall_details"]["relevant_traces"]
    return len(traces[0]) if traces else 0


def summarize(records):
    caps = [r["stall_details"]["capture"] for r in records]
    warm = caps[1:]

    def col(key, rows=warm):
        return [c[key] for c in rows]

    frames = [relevant_frames(r) for r in records]
    return {
        "count": len(caps),
        "stopped": sorted(set(col("threads_stopped", caps))),
        "first": caps[0],
        "warm": len(warm),
        "pause": col("pause_us"),
        "stop": col("stop_us"),
        "copy": [c["pause_us"] - c["stop_us"] for c in warm],
        "total": col("total_us"),
        "frames_median": median(frames),
        "frames_min": min(frames),
        "short": sum(1 for n in frames if n < DEPTH),
    }


def print_context():
    print("machine: " + machine_description())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--watcher", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--stalls", type=int, default=40,
                        help="stalls per run (default 40)")
    parser.add_argument("--threads", default="1,16,64",
                        help="thread counts, comma-separated (default 1,16,64)")
    args = parser.parse_args()
    thread_counts = [int(x) for x in args.threads.split(",") if x]
    if args.stalls < 2 or not thread_counts:
        parser.error("need at least 2 stalls and one thread count")

    print("capture_pause: %d stalls of %d ms per run, the stalling thread "
          "%d calls deep, watcher poll 10 ms, alert 50 ms"
          % (args.stalls, STALL_MS, DEPTH))
    print_context()
    sys.stdout.flush()

    results = []
    with tempfile.TemporaryDirectory(prefix="capture_pause.") as workdir:
        for threads in thread_counts:
            for all_threads in (False, True):
                label = "%s, %d thread%s" % (
                    "all threads" if all_threads else "relevant only", threads,
                    "" if threads == 1 else "s")
                on, gaps_on = run_target(args, threads, all_threads, True,
                                         workdir)
                check_records(on, True, label, args.stalls)
                off, gaps_off = run_target(args, threads, all_threads, False,
                                           workdir)
                check_records(off, False, label + ", no stacks", args.stalls)
                results.append((label, threads, all_threads, summarize(on),
                                gaps_on, len(off), gaps_off))
                print("  ran %s" % label)
                sys.stdout.flush()

    print()
    print("Warm captures (all but the first of each run), in us:")
    head = ("%-26s %7s %8s | %6s %6s %6s | %6s %6s | %7s %7s | %6s %6s"
            % ("configuration", "stopped", "captures", "pause", "p90", "max",
               "stop", "copy", "report", "p90", "gap on", "off"))
    print(head)
    print("%-26s %7s %8s | %6s %6s %6s | %6s %6s | %7s %7s | %6s %6s"
          % ("", "", "", "median", "", "", "median", "median", "median", "",
             "median", "median"))
    print("-" * len(head))
    for label, threads, all_threads, s, gaps_on, _, gaps_off in results:
        print("%-26s %7s %5d/%-2d | %6s %6s %6s | %6s %6s | %7s %7s | %6s %6s"
              % (label, ",".join(str(x) for x in s["stopped"]), s["count"],
                 args.stalls, fmt(median(s["pause"])),
                 fmt(percentile(s["pause"], 0.9)) if s["pause"] else "-",
                 fmt(max(s["pause"])) if s["pause"] else "-",
                 fmt(median(s["stop"])), fmt(median(s["copy"])),
                 fmt(median(s["total"])),
                 fmt(percentile(s["total"], 0.9)) if s["total"] else "-",
                 fmt(median(gaps_on)), fmt(median(gaps_off))))
    print()
    print("pause: the target stopped; stop: of which waiting for the "
          "threads to stop;\ncopy: pause - stop (registers, stack copies, "
          "resuming); report: the capture's\ntotal_us, decision to stacks "
          "named; gap on / off: the stalling thread's longest\ngap between "
          "clock reads per stall, native stacks on / off (same run).")

    print()
    print("First capture of each run (cold caches), in us:")
    print("%-26s %8s %8s %9s | %s" % ("configuration", "pause", "stop",
                                      "report",
                                      "relevant thread's frames, all captures"))
    for label, threads, all_threads, s, _, _, _ in results:
        first = s["first"]
        short = (", %d of %d under %d" % (s["short"], s["count"], DEPTH)
                 if s["short"] else "")
        print("%-26s %8s %8s %9s | median %s, min %d%s"
              % (label, fmt(first["pause_us"]), fmt(first["stop_us"]),
                 fmt(first["total_us"]), fmt(s["frames_median"]),
                 s["frames_min"], short))

    print()
    print("Baseline, native stacks off (native_stacks = 0): pause 0 us in "
          "every run:")
    for label, _, _, _, _, off_count, gaps_off in results:
        print("  %-26s %2d stall records, none with a capture; longest gap "
              "per stall median %s us, max %s us"
              % (label, off_count, fmt(median(gaps_off)),
                 fmt(max(gaps_off)) if gaps_off else "-"))

    for label, threads, all_threads, s, _, _, _ in results:
        if threads == 16 and not all_threads and s["pause"]:
            m = median(s["pause"])
            print()
            print("Goal: pause <= %.0f us for 16 threads, relevant thread "
                  "only: %s (median %s us, p90 %s us)"
                  % (GOAL_US, "met" if m <= GOAL_US else "NOT met", fmt(m),
                     fmt(percentile(s["pause"], 0.9))))
    print()
    print("load average at the end: %s"
          % " ".join("%.2f" % x for x in os.getloadavg()))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        print("capture_pause: %s" % e, file=sys.stderr)
        sys.exit(1)
