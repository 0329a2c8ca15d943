"""Events: what OET and scripts announce, as the SSE stream delivers them.

An event's ``data:`` puts the published keyword arguments at the top level,
beside the fields OET adds (the user docs' shape: ``{"msg_src": ..., "pids":
null, "topic": ...}``), and keeps them all, exactly as published, under
``payload`` as well. A keyword that is one of OET's own field names
(:data:`RESERVED`) cannot be lifted without overwriting OET's value: it
stays under ``payload`` only.
"""

import dataclasses
import enum
from typing import Any


class Topic(enum.StrEnum):
    """Topics OET itself publishes. Scripts may publish any other topic."""

    REQUEST_CREATE = "request.procedure.create"
    REQUEST_LIST = "request.procedure.list"
    REQUEST_START = "request.procedure.start"
    REQUEST_STOP = "request.procedure.stop"
    REQUEST_DISCARD = "request.procedure.discard"
    CREATED = "procedure.lifecycle.created"
    STARTED = "procedure.lifecycle.started"
    COMPLETE = "procedure.lifecycle.complete"
    FAILED = "procedure.lifecycle.failed"
    STOPPED = "procedure.lifecycle.stopped"
    RESYNC = "stream.resync"


RESERVED = frozenset({"id", "topic", "time", "procedure_id", "source", "payload"})
"""Top-level names OET owns in every event; a script's keyword of that name stays in ``payload``."""

MSG_SRC = {"request": "FlaskWorker", "api": "SESWorker", "script": "ScriptWorker"}
"""``msg_src`` when the publisher gave none: who published, in the 2021 OET's names."""


def clashes(payload: dict[str, Any]) -> list[str]:
    """The keywords of ``payload`` that OET's own fields shadow at the top level."""
    return sorted(RESERVED.intersection(payload))


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
        """The ``data:`` of the SSE message: payload keywords lifted, OET's fields on top."""
        data = {key: value for key, value in self.payload.items() if key not in RESERVED}
        if "msg_src" not in data:
            kind = "request" if self.topic.startswith("request.") else self.source
            data["msg_src"] = MSG_SRC.get(kind, self.source)
        return {
            **data,
            "id": self.id,
            "topic": self.topic,
            "time": self.time,
            "procedure_id": self.procedure_id,
            "source": self.source,
            "payload": self.payload,
        }
