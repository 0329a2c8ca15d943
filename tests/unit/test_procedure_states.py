"""The procedure life cycle: which moves are allowed and what they record."""

import pytest

from oet.domain import (
    FINAL_STATES,
    Procedure,
    ProcedureHistory,
    ProcedureInput,
    ProcedureState,
    StateConflict,
)
from oet.domain.state import can_transition

S = ProcedureState


def new_procedure() -> Procedure:
    return Procedure(7, "file:///s.py", ProcedureInput((1,), {"subarray_id": 3}))


def test_a_new_procedure_is_initialising_with_that_time_recorded() -> None:
    procedure = new_procedure()
    assert procedure.state == S.INITIALISING
    assert list(procedure.history.process_states) == [S.INITIALISING]
    assert procedure.created_at == procedure.history.process_states[S.INITIALISING]


def test_the_happy_path_records_every_state_in_order() -> None:
    procedure = new_procedure()
    for state in (S.CREATED, S.RUNNING, S.COMPLETED):
        procedure.move_to(state)
    assert list(procedure.history.process_states) == [
        S.INITIALISING,
        S.CREATED,
        S.RUNNING,
        S.COMPLETED,
    ]
    assert procedure.is_final


@pytest.mark.parametrize("final", sorted(FINAL_STATES))
def test_a_finished_procedure_can_never_change_again(final: ProcedureState) -> None:
    for state in S:
        assert not can_transition(final, state)


@pytest.mark.parametrize("live", sorted(set(S) - FINAL_STATES))
def test_every_live_state_can_end_stopped_or_failed(live: ProcedureState) -> None:
    # a stop must always be able to end it, and so must a runner that dies
    assert can_transition(live, S.STOPPED)
    assert can_transition(live, S.FAILED)


def test_starting_a_completed_procedure_is_a_conflict_naming_both_states() -> None:
    procedure = new_procedure()
    procedure.move_to(S.CREATED)
    procedure.move_to(S.RUNNING)
    procedure.move_to(S.COMPLETED)
    with pytest.raises(StateConflict, match="Procedure 7 is COMPLETED: it cannot move to RUNNING"):
        procedure.move_to(S.RUNNING)
    assert procedure.state == S.COMPLETED


def test_a_script_finishing_while_a_stop_is_on_its_way_is_allowed() -> None:
    assert can_transition(S.STOPPING, S.COMPLETED)
    assert not can_transition(S.STOPPING, S.RUNNING)


def test_json_form_matches_the_user_docs_fields() -> None:
    procedure = new_procedure()
    body = procedure.to_json("http://h/api/v1.0/procedures/7")
    assert body["uri"] == "http://h/api/v1.0/procedures/7"
    assert body["script_args"] == {
        "init": {"args": [1], "kwargs": {"subarray_id": 3}},
        "run": {"args": [], "kwargs": {}},
    }
    assert body["state"] == "INITIALISING"
    assert set(body["history"]) >= {"process_states", "stacktrace"}
    assert body["history"]["stacktrace"] is None


def test_history_survives_a_json_round_trip() -> None:
    history = ProcedureHistory({S.CREATED: 1.5, S.FAILED: 2.5}, "Traceback ...", "boom")
    assert ProcedureHistory.from_json(history.to_json()) == history


def test_procedure_input_reads_missing_keys_as_no_arguments() -> None:
    assert ProcedureInput.from_json({}) == ProcedureInput()
    assert ProcedureInput.from_json({"args": [1, "a"]}).args == (1, "a")


def test_subarray_id_comes_from_the_init_keyword_arguments() -> None:
    assert new_procedure().subarray_id == 3
    assert Procedure(1, "file:///s.py", ProcedureInput()).subarray_id is None
