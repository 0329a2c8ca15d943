"""The Procedure resource's spec and status as typed models, and its raw shape.

``ProcedureSpec`` and ``ProcedureStatus`` are what OET owns: pydantic models
whose camelCase aliases are the field names of ``crds/procedure.yaml``. The
whole object, as the API server sends and takes it, is a plain dict typed by
``ProcedureResource``. Reading is lenient (fields a newer OET added are
ignored), so an older component never chokes on a newer resource.
"""

import datetime
import enum
from typing import Any, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from oet.domain import ProcedureState


class ObjectMeta(TypedDict, total=False):
    """The part of Kubernetes ``metadata`` OET reads or writes."""

    name: str
    namespace: str
    uid: str
    resourceVersion: str
    generation: int
    creationTimestamp: str
    deletionTimestamp: str
    labels: dict[str, str]
    annotations: dict[str, str]
    ownerReferences: list[dict[str, Any]]


class ProcedureResource(TypedDict, total=False):
    """A Procedure custom resource as JSON: ``spec`` and ``status`` as the models dump them."""

    apiVersion: str
    kind: str
    metadata: ObjectMeta
    spec: dict[str, Any]
    status: dict[str, Any]


class DesiredState(enum.StrEnum):
    """What a client asked of a procedure. Moves only forward, in this order."""

    CREATED = "CREATED"
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    def to_json(self) -> dict[str, Any]:
        """The resource's JSON form: camelCase names, unset optional fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class ScriptCall(_Model):
    """Arguments for one script function (``init`` or ``run``)."""

    args: list[Any] = Field(default_factory=list)
    keyword_args: dict[str, Any] = Field(default_factory=dict, alias="kwargs")


class ProcedureSpec(_Model):
    """What was asked of a procedure (``spec``)."""

    id: int = Field(ge=1)
    script_uri: str
    init: ScriptCall = Field(default_factory=ScriptCall)
    run: ScriptCall = Field(default_factory=ScriptCall)
    desired_state: DesiredState = DesiredState.CREATED
    abort: bool = False


class StateTimes(_Model):
    """When the procedure entered each state (``status.stateTimes``)."""

    initialising: datetime.datetime | None = None
    created: datetime.datetime | None = None
    running: datetime.datetime | None = None
    stopping: datetime.datetime | None = None
    stopped: datetime.datetime | None = None
    completed: datetime.datetime | None = None
    failed: datetime.datetime | None = None

    def entered(self) -> dict[ProcedureState, datetime.datetime]:
        """The states entered so far, oldest first."""
        entered = {s: getattr(self, s.value.lower()) for s in ProcedureState}
        ordered = sorted(
            (when, order, s) for order, (s, when) in enumerate(entered.items()) if when
        )
        return {s: when for when, _, s in ordered}


class AbortOutcome(_Model):
    """What the Abort after a stop achieved (``status.abort``)."""

    sent: bool
    message: str


class RunnerRef(_Model):
    """The Job and Pod running a procedure (``status.runner``)."""

    job: str | None = None
    pod: str | None = None


class Condition(_Model):
    """A standard Kubernetes condition (the shape of ``metav1.Condition``)."""

    type: str
    status: Literal["True", "False", "Unknown"]
    observed_generation: int | None = None
    last_transition_time: datetime.datetime
    reason: str
    message: str


class ProcedureStatus(_Model):
    """What a procedure is doing (``status``), written by its runner or the operator."""

    state: ProcedureState | None = None
    state_times: StateTimes = Field(default_factory=StateTimes)
    reason: str | None = None
    message: str | None = None
    stacktrace: str | None = None
    abort: AbortOutcome | None = None
    runner: RunnerRef | None = None
    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)

    def condition(self, kind: str) -> Condition | None:
        """The condition of type ``kind``, if set."""
        return next((c for c in self.conditions if c.type == kind), None)


def read_spec(resource: ProcedureResource) -> ProcedureSpec:
    """The resource's spec as a model (pydantic's ValidationError if it is malformed)."""
    return ProcedureSpec.model_validate(resource.get("spec") or {})


def read_status(resource: ProcedureResource) -> ProcedureStatus:
    """The resource's status as a model; an empty one before anything wrote it."""
    return ProcedureStatus.model_validate(resource.get("status") or {})
