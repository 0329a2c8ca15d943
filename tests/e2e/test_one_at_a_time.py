"""Only one procedure runs at a time, on both backends.

The user docs allow one running script per OET: a start while another
procedure runs is refused with 409 and changes nothing, and the next one may
start as soon as the running one has ended, however it ended. On Kubernetes the
rule holds through the API server (the running Lease, docs/kubernetes.md), so
these tests run on both backends with the same assertions (``both_backends``).
"""

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server
from tests.procedures import (
    QUICK,
    SLEEPER,
    create_id,
    get,
    run_until,
    start,
    state_of,
    stop,
    wait_for_state,
    written_json,
)

pytestmark = [pytest.mark.e2e, pytest.mark.both_backends]

# Writes the keyword arguments run() got beside itself, so the test sees it ran.
RECORDS_RUN = """
import json
import pathlib


def run(**kwargs):
    pathlib.Path(__file__).with_suffix(".run.json").write_text(json.dumps(kwargs))
"""

RAISES = """
def run():
    raise RuntimeError("the script failed")
"""


def recorded_run(uri: str) -> object:
    """What run() of the RECORDS_RUN script at ``uri`` was called with."""
    path = Path(uri.removeprefix("file://")).with_suffix(".run.json")
    return written_json(path, "the script's record of its run() call", timeout=60)


def refused_start(api: httpx.Client, pid: int) -> str:
    """Start ``pid``, which must be refused as a conflict with the documented body; its Message."""
    response = api.put(f"/procedures/{pid}", json={"state": "RUNNING"})
    assert response.status_code == 409, response.text
    body = response.json()
    assert set(body) == {"error", "type", "Message"}
    assert body["error"] == "409 Conflict"
    assert body["type"] == "StateConflict"
    message: str = body["Message"]
    return message


def test_a_start_while_another_procedure_runs_is_refused_and_changes_nothing(
    api: httpx.Client, script: Callable[[str], str]
) -> None:
    waiting = create_id(api, script(QUICK))
    running = run_until(api, script(SLEEPER), "RUNNING")
    before = get(api, waiting)

    message = refused_start(api, waiting)

    assert f"Procedure {running} is RUNNING" in message
    assert get(api, waiting) == before
    assert state_of(api, running) == "RUNNING"


def test_a_procedure_can_start_once_the_running_one_has_stopped(
    api: httpx.Client, script: Callable[[str], str]
) -> None:
    first = create_id(api, script(SLEEPER))
    second_uri = script(RECORDS_RUN)
    second = create_id(api, second_uri)
    start(api, first)
    stop(api, first)

    start(api, second, after=first)

    wait_for_state(api, second, "COMPLETED", timeout=60)
    assert recorded_run(second_uri) == {"after": first}
    assert state_of(api, first) == "STOPPED"


@pytest.mark.parametrize(
    ("source", "ended"), [(QUICK, "COMPLETED"), (RAISES, "FAILED")], ids=["completed", "failed"]
)
def test_a_procedure_can_start_once_the_running_one_has_ended_by_itself(
    api: httpx.Client, script: Callable[[str], str], source: str, ended: str
) -> None:
    second_uri = script(RECORDS_RUN)
    second = create_id(api, second_uri)
    first = run_until(api, script(source), ended)

    start(api, second, after=first)

    wait_for_state(api, second, "COMPLETED", timeout=60)
    assert recorded_run(second_uri) == {"after": first}


def test_when_starts_arrive_together_exactly_one_procedure_runs(
    server: Server, api: httpx.Client, script: Callable[[str], str]
) -> None:
    pids = [create_id(api, script(SLEEPER)) for _ in range(3)]

    def put_running(pid: int) -> httpx.Response:
        return httpx.put(f"{server.procedures}/{pid}", json={"state": "RUNNING"}, timeout=60)

    with ThreadPoolExecutor(len(pids)) as pool:
        answers = list(pool.map(put_running, pids))

    assert sorted(a.status_code for a in answers) == [200, 409, 409], [a.text for a in answers]
    [winner] = [pid for pid, a in zip(pids, answers, strict=True) if a.status_code == 200]
    for answer in answers:
        if answer.status_code == 409:
            assert answer.json()["type"] == "StateConflict"
    wait_for_state(api, winner, "RUNNING", timeout=60)
    assert sorted(state_of(api, pid) for pid in pids) == ["CREATED", "CREATED", "RUNNING"]
