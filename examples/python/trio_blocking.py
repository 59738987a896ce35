"""A Trio program with a task that blocks the run loop with time.sleep().

    python3 examples/python/trio_blocking.py

perpetuo.dwim() instruments this trio.run and starts the watcher; the
watcher reports the stall while it happens, with the stalled thread's state
("blocked in clock_nanosleep") and its stack.
"""

import time

import trio

import perpetuo


async def ticker():
    for i in range(10):
        print(f"tick {i}", flush=True)
        await trio.sleep(0.1)


async def careless():
    await trio.sleep(0.25)
    print("careless: sleeping 0.5 s without yielding", flush=True)
    time.sleep(0.5)  # should be: await trio.sleep(0.5)


async def main():
    print("perpetuo:", ", ".join(perpetuo.dwim(json_mode=False)), flush=True)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker)
        nursery.start_soon(careless)


if __name__ == "__main__":
    trio.run(main)
