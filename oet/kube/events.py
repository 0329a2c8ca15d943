"""Script events as core/v1 Events on their Procedure: the runner writes them, the API reads them.

The format is a contract between the runner and the REST API's Kubernetes
backend (docs/kubernetes.md, "Script events"): the topic in ``reason`` for
people, the event itself as compact JSON in ``message``, labels to select one
procedure's events. Both sides use this module, so they cannot drift apart.
"""

import datetime
import json
from typing import Any, NamedTuple

from oet.kube.names import (
    API_VERSION,
    APP,
    KIND,
    LABEL_APP,
    LABEL_COMPONENT,
    LABEL_PROCEDURE,
    LABEL_PROCEDURE_ID,
    procedure_id,
)
from oet.kube.resource import ProcedureResource

MAX_EVENT_MESSAGE = 32768
"""Largest ``message`` (bytes of UTF-8) a script event is published with."""

HEAD_CHARS = 1024
"""How much of an over-large payload's JSON text is kept."""

MAX_REASON = 128
REPORTER = "oet-runner"
SCRIPT_EVENT = "script-event"
"""``app.kubernetes.io/component`` of script Events."""


class ScriptEvent(NamedTuple):
    """One script event as read back from its Event."""

    topic: str
    time: float
    seq: int
    payload: dict[str, Any]
    truncated: dict[str, Any] | None = None


def _jsonable(value: Any) -> Any:
    return repr(value)


def event_message(topic: str, payload: dict[str, Any], when: float, seq: int) -> tuple[str, bool]:
    """The Event ``message`` for one script event, and whether its payload had to be cut."""
    event = {"topic": topic, "time": when, "seq": seq, "payload": payload}
    text = json.dumps(event, separators=(",", ":"), default=_jsonable, ensure_ascii=False)
    if len(text.encode()) <= MAX_EVENT_MESSAGE:
        return text, False
    body = json.dumps(payload, separators=(",", ":"), default=_jsonable, ensure_ascii=False)
    cut = {
        "topic": topic[:HEAD_CHARS],
        "time": when,
        "seq": seq,
        "payload": {"head": body[:HEAD_CHARS]},
        "truncated": {"bytes": len(body.encode()), "limit": MAX_EVENT_MESSAGE},
    }
    return json.dumps(cut, separators=(",", ":"), ensure_ascii=False), True


def script_event(
    procedure: ProcedureResource,
    topic: str,
    payload: dict[str, Any],
    when: float,
    seq: int,
    pod: str,
) -> tuple[dict[str, Any], bool]:
    """The core/v1 Event for one script event of ``procedure``, and whether it was cut."""
    metadata = procedure["metadata"]
    name = metadata["name"]
    message, cut = event_message(topic, payload, when, seq)
    stamp = (
        datetime.datetime.fromtimestamp(when, datetime.UTC)
        .replace(microsecond=0)
        .isoformat()
        .replace("+00:00", "Z")
    )
    body = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "generateName": f"{name}.",
            "namespace": metadata["namespace"],
            "labels": {
                LABEL_APP: APP,
                LABEL_COMPONENT: SCRIPT_EVENT,
                LABEL_PROCEDURE: name,
                LABEL_PROCEDURE_ID: str(procedure_id(name)),
            },
        },
        "involvedObject": {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": name,
            "namespace": metadata["namespace"],
            "uid": metadata.get("uid", ""),
        },
        "type": "Normal",
        "reason": topic[:MAX_REASON] or "event",
        "message": message,
        "source": {"component": REPORTER, "host": pod},
        "reportingComponent": REPORTER,
        "reportingInstance": pod,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
    return body, cut


def read_script_event(event: dict[str, Any]) -> ScriptEvent | None:
    """The script event an Event carries; None for an Event that is not one."""
    labels = (event.get("metadata") or {}).get("labels") or {}
    if labels.get(LABEL_COMPONENT) != SCRIPT_EVENT:
        return None
    try:
        data = json.loads(event.get("message") or "")
        return ScriptEvent(
            topic=str(data["topic"]),
            time=float(data["time"]),
            seq=int(data["seq"]),
            payload=dict(data["payload"]),
            truncated=data.get("truncated"),
        )
    except (ValueError, KeyError, TypeError):
        return None
