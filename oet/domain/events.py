"""Events: what OET and scripts announce, as the SSE stream delivers them."""

import dataclasses
import enum
from typing import Any


class Topic(enum.StrEnum):
    """Topics OET itself publishes. Scripts may publish any other topic."""

    REQUEST_CREATE = "request.procedure.create"
    REQUEST_LIST = "request.procedure.list"
    REQUEST_START = "request.procedure.start"
    REQUEST_STOP = "request.procedure.stop"
    CREATED = "procedure.lifecycle.created"
    STARTED = "procedure.lifecycle.started"
    COMPLETE = "procedure.lifecycle.complete"
    FAILED = "procedure.lifecycle.failed"
    STOPPED = "procedure.lifecycle.stopped"
    RESYNC = "stream.resync"


@dataclasses.dataclass(frozen=True)
class Event:
    """One announcement.

    ``id`` orders events; ``source`` says who published it (``api`` for
    requests and lifecycle changes, ``script`` for what scripts publish);
    ``payload`` is JSON-able.
    """

    id: int
    topic: str
    time: float
    procedure_id: int | None
    source: str
    payload: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The ``data:`` of the SSE message (payload shared, not copied)."""
        return {
            "id": self.id,
            "topic": self.topic,
            "time": self.time,
            "procedure_id": self.procedure_id,
            "source": self.source,
            "payload": self.payload,
        }
