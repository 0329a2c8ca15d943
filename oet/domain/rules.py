"""Decisions about procedures that need no I/O.

Which procedure may start or stop, which one retention drops, and what a stop
request achieved. Backends call these so that every deployment decides alike
and the decisions can be tested on plain data.
"""

from collections.abc import Iterable

from oet.domain.errors import StateConflict
from oet.domain.procedure import Procedure
from oet.domain.state import ProcedureState

S = ProcedureState

EXECUTING = frozenset({S.INITIALISING, S.RUNNING, S.STOPPING})
"""States in which script code is (or may still be) executing."""


def check_can_start(procedure: Procedure, procedures: Iterable[Procedure]) -> None:
    """Raise StateConflict unless ``procedure`` is CREATED and none of ``procedures`` runs."""
    pid, state = procedure.id, procedure.state
    if state == S.INITIALISING:
        raise StateConflict(f"Procedure {pid} is still running its init(): start it once CREATED")
    if state in (S.RUNNING, S.STOPPING):
        raise StateConflict(f"Procedure {pid} is already {state.value}")
    if state != S.CREATED:
        raise StateConflict(f"Procedure {pid} is {state.value}: a finished procedure cannot start")
    for other in procedures:
        if other.state in (S.RUNNING, S.STOPPING):
            raise StateConflict(
                f"Procedure {other.id} is {other.state.value}: only one procedure"
                f" may run at a time, so procedure {pid} was not started"
            )


def check_can_stop(procedure: Procedure) -> None:
    """Raise StateConflict unless ``procedure``'s script is executing (INITIALISING, RUNNING).

    A stop is for a script that is executing: stopping a CREATED or ended
    procedure is refused rather than quietly done, so a mistyped ID can never
    send ``Abort`` to a subarray that procedure never used.
    """
    pid, state = procedure.id, procedure.state
    if state == S.STOPPING:
        raise StateConflict(f"Procedure {pid} is already stopping")
    if state == S.CREATED:
        raise StateConflict(
            f"Procedure {pid} is CREATED: its script is not running, so there is nothing to"
            " stop and nothing was aborted. Check the ID (oet list); start it, or discard it"
            f" with DELETE /procedures/{pid} (oet discard --pid={pid})"
        )
    if state not in EXECUTING:
        raise StateConflict(
            f"Procedure {pid} is {state.value}: its script has ended, so there is nothing to"
            " stop and nothing was aborted. Check the ID with 'oet list'"
        )


def check_can_discard(procedure: Procedure) -> None:
    """Raise StateConflict if ``procedure``'s script is executing: that needs a stop."""
    if procedure.state in EXECUTING:
        raise StateConflict(
            f"Procedure {procedure.id} is {procedure.state.value}: its script is executing;"
            ' stop it first (PUT {"state": "STOPPED"}, oet stop), then discard it'
        )


def next_to_drop(procedures: Iterable[Procedure], limit: int) -> Procedure | None:
    """The procedure to drop before one more is created, or None when there is room.

    The oldest finished procedure goes first, then the oldest idle (CREATED)
    one. A procedure whose script is executing is never dropped: when only
    those are left, StateConflict says so.
    """
    kept = list(procedures)
    if len(kept) < limit:
        return None
    for procedure in sorted(kept, key=lambda p: (not p.is_final, p.id)):
        if procedure.state not in EXECUTING:
            return procedure
    raise StateConflict(
        f"OET keeps {limit} procedures and none can be dropped while their scripts"
        " are executing; stop one first"
    )


def abort_message(procedure: Procedure, abort: bool, outcome: tuple[bool, str] | None) -> str:
    """The user docs' ``abort_message``: what a stop request achieved.

    ``outcome`` is (sent, detail) of the abort, when one was attempted.
    """
    pid = procedure.id
    if procedure.state == S.COMPLETED:
        return f"Script with ID {pid} completed before it could be stopped"
    if procedure.state == S.FAILED:
        return f"Script with ID {pid} failed before it could be stopped"
    if procedure.state != S.STOPPED:
        return f"Stop of script with ID {pid} requested; it is still {procedure.state.value}"
    if not abort:
        return f"Successfully stopped script with ID {pid}"
    sent, detail = outcome or (False, "no abort outcome was reported")
    if sent:
        return f"Successfully stopped script with ID {pid} and aborted subarray activity"
    return f"Stopped script with ID {pid}, but subarray activity was not aborted: {detail}"
