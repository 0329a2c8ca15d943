"""What each figure is compared with, measured in the same run on the same machine.

A latency in milliseconds says little across machines (or on one busy
machine across hours); its ratio to a floor measured beside it says more:

* create is compared with a cold ``python -c "import oet.runner"``: what
  starting a runner on demand costs before it has done anything at all;
* reads are compared with one HTTP round trip on loopback to the smallest
  server there is (a few lines of asyncio that answer every request with the
  same bytes), and with the CPU that server spends on each request.
"""

import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

from local_server import cpu_seconds
from wire import BenchError, Endpoint, read_response

_RESPONDER = r"""
import asyncio

ANSWER = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"

async def answer(reader, writer):
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        if not head:
            break
        writer.write(ANSWER)

async def main():
    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()  # until the benchmark kills it

asyncio.run(main())
"""


def cold_imports(source: Path, count: int) -> list[float]:
    """Seconds each of ``count`` cold ``python -c "import oet.runner"`` took."""
    times = []
    for _ in range(count):
        began = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", "import oet.runner"], cwd=source, check=True, timeout=60
        )
        times.append(time.perf_counter() - began)
    return times


async def loopback_round_trips(count: int) -> tuple[list[float], float]:
    """Seconds of ``count`` sequential keep-alive round trips to a minimal HTTP server.

    Also returns that server's CPU milliseconds per request.
    """
    responder = subprocess.Popen(
        [sys.executable, "-c", _RESPONDER],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert responder.stdout is not None
        port = int(responder.stdout.readline())
        endpoint = Endpoint.parse(f"http://127.0.0.1:{port}/api/v1.0")
        cpu_before = cpu_seconds(responder.pid)
        times = await _sequential_gets(endpoint, count, "the loopback responder")
        cpu_ms = (cpu_seconds(responder.pid) - cpu_before) / count * 1000
        return times, cpu_ms
    finally:
        responder.kill()
        responder.wait()
        if responder.stdout is not None:
            responder.stdout.close()


async def sequential_reads(endpoint: Endpoint, count: int) -> list[float]:
    """Seconds of ``count`` sequential keep-alive ``GET /procedures`` to the OET server."""
    return await _sequential_gets(endpoint, count, "GET /procedures")


async def _sequential_gets(endpoint: Endpoint, count: int, who: str) -> list[float]:
    """Seconds of ``count`` back-to-back ``GET /procedures`` on one keep-alive connection."""
    request = endpoint.request("GET", "/procedures")
    reader, writer = await asyncio.open_connection(endpoint.host, endpoint.port)
    times = []
    try:
        for _ in range(count):
            began = time.perf_counter()
            writer.write(request)
            status, _ = await asyncio.wait_for(read_response(reader), 10)
            times.append(time.perf_counter() - began)
            if status != 200:
                raise BenchError(f"{who} answered {status}")
    finally:
        writer.close()
    return times


def ratio(value: float, floor: float) -> float:
    """``value / floor``, NaN when either is missing."""
    if not floor or value != value or floor != floor:
        return float("nan")
    return value / floor


def median(values: list[float]) -> float:
    """The median, NaN when there are none."""
    return statistics.median(values) if values else float("nan")
