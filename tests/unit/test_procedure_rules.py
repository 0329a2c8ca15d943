"""Pure decisions: who may start or stop, who retention drops, what a stop achieved."""

import pytest

from oet.domain import Procedure, ProcedureInput, ProcedureState, StateConflict
from oet.domain.rules import (
    abort_message,
    check_can_discard,
    check_can_start,
    check_can_stop,
    next_to_drop,
)

S = ProcedureState

PATHS = {
    S.INITIALISING: [],
    S.CREATED: [S.CREATED],
    S.RUNNING: [S.CREATED, S.RUNNING],
    S.STOPPING: [S.CREATED, S.RUNNING, S.STOPPING],
    S.STOPPED: [S.CREATED, S.RUNNING, S.STOPPING, S.STOPPED],
    S.COMPLETED: [S.CREATED, S.RUNNING, S.COMPLETED],
    S.FAILED: [S.FAILED],
}


def procedure(pid: int, state: ProcedureState) -> Procedure:
    made = Procedure(pid, f"file:///s{pid}.py", ProcedureInput())
    for step in PATHS[state]:
        made.move_to(step)
    return made


def test_a_created_procedure_may_start_when_nothing_runs() -> None:
    others = [procedure(1, S.COMPLETED), procedure(2, S.CREATED)]
    check_can_start(procedure(3, S.CREATED), others)


@pytest.mark.parametrize("busy", [S.RUNNING, S.STOPPING])
def test_only_one_procedure_may_run_at_a_time(busy: ProcedureState) -> None:
    with pytest.raises(StateConflict, match=f"Procedure 1 is {busy.value}: only one"):
        check_can_start(procedure(2, S.CREATED), [procedure(1, busy)])


@pytest.mark.parametrize(
    ("state", "why"),
    [
        (S.INITIALISING, "still running its init"),
        (S.RUNNING, "already RUNNING"),
        (S.COMPLETED, "a finished procedure cannot start"),
        (S.FAILED, "a finished procedure cannot start"),
    ],
)
def test_a_procedure_that_is_not_created_cannot_start(state: ProcedureState, why: str) -> None:
    with pytest.raises(StateConflict, match=why):
        check_can_start(procedure(1, state), [])


@pytest.mark.parametrize("state", [S.INITIALISING, S.RUNNING])
def test_a_procedure_whose_script_is_executing_can_be_stopped(state: ProcedureState) -> None:
    check_can_stop(procedure(1, state))


def test_a_created_procedure_cannot_be_stopped_and_the_refusal_says_what_to_do() -> None:
    with pytest.raises(StateConflict) as refused:
        check_can_stop(procedure(4, S.CREATED))
    message = str(refused.value)
    assert "Procedure 4 is CREATED: its script is not running" in message
    assert "nothing was aborted" in message
    assert "oet discard --pid=4" in message


@pytest.mark.parametrize("state", [S.CREATED, S.COMPLETED, S.STOPPED, S.FAILED])
def test_a_procedure_whose_script_is_not_executing_can_be_discarded(
    state: ProcedureState,
) -> None:
    check_can_discard(procedure(1, state))


@pytest.mark.parametrize("state", [S.INITIALISING, S.RUNNING, S.STOPPING])
def test_a_procedure_whose_script_is_executing_cannot_be_discarded(
    state: ProcedureState,
) -> None:
    with pytest.raises(StateConflict, match="stop it first"):
        check_can_discard(procedure(1, state))


@pytest.mark.parametrize(
    ("state", "why"),
    [
        (S.STOPPING, "already stopping"),
        (S.COMPLETED, "has ended, so there is nothing to stop and nothing was aborted"),
        (S.STOPPED, "nothing to stop"),
        (S.FAILED, "nothing to stop"),
    ],
)
def test_an_ended_or_stopping_procedure_cannot_be_stopped(state: ProcedureState, why: str) -> None:
    with pytest.raises(StateConflict, match=why):
        check_can_stop(procedure(1, state))


def test_nothing_is_dropped_while_there_is_room() -> None:
    assert next_to_drop([procedure(1, S.COMPLETED)], limit=2) is None


def test_the_oldest_finished_procedure_is_dropped_before_any_idle_one() -> None:
    kept = [procedure(1, S.CREATED), procedure(2, S.FAILED), procedure(3, S.COMPLETED)]
    dropped = next_to_drop(kept, limit=3)
    assert dropped is not None
    assert dropped.id == 2


def test_the_oldest_idle_procedure_is_dropped_when_none_has_finished() -> None:
    kept = [procedure(1, S.RUNNING), procedure(2, S.CREATED), procedure(3, S.CREATED)]
    dropped = next_to_drop(kept, limit=3)
    assert dropped is not None
    assert dropped.id == 2


def test_a_procedure_executing_its_script_is_never_dropped() -> None:
    kept = [procedure(1, S.INITIALISING), procedure(2, S.RUNNING)]
    with pytest.raises(StateConflict, match="none can be dropped"):
        next_to_drop(kept, limit=2)


@pytest.mark.parametrize(
    ("state", "abort", "outcome", "message"),
    [
        (S.STOPPED, False, None, "Successfully stopped script with ID 4"),
        (
            S.STOPPED,
            True,
            (True, "Abort sent to x"),
            "Successfully stopped script with ID 4 and aborted subarray activity",
        ),
        (
            S.STOPPED,
            True,
            (False, "no subarray_id"),
            "Stopped script with ID 4, but subarray activity was not aborted: no subarray_id",
        ),
        (S.COMPLETED, True, None, "Script with ID 4 completed before it could be stopped"),
        (S.FAILED, False, None, "Script with ID 4 failed before it could be stopped"),
    ],
)
def test_the_abort_message_says_what_the_stop_achieved(
    state: ProcedureState, abort: bool, outcome: tuple[bool, str] | None, message: str
) -> None:
    assert abort_message(procedure(4, state), abort, outcome) == message
