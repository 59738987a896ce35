"""What the measured processes bench/asyncio_workload.py and
bench/trio_workload.py share: their lines to the driver, and the echo
load's options and measured window. The standard library only."""

import json
import sys
import time


def say(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def add_load_role(roles):
    load = roles.add_parser("load")
    load.add_argument("--port", type=int, required=True)
    load.add_argument("--clients", type=int, default=50)
    load.add_argument("--seconds", type=float, default=0.6)
    load.add_argument("--warmup", type=float, default=0.2)
    load.add_argument("--size", type=int, default=64)


def load_state():
    """The load's round trips: "all", and "count" those while "counting";
    its clients stop once "done"."""
    return {"counting": False, "count": 0, "all": 0, "done": False}


async def load_window(sleep, state, args):
    """Counts the round trips for args.seconds after args.warmup (`sleep`:
    the event loop's), between the "start" and "stop" lines the driver
    waits for, then stops the clients; the ns counted."""
    await sleep(args.warmup)
    say("start")
    start = time.perf_counter_ns()
    state["counting"] = True
    await sleep(args.seconds)
    state["counting"] = False
    elapsed = time.perf_counter_ns() - start
    say("stop")
    state["done"] = True
    return elapsed
