"""Start and stop are guarded JSON Patches of the spec that keep null arguments."""

import copy
from typing import Any

import pytest

from oet.domain import ProcedureInput, ProcedureState
from oet.kube import from_custom_resource, read_spec
from oet.kube.resource import DesiredState
from oet.kube.spec_patches import start_patch, stop_patch
from tests.unit.kube_fixtures import resource


class GuardFailed(Exception):
    """A JSON Patch ``test`` operation did not hold: the server refuses the patch."""


def apply(document: dict[str, Any], patch: list[dict[str, Any]]) -> dict[str, Any]:
    """Apply the operations these patches use (RFC 6902 test/replace/add on object members)."""
    out = copy.deepcopy(document)
    for op in patch:
        *parents, key = op["path"].strip("/").split("/")
        target = out
        for part in parents:
            target = target[part]
        if op["op"] == "test":
            if target.get(key) != op["value"]:
                raise GuardFailed(op["path"])
        elif op["op"] == "replace":
            assert key in target
            target[key] = copy.deepcopy(op["value"])
        else:
            target[key] = copy.deepcopy(op["value"])
    return out


def test_a_start_keeps_the_run_arguments_given_at_creation() -> None:
    made = resource(3, ProcedureState.CREATED)
    after = apply(made, start_patch())
    assert read_spec(after).desired_state == DesiredState.RUNNING
    assert after["spec"]["run"] == made["spec"]["run"]


def test_a_start_with_arguments_replaces_them_keeping_none_values() -> None:
    run = ProcedureInput(("Ada", None), {"scan": 2, "none": None})
    after = apply(resource(3, ProcedureState.CREATED), start_patch(run))
    assert from_custom_resource(after).run_args == run


def test_a_second_start_is_refused_by_the_guard() -> None:
    started = apply(resource(3, ProcedureState.CREATED), start_patch())
    with pytest.raises(GuardFailed):
        apply(started, start_patch())


@pytest.mark.parametrize("seen", [DesiredState.CREATED, DesiredState.RUNNING])
def test_a_stop_says_whether_to_abort(seen: DesiredState) -> None:
    made = resource(3, ProcedureState.RUNNING, desired=seen.value)
    spec = read_spec(apply(made, stop_patch(seen, abort=True)))
    assert (spec.desired_state, spec.abort) == (DesiredState.STOPPED, True)


def test_a_stop_racing_another_is_refused_by_the_guard() -> None:
    stopped = apply(resource(3, ProcedureState.RUNNING), stop_patch(DesiredState.RUNNING))
    with pytest.raises(GuardFailed):
        apply(stopped, stop_patch(DesiredState.RUNNING, abort=True))
