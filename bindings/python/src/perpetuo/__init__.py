"""perpetuo: find stalls while they happen, from a separate watcher process.

A drop-in replacement for the original perpetuo: the same names, arguments
and defaults, over libperpetuo.
"""

__all__ = [
    "StallTracker",
    "stall_gil",
    "start_watcher",
    "stop_watcher",
    "instrument_gil",
    "instrument_trio",
    "instrument_asyncio",
    "uninstrument_asyncio",
    "dwim",
]

from ._backend import api as _api

StallTracker = _api.StallTracker
stall_gil = _api.stall_gil
from ._setup import (start_watcher, stop_watcher, instrument_gil,
                     instrument_trio, instrument_asyncio,
                     uninstrument_asyncio, dwim)
