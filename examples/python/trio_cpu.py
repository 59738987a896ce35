"""A Trio program with a task that burns CPU in pure Python.

    python3 examples/python/trio_cpu.py

The watcher reports the stall while the loop is busy computing: the stalled
thread is "on CPU", nearly all of the stall's time.
"""

import time

import trio

import perpetuo


def crunch(seconds):
    """Pure-Python arithmetic for about `seconds`, never yielding."""
    end = time.monotonic() + seconds
    rounds = 0
    while time.monotonic() < end:
        rounds += sum(i * i for i in range(1000)) % 7
    return rounds


async def ticker():
    for i in range(10):
        print(f"tick {i}", flush=True)
        await trio.sleep(0.1)


async def number_cruncher():
    await trio.sleep(0.25)
    print("cruncher: crunching numbers on the run loop for 0.5 s", flush=True)
    print("cruncher: got", crunch(0.5), flush=True)


async def main():
    print("perpetuo:", ", ".join(perpetuo.dwim(json_mode=False)), flush=True)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker)
        nursery.start_soon(number_cruncher)


if __name__ == "__main__":
    trio.run(main)
