"""Procedure ⇄ custom resource: what goes in comes back out, in the resource's own terms."""

import pytest

from oet.domain import Procedure, ProcedureInput, ProcedureNotFound, ProcedureState
from oet.kube import (
    API_VERSION,
    DesiredState,
    abort_outcome,
    from_custom_resource,
    procedure_id,
    procedure_name,
    read_status,
    status_for,
    to_custom_resource,
)
from oet.kube.convert import MAX_MESSAGE, MAX_STACKTRACE, rfc3339
from oet.kube.resource import AbortOutcome
from tests.unit.kube_fixtures import PATHS, procedure

S = ProcedureState


def assert_same_procedure(got: Procedure, want: Procedure) -> None:
    assert (got.id, got.script_uri, got.state) == (want.id, want.script_uri, want.state)
    assert got.init_args == want.init_args
    assert got.run_args == want.run_args
    assert list(got.history.process_states) == list(want.history.process_states)
    for state, when in want.history.process_states.items():
        assert got.history.process_states[state] == pytest.approx(when, abs=1e-6)
    assert got.history.stacktrace == want.history.stacktrace
    assert got.history.reason == want.history.reason


@pytest.mark.parametrize("state", list(PATHS))
def test_every_state_survives_the_round_trip(state: ProcedureState) -> None:
    original = procedure(7, state, subarray_id=2)
    assert_same_procedure(from_custom_resource(to_custom_resource(original)), original)


def test_arguments_keep_their_json_types_and_order() -> None:
    original = Procedure(
        4,
        "file://scripts/hello_world.py",
        ProcedureInput((1, 2.5, "x", None, [1, [2]], {"a": True}), {"subarray_id": 1, "n": None}),
        ProcedureInput(("Ada",), {"dishes": [1, 2], "opts": {"deep": {"er": [None]}}}),
    )
    back = from_custom_resource(to_custom_resource(original))
    assert back.init_args.args == (1, 2.5, "x", None, [1, [2]], {"a": True})
    assert back.init_args.kwargs == {"subarray_id": 1, "n": None}
    assert back.run_args.kwargs == {"dishes": [1, 2], "opts": {"deep": {"er": [None]}}}


def test_a_failure_keeps_its_traceback_and_reason_sentence() -> None:
    original = procedure(3, S.FAILED)
    original.history.stacktrace = "Traceback (most recent call last):\nValueError: bad dish\n"
    original.history.reason = "ValueError: bad dish"
    made = to_custom_resource(original)
    assert made["status"]["stacktrace"] == original.history.stacktrace
    assert made["status"]["message"] == "ValueError: bad dish"
    assert made["status"]["reason"] == "ScriptFailed"
    assert_same_procedure(from_custom_resource(made), original)


def test_the_resource_is_named_and_labelled_by_the_procedure_id() -> None:
    made = to_custom_resource(procedure(12, S.CREATED), namespace="telescope")
    assert made["apiVersion"] == API_VERSION == "oet.skao.int/v1alpha1"
    assert made["kind"] == "Procedure"
    assert made["metadata"]["name"] == "procedure-12"
    assert made["metadata"]["namespace"] == "telescope"
    assert made["metadata"]["labels"]["oet.skao.int/procedure-id"] == "12"
    assert made["spec"]["id"] == 12


def test_names_and_ids_convert_both_ways() -> None:
    assert procedure_name(3) == "procedure-3"
    assert procedure_id("procedure-3") == 3
    for bad in ("procedure-0", "procedure-03", "procedure-x", "job-3", "procedure-3-runner"):
        with pytest.raises(ProcedureNotFound):
            procedure_id(bad)
    for bad_id in (0, -1, True):
        with pytest.raises(ValueError, match="whole number"):
            procedure_name(bad_id)


def test_times_are_rfc3339_in_utc_and_ordered_as_entered() -> None:
    made = to_custom_resource(procedure(3, S.STOPPED))
    times = made["status"]["stateTimes"]
    assert list(times) == ["initialising", "created", "running", "stopping", "stopped"]
    assert all(value.endswith("Z") and "T" in value for value in times.values())


def test_a_resource_without_status_is_initialising_since_its_creation() -> None:
    made = to_custom_resource(procedure(5, S.INITIALISING))
    del made["status"]
    made["metadata"]["creationTimestamp"] = "2026-11-30T04:00:00Z"
    back = from_custom_resource(made)
    assert back.state == S.INITIALISING
    assert back.history.process_states == {S.INITIALISING: 1796011200.0}


def test_a_state_written_without_its_time_counts_from_the_latest_known_time() -> None:
    made = to_custom_resource(procedure(5, S.CREATED))
    made["status"]["state"] = "RUNNING"
    back = from_custom_resource(made)
    assert back.state == S.RUNNING
    assert back.history.process_states[S.RUNNING] == back.history.process_states[S.CREATED]


@pytest.mark.parametrize(
    ("state", "desired"),
    [
        (S.INITIALISING, DesiredState.CREATED),
        (S.CREATED, DesiredState.CREATED),
        (S.RUNNING, DesiredState.RUNNING),
        (S.COMPLETED, DesiredState.RUNNING),
        (S.STOPPING, DesiredState.STOPPED),
        (S.STOPPED, DesiredState.STOPPED),
    ],
)
def test_the_desired_state_follows_from_the_history(
    state: ProcedureState, desired: DesiredState
) -> None:
    assert to_custom_resource(procedure(1, state))["spec"]["desiredState"] == desired.value


@pytest.mark.parametrize(
    ("state", "abort", "reason"),
    [
        (S.COMPLETED, None, "Completed"),
        (S.STOPPED, None, "Stopped"),
        (S.STOPPED, AbortOutcome(sent=True, message="Abort sent to x"), "Aborted"),
        (S.STOPPED, AbortOutcome(sent=False, message="no device"), "AbortFailed"),
        (S.FAILED, None, "RunnerFailed"),
        (S.RUNNING, None, None),
    ],
)
def test_final_states_get_a_reason_word_and_live_ones_none(
    state: ProcedureState, abort: AbortOutcome | None, reason: str | None
) -> None:
    assert status_for(procedure(1, state), abort=abort).reason == reason


def test_init_and_script_failures_have_different_reasons() -> None:
    in_init = Procedure(1, "file:///s.py", ProcedureInput())
    in_init.move_to(S.FAILED)
    in_init.history.stacktrace = "Traceback"
    in_run = procedure(2, S.FAILED)
    in_run.history.stacktrace = "Traceback"
    assert status_for(in_init).reason == "InitFailed"
    assert status_for(in_run).reason == "ScriptFailed"


def test_a_given_reason_wins_over_the_default() -> None:
    assert status_for(procedure(1, S.FAILED), reason="OOMKilled").reason == "OOMKilled"


def test_overlong_text_is_cut_to_what_the_schema_allows() -> None:
    original = procedure(1, S.FAILED)
    original.history.stacktrace = "frame\n" * 20000 + "ValueError: the real cause"
    original.history.reason = "x" * 10000
    status = to_custom_resource(original)["status"]
    assert len(status["stacktrace"]) == MAX_STACKTRACE
    assert status["stacktrace"].endswith("ValueError: the real cause")
    assert len(status["message"]) == MAX_MESSAGE
    assert status["message"].startswith("xxx")


def test_the_abort_outcome_is_read_back_for_the_stop_answer() -> None:
    made = to_custom_resource(procedure(1, S.STOPPED))
    assert abort_outcome(made) is None
    made["status"]["abort"] = {"sent": False, "message": "Abort to x failed: timeout"}
    assert abort_outcome(made) == (False, "Abort to x failed: timeout")


def test_reading_ignores_fields_a_newer_oet_added() -> None:
    made = to_custom_resource(procedure(1, S.RUNNING))
    made["status"]["futureField"] = {"x": 1}
    made["spec"]["priority"] = "high"
    assert from_custom_resource(made).state == S.RUNNING
    assert read_status(made).state == S.RUNNING


def test_rfc3339_text_reads_back_with_microseconds() -> None:
    when = 1796011200.123456
    assert rfc3339(when) == "2026-11-30T04:00:00.123456Z"
