"""Status patches the operator writes, and which Procedures retention deletes."""

import time
from typing import Any

import pytest

from oet.domain import ProcedureState, StateConflict
from oet.kube import from_custom_resource
from oet.kube.resource import AbortOutcome, RunnerRef
from oet.kube.status import FINISHED, status_patch_for
from oet.operator.retention import procedures_to_delete
from tests.unit.kube_fixtures import resource

S = ProcedureState


def applied(made: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """``made`` with a merge patch of its status applied, as the API server would."""

    def merge(base: Any, change: Any) -> Any:
        if not isinstance(base, dict) or not isinstance(change, dict):
            return change
        out = dict(base)
        for key, value in change.items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = merge(out.get(key), value)
        return out

    return {**made, "status": merge(made.get("status", {}), patch["status"])}


def finished(status: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == FINISHED)


def test_the_first_status_write_records_initialising_since_creation() -> None:
    made = resource(3, None, runner_job=None)
    now = time.time()
    patch = status_patch_for(made, now, runner=RunnerRef(job="procedure-3-runner"))
    status = patch["status"]
    assert status["state"] == "INITIALISING"
    assert set(status["stateTimes"]) == {"initialising"}
    assert status["runner"] == {"job": "procedure-3-runner"}
    assert status["observedGeneration"] == 1
    condition = finished(status)
    assert (condition["status"], condition["reason"]) == ("False", "Initialising")
    assert "reason" not in status


def test_a_runner_that_never_wrote_a_status_can_be_failed_straight_away() -> None:
    made = resource(3, None)
    patch = status_patch_for(made, time.time(), S.FAILED, reason="ImageNotPresent", message="m")
    status = patch["status"]
    assert status["state"] == "FAILED"
    assert list(status["stateTimes"]) == ["initialising", "failed"]
    assert status["reason"] == "ImageNotPresent"
    assert from_custom_resource(applied(made, patch)).state == S.FAILED


def test_a_runner_death_moves_to_a_final_state_with_reason_and_sentence() -> None:
    made = resource(3, S.RUNNING)
    now = time.time()
    message = "runner Pod procedure-3-runner-x7k2p ran out of memory (limit of 64Mi)"
    patch = status_patch_for(made, now, S.FAILED, reason="OOMKilled", message=message)
    status = patch["status"]
    assert status["state"] == "FAILED"
    assert list(status["stateTimes"]) == ["failed"]
    assert (status["reason"], status["message"]) == ("OOMKilled", message)
    condition = finished(status)
    assert condition["status"] == "True"
    assert (condition["reason"], condition["message"]) == ("OOMKilled", message)
    after = from_custom_resource(applied(made, patch))
    assert after.state == S.FAILED
    assert after.history.reason == message
    assert after.history.process_states[S.FAILED] == pytest.approx(now, abs=1e-6)


def test_a_final_state_is_never_overwritten() -> None:
    with pytest.raises(StateConflict, match="Procedure 3 is COMPLETED: it cannot move to FAILED"):
        status_patch_for(resource(3, S.COMPLETED), time.time(), S.FAILED, reason="OOMKilled")


def test_a_reason_must_be_one_camel_case_word() -> None:
    with pytest.raises(ValueError, match="CamelCase"):
        status_patch_for(resource(3, S.RUNNING), time.time(), S.FAILED, reason="out of memory")


def test_an_abort_sent_by_the_operator_is_recorded_with_its_reason() -> None:
    made = resource(3, S.STOPPED, desired="STOPPED", abort=True)
    made["status"]["message"] = "stopped before runner Pod procedure-3-runner-x7k2p started"
    outcome = AbortOutcome(sent=False, message="Abort to ska_mid/tm_subarray_node/1 failed")
    patch = status_patch_for(made, time.time(), abort=outcome)
    assert patch["status"]["abort"] == {"sent": False, "message": outcome.message}
    assert patch["status"]["reason"] == "AbortFailed"
    assert patch["status"]["message"] == (
        "stopped before runner Pod procedure-3-runner-x7k2p started;"
        " Abort to ska_mid/tm_subarray_node/1 failed"
    )
    assert "state" not in patch["status"]


def test_the_finished_condition_keeps_its_transition_time_while_its_status_holds() -> None:
    made = resource(3, S.CREATED)
    first = applied(made, status_patch_for(made, 1796011200.0))
    first["metadata"]["generation"] = 2
    again = status_patch_for(first, 1796011260.0, S.RUNNING)
    condition = finished(again["status"])
    assert condition["lastTransitionTime"] == "2026-11-30T04:00:00Z"
    assert condition["reason"] == "Running"
    assert condition["observedGeneration"] == again["status"]["observedGeneration"] == 2
    ended = status_patch_for(applied(first, again), 1796011320.0, S.COMPLETED)
    assert finished(ended["status"])["lastTransitionTime"] == "2026-11-30T04:02:00Z"
    assert finished(ended["status"])["reason"] == "Completed"


def test_other_conditions_are_kept() -> None:
    made = resource(3, S.RUNNING)
    made["status"]["conditions"] = [
        {
            "type": "RunnerReady",
            "status": "True",
            "lastTransitionTime": "2026-11-30T04:00:00Z",
            "reason": "PodRunning",
            "message": "runner Pod is running",
        }
    ]
    conditions = status_patch_for(made, time.time(), S.COMPLETED)["status"]["conditions"]
    assert [c["type"] for c in conditions] == ["RunnerReady", FINISHED]


def test_a_patch_can_be_made_conditional_on_the_version_read() -> None:
    patch = status_patch_for(resource(3, S.RUNNING), time.time(), resource_version="4711")
    assert patch["metadata"] == {"resourceVersion": "4711"}
    assert "metadata" not in status_patch_for(resource(3, S.RUNNING), time.time())


def procedures(*states: ProcedureState | None) -> list[dict[str, Any]]:
    return [resource(pid, state) for pid, state in enumerate(states, start=1)]


def test_retention_keeps_the_newest_and_deletes_the_oldest_finished() -> None:
    kept = procedures(S.COMPLETED, S.FAILED, S.CREATED, S.STOPPED, S.COMPLETED)
    assert procedures_to_delete(kept, keep=3) == ["procedure-1", "procedure-2"]


def test_retention_has_nothing_to_do_within_the_limit() -> None:
    assert procedures_to_delete(procedures(S.COMPLETED, S.FAILED), keep=2) == []


@pytest.mark.parametrize("live", [S.INITIALISING, S.CREATED, S.RUNNING, S.STOPPING, None])
def test_retention_never_deletes_a_live_procedure(live: ProcedureState | None) -> None:
    kept = procedures(live, live, S.COMPLETED)
    assert procedures_to_delete(kept, keep=1) == ["procedure-3"]


def test_procedures_already_being_deleted_do_not_count() -> None:
    kept = procedures(S.COMPLETED, S.COMPLETED, S.COMPLETED)
    kept[0]["metadata"]["deletionTimestamp"] = "2026-11-30T04:00:00Z"
    assert procedures_to_delete(kept, keep=1) == ["procedure-2"]


def test_a_failure_report_records_the_stack_trace_and_says_where_the_script_failed() -> None:
    made = resource(3, S.RUNNING)

    patch = status_patch_for(made, time.time(), state=S.FAILED, stacktrace="Traceback ...",
                             message="ValueError: boom")  # fmt: skip

    assert patch["status"]["stacktrace"] == "Traceback ..."
    assert patch["status"]["reason"] == "ScriptFailed"
    assert patch["status"]["message"] == "ValueError: boom"
