"""What the benchmark scripts share."""

import math
import os
import platform
import statistics
import sys
import time


class BenchError(Exception):
    """A run that cannot go on: one sentence for the user."""


def exit_on_error(main, name):
    """Exits with main()'s status; on a BenchError, with 1 and its sentence."""
    try:
        sys.exit(main())
    except BenchError as e:
        print("%s: %s" % (name, e), file=sys.stderr)
        sys.exit(1)


def load_average():
    return " ".join("%.2f" % x for x in os.getloadavg())


def machine_description():
    """CPU count and model, kernel, load average: the context of figures."""
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "%d CPUs (%s), kernel %s %s, load average %s" % (
        os.cpu_count() or 0, model, platform.system(), platform.release(),
        load_average())


def print_end(began):
    """The last line of a run: the load it leaves, how long it took since
    `began` (time.monotonic())."""
    print("machine at the end: load average %s; the run took %.0f s"
          % (load_average(), time.monotonic() - began))


class Build:
    """This project's build directory: the staged Python package, the
    library and the watcher the measured processes run."""

    def __init__(self, build):
        build = os.path.abspath(build)
        self.stage = os.path.join(build, "bindings", "python", "stage")
        self.libs = os.path.join(build, "libperpetuo", ".libs")
        self.watcher = os.path.join(build, "libperpetuo", "watcher",
                                    "perpetuo")

    def check(self, needed=()):
        """BenchError for the first missing one of the build's parts and of
        `needed`, (path, what) pairs."""
        for path, what in [
                (os.path.join(self.stage, "perpetuo"), "the staged perpetuo "
                 "package (make builds it)"),
                (self.watcher, "the watcher (make builds it)")] + list(needed):
            if not os.path.exists(path):
                raise BenchError("%s is missing: %s" % (what, path))

    def use(self, env, pythonpath=None):
        """Makes `env` run this build's package (from `pythonpath`, by
        default the stage alone), library and watcher."""
        env["PYTHONPATH"] = pythonpath or self.stage
        env["LD_LIBRARY_PATH"] = self.libs + (
            ":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH")
            else "")
        env["PERPETUO_WATCHER"] = self.watcher
        return env


def clean_env(drop=()):
    """This environment less what would choose another perpetuo or Python
    installation, and less `drop`."""
    env = dict(os.environ)
    for name in ("PYTHONPATH", "PYTHONHOME", "PERPETUO_WATCHER") + tuple(drop):
        env.pop(name, None)
    return env


def percentile(values, fraction):
    """Nearest rank: the smallest value with `fraction` of them at or below."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def median(values):
    """NaN when nothing was measured; None (not measured) is left out."""
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def fmt(value):
    """A figure for a table: "-" when nothing was measured (NaN)."""
    if value != value:
        return "-"
    return "%.0f" % value if abs(value) >= 100 else "%.1f" % value


def fixed(value, digits=0):
    """A figure with `digits` decimals: "-" when nothing was measured (None
    or NaN)."""
    if value is None or value != value:
        return "-"
    return "%.*f" % (digits, value)


def spread(values, digits=0):
    """"(min..max)" of what was measured, "" if nothing was."""
    values = [v for v in values if v is not None]
    if not values:
        return ""
    return "(%s..%s)" % (fixed(min(values), digits),
                         fixed(max(values), digits))


def progress(text):
    print(text, file=sys.stderr, flush=True)


def rotated(items, by):
    by %= len(items)
    return items[by:] + items[:by]


def interleaved(configs, rounds, what, unit="round"):
    """(round, configuration) for each round and configuration, the
    configurations' order rotated each round so that none always runs
    first; says on stderr which round starts."""
    for rnd in range(rounds):
        progress("%s, %s %d of %d" % (what, unit, rnd + 1, rounds))
        for config in rotated(configs, rnd):
            yield rnd, config
