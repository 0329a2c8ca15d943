"""Event IDs that mean the same on every API replica.

Lifecycle and script events come from the cluster (a Procedure's status
change, a runner's Event object), so their ID is the object's
``resourceVersion`` times :data:`ID_SCALE`: every replica that watches the
namespace sees the same resourceVersions, so a client can move from one
replica to another with ``Last-Event-ID``. (resourceVersions are opaque to
clients in principle; with etcd they are its global revision, an increasing
integer, which is what this relies on.)

Request events (``request.procedure.*``) happen on one replica only. They
take the IDs just after the newest cluster event this replica has seen
(``rv * ID_SCALE + 1``, ``+ 2`` ...), so they never collide with a cluster
event's ID and a client resuming on another replica from one of them gets
every cluster event after it. If more than ``ID_SCALE - 1`` of them come
between two cluster events, the rest share the last ID.
"""

import bisect
from typing import Any

from oet.api.events import EventBus, Subscription
from oet.domain import Event, Topic

ID_SCALE = 1_000_000
"""Cluster event ID = resourceVersion * ID_SCALE (IDs stay below 2^53 up to rv 9e9)."""


class ClusterEventBus(EventBus):
    """An event bus whose cluster events are numbered by resourceVersion."""

    def __init__(self, capacity: int = 2000) -> None:
        super().__init__(capacity, first_id=1)
        self._ceiling = ID_SCALE - 1
        self.exact_from = 0
        """Replays from any ID at or after this are complete; earlier ones get a resync."""

    def _next_event_id(self) -> int:
        """A request event of this replica: the next ID after the newest cluster event."""
        event_id = min(self._next_id, self._ceiling)
        self._next_id = event_id + 1 if event_id < self._ceiling else event_id
        return event_id

    def publish_cluster(
        self,
        resource_version: int,
        topic: str,
        payload: dict[str, Any],
        procedure_id: int | None,
        source: str,
        when: float,
    ) -> Event:
        """An event made from a cluster object whose resourceVersion is ``resource_version``."""
        event = Event(resource_version * ID_SCALE, topic, when, procedure_id, source, payload)
        self._advance(resource_version)
        self._emit(event)
        return event

    def _keep(self, event: Event) -> None:
        """Buffer ``event`` in ID order: Procedures and Events come through two watches."""
        if event.topic == Topic.REQUEST_LIST or not self._buffer or self._buffer[-1].id < event.id:
            super()._keep(event)
            return
        if len(self._buffer) == self._buffer.maxlen:
            self._buffer.popleft()  # a full deque refuses insert()
        ids = [e.id for e in self._buffer]
        self._buffer.insert(bisect.bisect(ids, event.id), event)

    def seed(self, events: list[Event], exact_from: int) -> None:
        """Start from what the cluster shows (at start-up or after a relist)."""
        for event in sorted(events, key=lambda e: e.id):
            self._advance(event.id // ID_SCALE)
            self._buffer.append(event)
        self.exact_from = max(self.exact_from, exact_from)

    def _advance(self, resource_version: int) -> None:
        first = resource_version * ID_SCALE + 1
        if first > self._next_id:
            self._next_id = first
            self._ceiling = first + ID_SCALE - 2

    def subscribe(self, last_event_id: int | None = None) -> Subscription:
        """Listen; replay after ``last_event_id`` when that is complete, else resync."""
        backlog: list[Event] = []
        if last_event_id is not None and last_event_id < self.last_id:
            oldest = self._oldest()
            if last_event_id >= max(self.exact_from, oldest - 1):
                kept = sorted([*self._buffer, *self._polls], key=lambda e: e.id)
                backlog = [e for e in kept if e.id > last_event_id]
            else:
                backlog = [self._resync(last_event_id, max(self.exact_from, oldest))]
        subscription = Subscription(backlog, self.capacity)
        self._subscriptions.add(subscription)
        return subscription


__all__ = ["ID_SCALE", "ClusterEventBus", "Topic"]
