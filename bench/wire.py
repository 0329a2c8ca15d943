"""Raw HTTP/1.1 and Server-Sent Events over asyncio streams, for the benchmark.

A client this thin costs the server's two cores little: one request is a
pre-encoded ``bytes`` write and a Content-Length read, so the figures measure
the server, not the client. Only loopback addresses are accepted.
"""

import asyncio
import collections
import contextlib
import dataclasses
import ipaddress
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

END_TOPICS = {"procedure.lifecycle.complete", "procedure.lifecycle.failed"}
TICK = "bench.tick"


class BenchError(Exception):
    """The server did not behave as the benchmark needs (bad answer, no event in time)."""


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """Where the API is: a loopback host, a port and the path prefix (``/api/v1.0``)."""

    host: str
    port: int
    prefix: str

    @classmethod
    def parse(cls, url: str) -> "Endpoint":
        """Split ``url``; refuse anything but plain HTTP on a loopback address."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.scheme != "http" or not host:
            raise ValueError(f"{url}: only http:// URLs are supported")
        if host == "localhost":
            host = "127.0.0.1"
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError(f"{url}: the benchmark only talks to loopback addresses")
        return cls(host, parts.port or 80, parts.path.rstrip("/"))

    def request(self, method: str, path: str, body: Any = None) -> bytes:
        """One encoded keep-alive request for ``prefix + path``."""
        data = b"" if body is None else json.dumps(body).encode()
        head = (
            f"{method} {self.prefix}{path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Length: {len(data)}\r\n"
        )
        if body is not None:
            head += "Content-Type: application/json\r\n"
        return (head + "\r\n").encode() + data


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    """The status code and (lower-cased) headers of the next response."""
    lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers


async def read_chunk(reader: asyncio.StreamReader) -> bytes:
    """One chunk of a ``Transfer-Encoding: chunked`` body (empty at its end)."""
    size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
    data = await reader.readexactly(size + 2)
    return data[:-2]


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Status and body of the next response on a keep-alive connection."""
    status, headers = await read_head(reader)
    if "content-length" in headers:
        return status, await reader.readexactly(int(headers["content-length"]))
    if headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while chunk := await read_chunk(reader):
            parts.append(chunk)
        await reader.readuntil(b"\r\n")  # no trailers are expected
        return status, b"".join(parts)
    return status, await reader.read()


class Connection:
    """One keep-alive connection for JSON requests, each bounded by ``timeout`` s."""

    def __init__(self, endpoint: Endpoint, timeout: float) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def json(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Send one request; return the status and the decoded JSON body."""
        if self._streams is None:
            self._streams = await asyncio.wait_for(
                asyncio.open_connection(self.endpoint.host, self.endpoint.port), self.timeout
            )
        reader, writer = self._streams
        try:
            writer.write(self.endpoint.request(method, path, body))
            status, data = await asyncio.wait_for(read_response(reader), self.timeout)
        except BaseException:
            self.close()
            raise
        return status, json.loads(data) if data else None

    def close(self) -> None:
        """Drop the connection; the next request opens a new one."""
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


# -- the SSE stream --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Received:
    """One SSE event, stamped when its bytes arrived."""

    topic: str
    data: dict[str, Any]
    wall: float
    """``time.time()`` on arrival, to compare with a script's clock."""
    mono: float
    """``time.perf_counter()`` on arrival, to compare with the client's own sends."""


class EventStream:
    """Follows ``/stream``: resolves end-of-procedure waiters and collects tick latencies."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.tick_latencies: dict[int, list[float]] = {}
        self.topics: collections.Counter[str] = collections.Counter()
        self.disordered = 0
        """Events whose ID was not above the one before: the design promises increasing IDs."""
        self.ended = False
        self._last_id = -1
        self._ends: dict[int, asyncio.Future[Received]] = {}
        self._task: asyncio.Task[None] | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self, timeout: float) -> None:
        """Connect and wait for the stream's response head."""
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.endpoint.host, self.endpoint.port), timeout
        )
        self._writer = writer
        writer.write(self.endpoint.request("GET", "/stream"))
        status, headers = await asyncio.wait_for(read_head(reader), timeout)
        if status != 200 or headers.get("transfer-encoding", "").lower() != "chunked":
            raise BenchError(f"GET /stream answered {status} {headers}")
        self._task = asyncio.create_task(self._follow(reader))

    def expect_end(self, pid: int) -> "asyncio.Future[Received]":
        """A future for procedure ``pid``'s complete (or failed) event. Call before starting."""
        future: asyncio.Future[Received] = asyncio.get_running_loop().create_future()
        if self.ended:
            future.set_exception(BenchError("the SSE stream has ended"))
        else:
            self._ends[pid] = future
        return future

    async def close(self) -> None:
        """Disconnect."""
        if self._writer is not None:
            self._writer.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await self._task

    async def _follow(self, reader: asyncio.StreamReader) -> None:
        pending = ""
        try:
            while chunk := await read_chunk(reader):
                wall, mono = time.time(), time.perf_counter()
                pending = (pending + chunk.decode()).replace("\r\n", "\n")
                *blocks, pending = pending.split("\n\n")
                for block in blocks:
                    self._dispatch(block, wall, mono)
        finally:
            self.ended = True
            for future in self._ends.values():
                if not future.done():
                    future.set_exception(BenchError("the SSE stream ended"))

    def _dispatch(self, block: str, wall: float, mono: float) -> None:
        topic, data = "message", []
        for line in block.split("\n"):
            field, _, value = line.partition(":")
            if field == "event":
                topic = value.strip()
            elif field == "data":
                data.append(value.removeprefix(" "))
        if not data:
            return  # a ping comment
        self.topics[topic] += 1
        event = json.loads("\n".join(data))
        if event["id"] <= self._last_id:
            self.disordered += 1
        self._last_id = max(self._last_id, event["id"])
        pid = event.get("procedure_id")
        if topic == TICK:
            latency = wall - float(event["payload"]["sent"])
            self.tick_latencies.setdefault(pid, []).append(latency)
        elif topic in END_TOPICS and (future := self._ends.pop(pid, None)) is not None:
            future.set_result(Received(topic, event, wall, mono))


async def wait_ready(endpoint: Endpoint, timeout: float, exited: Callable[[], bool]) -> None:
    """Poll GET /procedures until it answers 200; give up early once ``exited()``."""
    deadline = time.monotonic() + timeout
    while True:
        api = Connection(endpoint, 2)
        try:
            if (await api.json("GET", "/procedures"))[0] == 200:
                return
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            pass
        finally:
            api.close()
        if exited():
            raise BenchError("the server exited before it answered")
        if time.monotonic() > deadline:
            raise BenchError(f"the server did not answer within {timeout:g} s")
        await asyncio.sleep(0.05)
