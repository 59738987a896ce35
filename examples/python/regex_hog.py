"""A thread that holds the GIL in C code: a regular expression that backtracks.

    python3 examples/python/regex_hog.py

While the regular expression engine runs, no other thread runs Python: an
in-process watchdog (a thread calling sys._current_frames()) would wait for
the GIL like everyone else. The watcher reads the stacks from outside, while
the stall goes on: the worker's Python frames down to the re.match() call,
then the C frames of the engine below it, and the main thread waiting.
"""

import re
import threading

import perpetuo


def backtrack(text):
    # Nested quantifiers on a string that almost matches: exponential time.
    return re.match(r"(a+)+$", text)


def worker():
    # Active while the worker is busy: a stall is this taking over 0.2 s.
    with perpetuo.StallTracker("regex worker", threading.get_ident()):
        backtrack("a" * 26 + "b")


if __name__ == "__main__":
    perpetuo.start_watcher(alert_interval=0.2, json_mode=False)
    thread = threading.Thread(target=worker, name="worker")
    thread.start()
    thread.join()
