"""A procedure: one script, its call arguments, its state and its history."""

import dataclasses
import time
from typing import Any

from oet.domain.state import FINAL_STATES, ProcedureState, check_transition

JSONValue = Any
"""Any value that survives a JSON round trip (kept loose: scripts define it)."""


@dataclasses.dataclass(frozen=True)
class ProcedureInput:
    """Positional and keyword arguments for one script function."""

    args: tuple[JSONValue, ...] = ()
    kwargs: dict[str, JSONValue] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The ``{"args": [...], "kwargs": {...}}`` form used by the API."""
        return {"args": list(self.args), "kwargs": dict(self.kwargs)}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> "ProcedureInput":
        """Build from the API form; missing keys mean no arguments."""
        data = data or {}
        return cls(tuple(data.get("args") or ()), dict(data.get("kwargs") or {}))


@dataclasses.dataclass
class ProcedureHistory:
    """When the procedure entered each state, and why it ended badly if it did.

    ``stacktrace`` holds the script's traceback when it raised; ``reason`` is a
    one-line explanation for endings that have no traceback (runner killed,
    server restarted, stop timed out).
    """

    process_states: dict[ProcedureState, float] = dataclasses.field(default_factory=dict)
    stacktrace: str | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The API form: state names mapped to UNIX timestamps."""
        return {
            "process_states": {s.value: t for s, t in self.process_states.items()},
            "stacktrace": self.stacktrace,
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ProcedureHistory":
        """Inverse of :meth:`to_json`."""
        return cls(
            {ProcedureState(k): float(v) for k, v in data.get("process_states", {}).items()},
            data.get("stacktrace"),
            data.get("reason"),
        )


@dataclasses.dataclass
class Procedure:
    """A loaded script and everything OET knows about it."""

    id: int
    script_uri: str
    init_args: ProcedureInput
    run_args: ProcedureInput = dataclasses.field(default_factory=ProcedureInput)
    state: ProcedureState = ProcedureState.INITIALISING
    history: ProcedureHistory = dataclasses.field(default_factory=ProcedureHistory)

    def __post_init__(self) -> None:
        if not self.history.process_states:
            self.history.process_states[self.state] = time.time()

    @property
    def created_at(self) -> float:
        """When the procedure was first recorded."""
        return min(self.history.process_states.values())

    @property
    def is_final(self) -> bool:
        """True once the procedure can never change again."""
        return self.state in FINAL_STATES

    @property
    def subarray_id(self) -> JSONValue:
        """The ``subarray_id`` given to ``init``, or None: the abort target."""
        return self.init_args.kwargs.get("subarray_id")

    def move_to(self, new: ProcedureState) -> None:
        """Enter ``new`` (checked against the allowed transitions) and record when."""
        check_transition(self.id, self.state, new)
        self.state = new
        self.history.process_states[new] = time.time()

    def to_json(self, uri: str) -> dict[str, Any]:
        """The procedure as the REST API shows it, with its resource ``uri``."""
        return {
            "uri": uri,
            "script_uri": self.script_uri,
            "script_args": {"init": self.init_args.to_json(), "run": self.run_args.to_json()},
            "state": self.state.value,
            "history": self.history.to_json(),
        }
