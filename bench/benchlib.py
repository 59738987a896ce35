"""What the benchmark scripts share."""

import os
import platform


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
