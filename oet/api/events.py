"""The event bus behind the SSE stream.

Every event gets the next integer ID. IDs start from the server's start time
in microseconds, so they keep increasing across restarts and a client that
reconnects after one is told to resync instead of being handed unrelated
events. The newest ``capacity`` events are kept for clients that reconnect
with ``Last-Event-ID``.

``request.procedure.list`` events, published for every GET (a client that
polls makes many), are buffered apart and only the newest
``capacity // 10`` of them, so polling cannot push lifecycle and script events
out of the replay buffer.
"""

import asyncio
import collections
import heapq
import time
from collections.abc import Callable
from typing import Any

from oet.domain import Event, Topic


class Subscription:
    """One listener's queue. Closed (``lagged``) if the listener falls too far behind."""

    def __init__(self, backlog: list[Event], capacity: int) -> None:
        self.backlog = backlog
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize=capacity)
        self.lagged = False

    def offer(self, event: Event) -> None:
        if self.lagged:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.lagged = True  # the client reconnects with Last-Event-ID and catches up
            self.close()

    def close(self) -> None:
        """End the listener's stream after what it has already been given."""
        if self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(None)


class EventBus:
    """Numbers, buffers and fans out events. Used from the event loop thread only."""

    def __init__(self, capacity: int = 2000, first_id: int | None = None) -> None:
        self.capacity = capacity
        self._next_id = first_id if first_id is not None else time.time_ns() // 1000
        self._buffer: collections.deque[Event] = collections.deque(maxlen=capacity)
        self._polls: collections.deque[Event] = collections.deque(maxlen=max(1, capacity // 10))
        self._subscriptions: set[Subscription] = set()
        self._observers: list[Callable[[Event], None]] = []

    @property
    def listeners(self) -> int:
        """How many stream clients are subscribed now."""
        return len(self._subscriptions)

    def observe(self, observer: Callable[[Event], None]) -> None:
        """Also hand every published event to ``observer`` (metrics count them)."""
        self._observers.append(observer)

    @property
    def last_id(self) -> int:
        """The ID of the newest event (or the one before the first, if none yet)."""
        return self._next_id - 1

    def publish(
        self,
        topic: str,
        payload: dict[str, Any],
        procedure_id: int | None = None,
        source: str = "api",
        when: float | None = None,
    ) -> Event:
        """Number ``payload`` as the next event on ``topic`` and hand it to every listener."""
        event = Event(
            self._next_event_id(),
            topic,
            time.time() if when is None else when,
            procedure_id,
            source,
            payload,
        )
        self._emit(event)
        return event

    def _next_event_id(self) -> int:
        """Take the ID of the next published event (a subclass may number differently)."""
        event_id = self._next_id
        self._next_id += 1
        return event_id

    def _emit(self, event: Event) -> None:
        """Buffer ``event`` (already numbered) and hand it to every listener."""
        self._keep(event)
        for subscription in self._subscriptions:
            subscription.offer(event)
        for observer in self._observers:
            observer(event)

    def _keep(self, event: Event) -> None:
        """Buffer ``event`` for replay (a subclass may keep it elsewhere than at the end)."""
        (self._polls if event.topic == Topic.REQUEST_LIST else self._buffer).append(event)

    def subscribe(self, last_event_id: int | None = None) -> Subscription:
        """Start listening; with ``last_event_id``, first replay what came after it.

        When those events are no longer buffered (or the ID is from another
        server life), the backlog is a single ``stream.resync`` event instead.
        """
        backlog: list[Event] = []
        if last_event_id is not None and last_event_id != self.last_id:
            oldest = self._oldest()
            if oldest - 1 <= last_event_id < self.last_id:
                kept = heapq.merge(self._buffer, self._polls, key=lambda e: e.id)
                backlog = [e for e in kept if e.id > last_event_id]
            else:
                backlog = [self._resync(last_event_id, oldest)]
        subscription = Subscription(backlog, self.capacity)
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Stop delivering to ``subscription``."""
        self._subscriptions.discard(subscription)

    def _oldest(self) -> int:
        """The ID from which every lifecycle and script event is still buffered."""
        if self._buffer:
            return self._buffer[0].id
        return self._polls[0].id if self._polls else self._next_id

    def _resync(self, last_event_id: int, oldest: int) -> Event:
        return Event(
            self.last_id,
            Topic.RESYNC,
            time.time(),
            None,
            "api",
            {
                "reason": f"events after {last_event_id} are no longer available",
                "oldest_available": oldest,
            },
        )
