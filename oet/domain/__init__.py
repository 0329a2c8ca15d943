"""The OET domain: procedures, their states and events, with no I/O.

Everything here is plain data and pure functions so that the REST API, the
runner and (later) the Kubernetes operator agree on what a procedure is.
"""

from oet.domain.errors import (
    ClusterUnavailable,
    InvalidRequest,
    OETError,
    ProcedureNotFound,
    RunnerError,
    ScriptNotFound,
    StateConflict,
)
from oet.domain.events import Event, Topic
from oet.domain.procedure import Procedure, ProcedureHistory, ProcedureInput
from oet.domain.state import FINAL_STATES, LIVE_STATES, ProcedureState, check_transition

__all__ = [
    "FINAL_STATES",
    "LIVE_STATES",
    "ClusterUnavailable",
    "Event",
    "InvalidRequest",
    "OETError",
    "Procedure",
    "ProcedureHistory",
    "ProcedureInput",
    "ProcedureNotFound",
    "ProcedureState",
    "RunnerError",
    "ScriptNotFound",
    "StateConflict",
    "Topic",
    "check_transition",
]
