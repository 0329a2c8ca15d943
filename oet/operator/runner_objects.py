"""What the operator reads from a runner's Job and Pod.

Small accessors over the raw objects as the API server sends them, so that
:mod:`oet.operator.deaths` reads as a list of decisions.
"""

from typing import Any, TypedDict

from oet.kube.convert import from_time
from oet.kube.resource import ObjectMeta
from oet.operator.builders import RUNNER_CONTAINER


class KubeObject(TypedDict, total=False):
    """A raw Job or Pod as the API server sends it (the parts read here)."""

    metadata: ObjectMeta
    spec: dict[str, Any]
    status: dict[str, Any]


def true_condition(obj: KubeObject, kind: str) -> dict[str, Any] | None:
    """The condition of type ``kind`` if it is True, else None."""
    for condition in obj.get("status", {}).get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            return dict(condition)
    return None


def runner_state(pod: KubeObject) -> dict[str, Any]:
    """The runner container's ``state`` (``waiting``, ``running`` or ``terminated``)."""
    for status in pod.get("status", {}).get("containerStatuses") or []:
        if status.get("name") == RUNNER_CONTAINER:
            return dict(status.get("state") or {})
    return {}


def memory_limit(pod: KubeObject) -> str | None:
    """The runner container's memory limit, if it has one."""
    for container in pod.get("spec", {}).get("containers") or []:
        if container.get("name") == RUNNER_CONTAINER:
            limit = (container.get("resources") or {}).get("limits", {}).get("memory")
            return str(limit) if limit is not None else None
    return None


def waiting_reason(pod: KubeObject) -> tuple[str, str] | None:
    """(waiting reason, message) of a runner container that has not started."""
    waiting = runner_state(pod).get("waiting")
    if waiting and waiting.get("reason"):
        return str(waiting["reason"]), str(waiting.get("message") or "")
    scheduled = next(
        (
            c
            for c in pod.get("status", {}).get("conditions") or []
            if c.get("type") == "PodScheduled" and c.get("status") == "False"
        ),
        None,
    )
    if scheduled is not None:
        return str(scheduled.get("reason") or "Unschedulable"), str(scheduled.get("message") or "")
    return None


def age(obj: KubeObject, now: float) -> float:
    """Seconds since ``obj`` was created."""
    created = obj.get("metadata", {}).get("creationTimestamp")
    return now - from_time(created) if created else 0.0


def runner_image(pod: KubeObject) -> str:
    """The runner container's image."""
    for container in pod.get("spec", {}).get("containers") or []:
        if container.get("name") == RUNNER_CONTAINER:
            return str(container.get("image", "?"))
    return "?"
