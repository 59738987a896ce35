"""What the benchmark scripts share."""

import math
import os
import platform
import statistics


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
        " ".join("%.2f" % x for x in os.getloadavg()))


def percentile(values, fraction):
    """Nearest rank: the smallest value with `fraction` of them at or below."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def median(values):
    return statistics.median(values) if values else float("nan")


def fmt(value):
    """A figure for a table: "-" when nothing was measured (NaN)."""
    if value != value:
        return "-"
    return "%.0f" % value if abs(value) >= 100 else "%.1f" % value
