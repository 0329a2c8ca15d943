"""Status patches the runner and the operator send to a Procedure's ``/status``.

Each is a JSON merge patch built from the resource as last read: the state
change is checked against the domain's transition table (a final state is
never overwritten), the time of the new state is added to ``stateTimes``,
``observedGeneration`` follows the spec, and the ``Finished`` condition is
kept in step with the state (True once final, its reason the final reason).
With ``resource_version`` the patch only applies to that exact version, so
a runner's report that landed first is never overwritten.
"""

from typing import Any

from oet.domain import FINAL_STATES, ProcedureState, check_transition
from oet.kube.convert import (
    clip_end,
    clip_start,
    default_reason,
    from_custom_resource,
    rfc3339,
    to_time,
)
from oet.kube.resource import AbortOutcome, Condition, ProcedureResource, RunnerRef, read_status

FINISHED = "Finished"
"""Condition type: True once the procedure is in a final state (``kubectl wait`` on it)."""

RUNNER_TERMINATED = "RunnerTerminated"
"""Reason the runner gives when its Pod was told to terminate and it stopped the script.

The runner cannot tell why; the operator replaces it with the disruption its
Pod shows (``Evicted``, ``Preempted``, ``NodeLost``) when there is one.
"""


def camel(state: ProcedureState) -> str:
    """A state as a condition reason: ``RUNNING`` → ``Running``."""
    return state.value.capitalize()


def set_condition(conditions: list[Condition], new: Condition, now: float) -> list[dict[str, Any]]:
    """``conditions`` with ``new`` in place of the one of its type, as JSON.

    The transition time only moves when the condition's status changes, as
    the Kubernetes API conventions ask.
    """
    old = next((c for c in conditions if c.type == new.type), None)
    if old is not None and old.status == new.status:
        new = new.model_copy(update={"last_transition_time": old.last_transition_time})
    else:
        new = new.model_copy(update={"last_transition_time": to_time(now)})
    others = [c.to_json() for c in conditions if c.type != new.type]
    return [*others, new.to_json()]


def status_patch_for(
    procedure: ProcedureResource,
    now: float,
    state: ProcedureState | None = None,
    reason: str | None = None,
    message: str | None = None,
    abort: AbortOutcome | None = None,
    runner: RunnerRef | None = None,
    resource_version: str | None = None,
    stacktrace: str | None = None,
) -> dict[str, Any]:
    """A merge patch for ``procedure``'s status subresource.

    ``state`` (None: keep the current one) must be reachable from the
    current state, else StateConflict. ``reason`` is a CamelCase word and
    ``message`` a sentence; a final state without a reason gets the default
    one for it. ``abort`` records what an Abort achieved, ``runner`` which
    Job and Pod run the script, ``stacktrace`` the script's traceback.
    """
    if reason is not None and not (reason.isascii() and reason.isalnum() and reason[0].isalpha()):
        raise ValueError(f"a status reason is one CamelCase word, not {reason!r}")
    current = from_custom_resource(procedure)
    status = read_status(procedure)
    patch: dict[str, Any] = {}
    times: dict[str, str] = {}
    if status.state is None:  # first write: record what the resource already implies
        patch["state"] = current.state.value
        times.update(
            {s.value.lower(): rfc3339(t) for s, t in current.history.process_states.items()}
        )
    target = state or current.state
    if target != current.state:
        check_transition(current.id, current.state, target)
        current.state = target
        current.history.process_states[target] = now
        patch["state"] = target.value
        times[target.value.lower()] = rfc3339(now)
    if times:
        patch["stateTimes"] = times
    if stacktrace is not None:
        current.history.stacktrace = stacktrace
        patch["stacktrace"] = clip_end(stacktrace)
    if abort is not None:
        patch["abort"] = abort.to_json()
        if message is None:  # as the embedded backend does: how it stopped; what Abort did
            message = "; ".join(m for m in (current.history.reason, abort.message) if m)
    if message is not None:
        current.history.reason = message
        patch["message"] = clip_start(message)
    final = target in FINAL_STATES
    if final and (reason is not None or abort is not None or status.reason is None):
        reason = reason or default_reason(current, abort or status.abort)
        patch["reason"] = reason
    if runner is not None:
        patch["runner"] = runner.to_json()
    generation = procedure.get("metadata", {}).get("generation")
    if generation is not None:
        patch["observedGeneration"] = generation
    finished = Condition(
        type=FINISHED,
        status="True" if final else "False",
        observed_generation=generation,
        last_transition_time=to_time(now),
        reason=(reason or status.reason or camel(target)) if final else camel(target),
        message=clip_start(message or current.history.reason or f"the procedure is {target.value}"),
    )
    patch["conditions"] = set_condition(status.conditions, finished, now)
    body: dict[str, Any] = {"status": patch}
    if resource_version is not None:
        body["metadata"] = {"resourceVersion": resource_version}
    return body
