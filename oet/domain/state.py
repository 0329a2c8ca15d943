"""Procedure states and the transitions allowed between them.

    INITIALISING ──> CREATED ──> RUNNING ──> COMPLETED
         │              │           │  └───> FAILED
         │              │           └──> STOPPING ──> STOPPED
         └──────────────┴──> STOPPED / FAILED

INITIALISING covers loading the script and its ``init``; STOPPING covers
interrupting the script and, when asked, aborting the subarray. Every path
ends in one of the final states.
"""

import enum

from oet.domain.errors import StateConflict


class ProcedureState(enum.StrEnum):
    """Where a procedure is in its life. The value is what the API shows."""

    INITIALISING = "INITIALISING"
    CREATED = "CREATED"
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


S = ProcedureState

FINAL_STATES = frozenset({S.STOPPED, S.COMPLETED, S.FAILED})
"""States a procedure never leaves."""

LIVE_STATES = frozenset(set(S) - FINAL_STATES)
"""States in which a runner process belongs to the procedure."""

_ALLOWED: dict[ProcedureState, frozenset[ProcedureState]] = {
    S.INITIALISING: frozenset({S.CREATED, S.STOPPING, S.STOPPED, S.FAILED}),
    S.CREATED: frozenset({S.RUNNING, S.STOPPING, S.STOPPED, S.FAILED}),
    S.RUNNING: frozenset({S.STOPPING, S.STOPPED, S.COMPLETED, S.FAILED}),
    # A script can finish on its own while the stop request is on its way.
    S.STOPPING: frozenset({S.STOPPED, S.COMPLETED, S.FAILED}),
    S.STOPPED: frozenset(),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset(),
}


def can_transition(current: ProcedureState, new: ProcedureState) -> bool:
    """Say whether a procedure in ``current`` may move to ``new``."""
    return new in _ALLOWED[current]


def check_transition(pid: int, current: ProcedureState, new: ProcedureState) -> None:
    """Raise StateConflict unless ``current -> new`` is allowed."""
    if not can_transition(current, new):
        raise StateConflict(f"Procedure {pid} is {current.value}: it cannot move to {new.value}")
