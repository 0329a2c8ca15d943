"""The OET domain: procedures, their states and events, with no I/O.

Everything here is plain data and pure functions so that the REST API, the
runner and (later) the Kubernetes operator agree on what a procedure is.
"""

from oet.domain.errors import (
    ClusterUnavailable,
    InvalidRequest,
    NotAuthorised,
    OETError,
    ProcedureNotFound,
    RunnerError,
    ScriptNotAllowed,
    ScriptNotFound,
    StateConflict,
    StorageUnavailable,
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
    "NotAuthorised",
    "OETError",
    "Procedure",
    "ProcedureHistory",
    "ProcedureInput",
    "ProcedureNotFound",
    "ProcedureState",
    "RunnerError",
    "ScriptNotAllowed",
    "ScriptNotFound",
    "StateConflict",
    "StorageUnavailable",
    "Topic",
    "check_transition",
]
