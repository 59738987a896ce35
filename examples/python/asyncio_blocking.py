"""An asyncio server whose handler blocks the event loop.

    python3 examples/python/asyncio_blocking.py            # asyncio's loop
    python3 examples/python/asyncio_blocking.py --uvloop   # uvloop's

perpetuo.dwim() instruments the running loop (and watches the GIL): on
asyncio's own loop at its selector, on uvloop by a heartbeat. While the
handler sleeps in time.sleep() no other connection is served, and the
watcher reports it while it happens, with the handler's frames and the
coroutine of the task that blocks.
"""

import asyncio
import sys
import time

import perpetuo


def look_up_slowly(key):
    time.sleep(0.5)  # a blocking call where an await was meant
    return key.upper()


async def handle(reader, writer):
    key = (await reader.readline()).decode().strip()
    writer.write(look_up_slowly(key).encode() + b"\n")
    await writer.drain()
    writer.close()


async def ask(port, key):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(key.encode() + b"\n")
    answer = (await reader.readline()).decode().strip()
    writer.close()
    return answer


async def main():
    print("perpetuo:", ", ".join(perpetuo.dwim(json_mode=False)), flush=True)
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print("answers:", await asyncio.gather(ask(port, "a"), ask(port, "b")))
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    if "--uvloop" in sys.argv[1:]:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(main())
