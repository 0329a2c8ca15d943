"""Procedure ⇄ custom resource: the one translation every component shares.

The domain keeps UNIX timestamps and one free-text ``reason``; the resource
keeps RFC 3339 times per state, a CamelCase ``reason`` (what ``kubectl get
-o wide`` shows) and the sentence as ``message``. Text is cut to the
schema's limits here, so a long traceback can never make a status patch fail.
"""

import datetime
import time

from oet.domain import Procedure, ProcedureHistory, ProcedureInput, ProcedureState
from oet.kube.names import API_VERSION, KIND, procedure_labels, procedure_name
from oet.kube.resource import (
    AbortOutcome,
    DesiredState,
    ObjectMeta,
    ProcedureResource,
    ProcedureSpec,
    ProcedureStatus,
    ScriptCall,
    StateTimes,
    read_spec,
    read_status,
)

S = ProcedureState

MAX_MESSAGE = 4096
MAX_STACKTRACE = 65536
_CUT = "…"


def to_time(timestamp: float) -> datetime.datetime:
    """A UNIX timestamp as an aware UTC datetime (microsecond precision)."""
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC)


def rfc3339(timestamp: float) -> str:
    """A UNIX timestamp as RFC 3339 text in UTC, as the resource stores times."""
    return to_time(timestamp).isoformat().replace("+00:00", "Z")


def from_time(when: datetime.datetime | str) -> float:
    """A datetime or RFC 3339 string (``Z`` or offset) as a UNIX timestamp."""
    if isinstance(when, str):
        when = datetime.datetime.fromisoformat(when)
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    return when.timestamp()


def clip_start(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` cut to ``limit`` characters, keeping its start (for messages)."""
    return text if len(text) <= limit else text[: limit - len(_CUT)] + _CUT


def clip_end(text: str, limit: int = MAX_STACKTRACE) -> str:
    """``text`` cut to ``limit`` characters, keeping its end (for tracebacks)."""
    return text if len(text) <= limit else _CUT + text[len(text) - limit + len(_CUT) :]


def default_reason(procedure: Procedure, abort: AbortOutcome | None = None) -> str | None:
    """The CamelCase reason for a final state, when nothing more specific is known.

    Live states have none: their state says it all.
    """
    if procedure.state == S.COMPLETED:
        return "Completed"
    if procedure.state == S.STOPPED:
        if abort is None:
            return "Stopped"
        return "Aborted" if abort.sent else "AbortFailed"
    if procedure.state == S.FAILED:
        if procedure.history.stacktrace is None:
            return "RunnerFailed"
        return "ScriptFailed" if S.RUNNING in procedure.history.process_states else "InitFailed"
    return None


def desired_state_for(procedure: Procedure) -> DesiredState:
    """The desired state a procedure's history implies (for resources made from records)."""
    entered = procedure.history.process_states
    if S.STOPPING in entered or S.STOPPED in entered:
        return DesiredState.STOPPED
    if S.RUNNING in entered:
        return DesiredState.RUNNING
    return DesiredState.CREATED


def spec_for(
    procedure: Procedure, desired_state: DesiredState | None = None, abort: bool = False
) -> ProcedureSpec:
    """The spec of ``procedure``'s resource."""
    return ProcedureSpec(
        id=procedure.id,
        script_uri=procedure.script_uri,
        init=ScriptCall(args=list(procedure.init_args.args), kwargs=procedure.init_args.kwargs),
        run=ScriptCall(args=list(procedure.run_args.args), kwargs=procedure.run_args.kwargs),
        desired_state=desired_state or desired_state_for(procedure),
        abort=abort,
    )


def status_for(
    procedure: Procedure, reason: str | None = None, abort: AbortOutcome | None = None
) -> ProcedureStatus:
    """The status of ``procedure``'s resource: state, times, reason, message, traceback.

    ``reason`` overrides :func:`default_reason` (the operator knows OOMKilled,
    Evicted and the like); conditions and the runner are the operator's to add.
    """
    history = procedure.history
    times = StateTimes(**{s.value.lower(): to_time(t) for s, t in history.process_states.items()})
    return ProcedureStatus(
        state=procedure.state,
        state_times=times,
        reason=reason or default_reason(procedure, abort),
        message=clip_start(history.reason) if history.reason is not None else None,
        stacktrace=clip_end(history.stacktrace) if history.stacktrace is not None else None,
        abort=abort,
    )


def to_custom_resource(
    procedure: Procedure,
    namespace: str | None = None,
    desired_state: DesiredState | None = None,
    abort: bool = False,
) -> ProcedureResource:
    """The whole custom resource for ``procedure``, ready to create.

    The API server ignores ``status`` on create (it is a subresource): write it
    afterwards with a patch of ``/status``.
    """
    metadata: ObjectMeta = {
        "name": procedure_name(procedure.id),
        "labels": procedure_labels(procedure.id),
    }
    if namespace:
        metadata["namespace"] = namespace
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": metadata,
        "spec": spec_for(procedure, desired_state, abort).to_json(),
        "status": status_for(procedure).to_json(),
    }


def from_custom_resource(resource: ProcedureResource) -> Procedure:
    """The procedure a custom resource describes.

    A resource nothing has written a status for yet is INITIALISING since its
    creation; a state without a recorded time counts from the latest known one.
    """
    spec = read_spec(resource)
    status = read_status(resource)
    entered = {s: when.timestamp() for s, when in status.state_times.entered().items()}
    if not entered:
        created = resource.get("metadata", {}).get("creationTimestamp")
        entered[S.INITIALISING] = from_time(created) if created else time.time()
    state = status.state or S.INITIALISING
    if state not in entered:
        entered[state] = max(entered.values())
    return Procedure(
        id=spec.id,
        script_uri=spec.script_uri,
        init_args=ProcedureInput(tuple(spec.init.args), dict(spec.init.keyword_args)),
        run_args=ProcedureInput(tuple(spec.run.args), dict(spec.run.keyword_args)),
        state=state,
        history=ProcedureHistory(entered, status.stacktrace, status.message),
    )


def abort_outcome(resource: ProcedureResource) -> tuple[bool, str] | None:
    """(sent, message) of the Abort after a stop, as ``rules.abort_message`` takes it."""
    outcome = read_status(resource).abort
    return None if outcome is None else (outcome.sent, outcome.message)
