"""Many SSE listeners at once: when does the last of them see a procedure end?

Opens ``listeners`` streams, starts a no-op procedure and measures, for each
listener, the time from sending the start request to receiving the
procedure's ``complete`` event. The client is one process, so on a busy
machine part of what is measured is the client itself.
"""

import asyncio
import time

from wire import BenchError, Connection, EventStream


async def fanout(
    api: Connection, uri: str, listeners: int, rounds: int, timeout: float
) -> list[float]:
    """The slowest listener's delay (s) in each of ``rounds`` start -> complete rounds."""
    streams = [EventStream(api.endpoint) for _ in range(listeners)]
    await asyncio.gather(*(stream.open(timeout) for stream in streams))
    slowest = []
    try:
        for _ in range(rounds):
            body = {"script_uri": uri, "script_args": {"init": {"args": [], "kwargs": {}}}}
            status, answer = await api.json("POST", "/procedures", body)
            if status != 201:
                raise BenchError(f"POST /procedures answered {status}: {answer}")
            pid = int(str(answer["procedure"]["uri"]).rsplit("/", 1)[1])
            ends = [stream.expect_end(pid) for stream in streams]
            began = time.perf_counter()
            status, answer = await api.json("PUT", f"/procedures/{pid}", {"state": "RUNNING"})
            if status != 200:
                raise BenchError(f"PUT /procedures/{pid} answered {status}: {answer}")
            received = await asyncio.wait_for(asyncio.gather(*ends), timeout)
            slowest.append(max(event.mono for event in received) - began)
            await asyncio.sleep(0.3)  # let the spare runner be replaced, as between operators
    finally:
        await asyncio.gather(*(stream.close() for stream in streams))
    return slowest
