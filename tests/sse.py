"""A small Server-Sent Events client for tests: follow OET's event stream.

httpx gives the bytes; this module splits them into SSE messages exactly as
the SSE specification says (``field: value`` lines, a blank line ends a
message, lines starting with ``:`` are comments) and hands them to the test
through a queue, so that every wait has a deadline and none is a bare sleep.
"""

import contextlib
import dataclasses
import json
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpx


@dataclasses.dataclass(frozen=True)
class Message:
    """One SSE message as a browser's EventSource would see it."""

    id: str | None
    event: str | None
    data: str

    @property
    def body(self) -> dict[str, Any]:
        """The ``data:`` field parsed as JSON."""
        parsed: dict[str, Any] = json.loads(self.data)
        return parsed

    @property
    def topic(self) -> str:
        return self.event or "message"

    @property
    def procedure_id(self) -> int | None:
        pid: int | None = self.body.get("procedure_id")
        return pid


def parse_messages(lines: Iterable[str]) -> Iterator[Message]:
    """Turn SSE lines (without line endings) into messages."""
    fields: dict[str, list[str]] = {}
    for line in lines:
        if not line:
            if "data" in fields:
                ids, events = fields.get("id"), fields.get("event")
                yield Message(
                    ids[-1] if ids else None,
                    events[-1] if events else None,
                    "\n".join(fields["data"]),
                )
            fields = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        fields.setdefault(name, []).append(value.removeprefix(" "))


_CLOSED = object()


class EventStream:
    """Follows ``GET /stream`` in a background thread.

    ``received`` keeps every message in arrival order; ``next`` and ``until``
    take them one by one with a deadline.
    """

    def __init__(self, url: str, last_event_id: str | int | None = None) -> None:
        self.url = url
        self.headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            self.headers["Last-Event-ID"] = str(last_event_id)
        self.received: list[Message] = []
        self.status_code: int | None = None
        self.content_type: str | None = None
        self._queue: queue.Queue[object] = queue.Queue()
        self._connected = threading.Event()
        self._client = httpx.Client(timeout=httpx.Timeout(10, read=None))
        self._closing = False
        self._thread = threading.Thread(target=self._follow, name="sse-follow", daemon=True)

    def __enter__(self) -> "EventStream":
        self._thread.start()
        if not self._connected.wait(10):
            raise AssertionError(f"no answer from {self.url} within 10 s")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._closing = True
        with contextlib.suppress(Exception):
            self._client.close()

    def _follow(self) -> None:
        try:
            with self._client.stream("GET", self.url, headers=self.headers) as response:
                self.status_code = response.status_code
                self.content_type = response.headers.get("content-type")
                self._connected.set()
                for message in parse_messages(response.iter_lines()):
                    self._queue.put(message)
        except Exception as exc:  # the test sees it on its next read
            if not self._closing:
                self._queue.put(exc)
        finally:
            self._connected.set()
            self._queue.put(_CLOSED)

    def next(self, timeout: float = 10.0) -> Message:
        """The next message; fail if none arrives within ``timeout`` s."""
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no SSE message within {timeout} s") from None
        if item is _CLOSED:
            self._queue.put(_CLOSED)
            raise AssertionError("the event stream ended")
        if isinstance(item, Exception):
            raise AssertionError(f"the event stream failed: {item!r}") from item
        assert isinstance(item, Message)
        self.received.append(item)
        return item

    def until(
        self, predicate: Callable[[Message], bool], timeout: float = 10.0, what: str = ""
    ) -> list[Message]:
        """Messages up to and including the first that matches; fail after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        taken: list[Message] = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = [m.topic for m in taken]
                raise AssertionError(f"timed out waiting for {what or predicate}; saw {seen}")
            try:
                message = self.next(remaining)
            except AssertionError as exc:
                if "no SSE message" in str(exc):
                    seen = [m.topic for m in taken]
                    raise AssertionError(
                        f"timed out waiting for {what or predicate}; saw {seen}"
                    ) from None
                raise
            taken.append(message)
            if predicate(message):
                return taken

    def until_topic(
        self, topic: str, procedure_id: int | None = None, timeout: float = 10.0
    ) -> list[Message]:
        """Messages up to the first on ``topic`` (for ``procedure_id``, if given)."""
        return self.until(
            lambda m: m.topic == topic and (procedure_id is None or m.procedure_id == procedure_id),
            timeout,
            f"{topic} for procedure {procedure_id}",
        )
