"""Request bodies the REST API accepts. Unknown fields are refused, not ignored."""

import json
import math
from collections.abc import Sequence
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, ValidationError

from oet.domain import InvalidRequest, ProcedureInput


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScriptCall(_Strict):
    """Arguments for one script function: ``init`` or ``run``."""

    args: list[Any] = Field(default_factory=list, description="Positional arguments.")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments.")

    def to_input(self) -> ProcedureInput:
        """As the domain's ProcedureInput."""
        return ProcedureInput(tuple(self.args), dict(self.kwargs))


class CreateScriptArgs(_Strict):
    """``init`` arguments (used at load time) and default ``run`` arguments."""

    init: ScriptCall = Field(default_factory=ScriptCall)
    run: ScriptCall = Field(default_factory=ScriptCall)


class RunScriptArgs(_Strict):
    """Only ``run`` arguments can be given when a procedure starts."""

    run: ScriptCall | None = None


class CreateProcedure(_Strict):
    """POST /procedures: load a script and call its ``init``."""

    script_uri: StrictStr = Field(
        min_length=1, max_length=4096, description="file:// URI of the script to load."
    )
    script_args: CreateScriptArgs = Field(default_factory=CreateScriptArgs)


class UpdateProcedure(_Strict):
    """PUT /procedures/{id}: RUNNING starts a procedure, STOPPED stops it."""

    state: Literal["RUNNING", "STOPPED"] = Field(description="The state to move to.")
    script_args: RunScriptArgs | None = Field(None, description="Run arguments, with RUNNING.")
    abort: StrictBool = Field(
        False, description="With STOPPED: also send Abort to the procedure's subarray."
    )


class MalformedBody(InvalidRequest):
    """The body is not JSON, or not JSON of the expected shape."""


class BodyNotJSON(MalformedBody):
    """The body cannot be read as JSON at all (REST 400)."""


class BodyWrongShape(MalformedBody):
    """The body is JSON, but not of the shape the request takes (REST 422)."""


def describe_problems(errors: Sequence[Any]) -> str:
    """Pydantic's validation errors as one line naming the offending fields."""
    problems = [
        f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg')}"
        for e in errors
    ]
    return "; ".join(problems[:5]) or "Invalid request"


Model = TypeVar("Model", bound=BaseModel)


class _NotJSON(ValueError):
    """A number Python's parser accepts but JSON (and so every client) cannot carry."""


def _refuse_constant(name: str) -> float:
    raise _NotJSON(f"The request body contains {name}, which is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotJSON(f"The number {text[:20]}... is too large to be carried in JSON")
    return value


_MAX_DIGITS = 4300  # Python's own limit for turning digits into an int


def _bounded_int(text: str) -> int:
    if len(text) > _MAX_DIGITS:
        raise _NotJSON(
            f"The request body contains a number with {len(text)} digits;"
            f" at most {_MAX_DIGITS} are accepted"
        )
    return int(text)


def _check_text(data: Any) -> None:
    """Refuse strings UTF-8 cannot carry (lone surrogates such as JSON "\\ud800")."""
    pending = [data]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise _NotJSON(
                    "The request body contains a lone Unicode surrogate, which is not text"
                ) from None


def parse_body(model: type[Model], raw: bytes) -> Model:
    """Parse ``raw`` as JSON into ``model``, whatever the request's Content-Type said.

    Raises BodyNotJSON for bytes that are not JSON, BodyWrongShape for JSON
    of the wrong shape, with the offending fields named.
    """
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BodyNotJSON("The request body is not UTF-8 text") from None
    try:
        data = json.loads(
            text,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
            parse_int=_bounded_int,
        )
        _check_text(data)
    except _NotJSON as exc:
        raise BodyNotJSON(str(exc)) from None
    except (ValueError, RecursionError):
        raise BodyNotJSON("The request body is not valid JSON") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BodyWrongShape(describe_problems(exc.errors())) from None
