"""Script events as Kubernetes Events: the runner posts them, the REST API reads them.

One Event (``core/v1``) per script event, on the procedure's resource
(``involvedObject``), ``reason: ScriptEvent``, ``type: Normal``. What the
script published is in the annotation ``oet.skao.int/script-event`` as JSON
``{"topic": ..., "time": <UNIX seconds>, "payload": {...}}``; ``message``
repeats the topic for ``kubectl describe``. Pure: no client calls here.
"""

import datetime
import json
import uuid
from typing import Any

from oet.domain import ProcedureNotFound
from oet.kube.names import API_VERSION, GROUP, KIND, procedure_id, procedure_name

SCRIPT_EVENT_REASON = "ScriptEvent"
SCRIPT_EVENT_ANNOTATION = f"{GROUP}/script-event"


def script_event_body(
    pid: int,
    uid: str,
    namespace: str,
    topic: str,
    payload: dict[str, Any],
    when: float,
    component: str = "oet-runner",
) -> dict[str, Any]:
    """The Event object announcing one script event of procedure ``pid`` (resource ``uid``)."""
    name = procedure_name(pid)
    stamp = _micro_time(when)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{name}.{uuid.uuid4().hex[:16]}",
            "namespace": namespace,
            "annotations": {
                SCRIPT_EVENT_ANNOTATION: json.dumps(
                    {"topic": topic, "time": when, "payload": payload}, default=repr
                )
            },
        },
        "involvedObject": {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": name,
            "namespace": namespace,
            "uid": uid,
        },
        "reason": SCRIPT_EVENT_REASON,
        "type": "Normal",
        "message": topic[:1024],
        "eventTime": stamp,
        "action": "Publish",
        "reportingComponent": component,
        "reportingInstance": component,
        "source": {"component": component},
    }


def read_script_event(event: dict[str, Any]) -> tuple[int, str, float, dict[str, Any]] | None:
    """(procedure ID, topic, time, payload) of a script Event; None for any other Event."""
    if event.get("reason") != SCRIPT_EVENT_REASON:
        return None
    involved = event.get("involvedObject") or {}
    annotations = (event.get("metadata") or {}).get("annotations") or {}
    try:
        pid = procedure_id(str(involved.get("name", "")))
        body = json.loads(annotations[SCRIPT_EVENT_ANNOTATION])
        topic, when, payload = body["topic"], float(body["time"]), body["payload"]
    except (ProcedureNotFound, LookupError, ValueError, TypeError):
        return None
    if involved.get("kind") != KIND or not isinstance(topic, str) or not isinstance(payload, dict):
        return None
    return pid, topic, when, payload


def _micro_time(when: float) -> str:
    moment = datetime.datetime.fromtimestamp(when, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
