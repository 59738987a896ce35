"""One measured run for bench/gil_patch_cost.py, under the patched CPython.

Usage: gil_workload.py BODY ITERATIONS THREADS SWITCH_INTERVAL {set,unset}

THREADS threads each run BODY ITERATIONS times, with
sys.setswitchinterval(SWITCH_INTERVAL) (0: the default, 5 ms):

  loop    a round of a pure-Python loop. Alone, a thread never drops the
          GIL, since nobody asks for it; with others and a short switch
          interval, it is asked to hand it over almost at every check.
  read    os.read() of one byte from /dev/null: each call drops the GIL
          around the system call and takes it back, the most GIL traffic
          per second a thread can make.
  sleep0  time.sleep(0): drops the GIL and takes it back, and lets another
          thread have it.

The work runs in new threads while the main thread waits in join() (GIL
released, not asking for it), so that `callgrind --separate-threads=yes`
counts the work apart from the interpreter's start and end.

"set": before anything else, the run sets a counter of its own with
sys._set_stall_counter(), starting at 1 since this thread holds the GIL:
the interpreter adds one when a thread takes the GIL and one when it drops
it, so (value - 1) / 2 is the number of times the GIL was dropped and taken
again. "unset": the counter is never set, as on a stock interpreter (but
for the patch's test of a NULL pointer at each take and drop).

Prints one JSON line: the seconds the work took (perf_counter, from the
first thread's start to the last one's end), the counter (null if unset),
and a checksum of what the bodies returned.
"""

import ctypes
import json
import os
import sys
import threading
import time

BODIES = ("loop", "read", "sleep0")


def loop(n):
    acc = 0
    cells = [0] * 64
    for i in range(n):
        acc = (acc * 31 + i) % 1000003
        cells[i & 63] = acc
        acc ^= len(cells)
    return acc


def reads(n):
    fd = os.open(os.devnull, os.O_RDONLY)
    read = os.read
    for _ in range(n):
        read(fd, 1)
    os.close(fd)
    return n


def sleeps(n):
    sleep = time.sleep
    for _ in range(n):
        sleep(0)
    return n


def main():
    args = sys.argv[1:]
    if len(args) != 5 or args[0] not in BODIES or \
            args[4] not in ("set", "unset"):
        sys.exit(__doc__.split("\n\n")[1])
    body = {"loop": loop, "read": reads, "sleep0": sleeps}[args[0]]
    iterations, threads = int(args[1]), int(args[2])
    switch_interval, config = float(args[3]), args[4]

    counter = None
    if config == "set":
        if not hasattr(sys, "_set_stall_counter"):
            sys.exit("gil_workload: this interpreter has no "
                     "sys._set_stall_counter: it is not the patched CPython")
        counter = (ctypes.c_uint64 * 1)()
        counter[0] = 1
        sys._set_stall_counter(ctypes.addressof(counter))
    if switch_interval > 0:
        sys.setswitchinterval(switch_interval)

    results = [None] * threads

    def run(k):
        results[k] = body(iterations)

    workers = [threading.Thread(target=run, args=(k,))
               for k in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    seconds = time.perf_counter() - start

    value = None
    if counter is not None:
        value = counter[0]
        # The array is freed at exit, while the interpreter still takes and
        # drops the GIL.
        sys._set_stall_counter(0)
    print(json.dumps({"seconds": seconds, "counter": value,
                      "checksum": sum(results)}), flush=True)


if __name__ == "__main__":
    main()
