"""Which procedures OET keeps, and what becomes of them when the server stops.

OET keeps the newest ``max_procedures`` procedures (10 by default, as the user
docs say), dropping the oldest finished ones first and never a running one.
Records live in SQLite, so they survive a restart; a procedure that was live
when its server died is reported as ended, never left RUNNING.
"""

import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server, wait_for
from tests.procedures import (
    QUICK,
    SLEEPER,
    SWALLOWS_STOP,
    create_id,
    get,
    pid_of,
    run_until,
    slow_init,
    wait_for_runners,
)

pytestmark = pytest.mark.e2e


def listed_ids(api: httpx.Client) -> list[int]:
    """The IDs of the procedures the server lists, oldest first."""
    response = api.get("/procedures")
    assert response.status_code == 200, response.text
    return [pid_of(p) for p in response.json()["procedures"]]


def is_running(pid: int) -> bool:
    """True while ``pid`` is a live (not zombie) runner process."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return state not in ("Z", "X") and b"oet.runner" in cmdline


def crash(server: Server, runners: int, within: float) -> None:
    """SIGKILL ``server`` once it has ``runners`` runners; wait up to ``within`` s for them to exit.

    A runner notices its supervisor is gone (its stdin closes) and does not linger.
    """
    orphans = wait_for_runners(server, runners)
    server.stop(signal.SIGKILL)
    wait_for(lambda: not any(map(is_running, orphans)), within, "orphaned runners to exit")


# -- retention ------------------------------------------------------------------


def test_the_ten_newest_are_kept_and_the_oldest_finished_one_is_dropped(
    api: httpx.Client, script: Callable[[str], str]
) -> None:
    quick = script(QUICK)
    assert run_until(api, quick, "COMPLETED") == 1
    assert run_until(api, quick, "COMPLETED") == 2
    for expected in range(3, 11):
        assert create_id(api, quick) == expected
    assert listed_ids(api) == list(range(1, 11))

    assert create_id(api, quick) == 11

    assert listed_ids(api) == list(range(2, 12))
    missing = api.get("/procedures/1")
    assert missing.status_code == 404
    assert missing.json()["Message"] == "No information available for PID=1"
    assert get(api, 2)["state"] == "COMPLETED"
    assert get(api, 11)["state"] == "CREATED"


def test_ids_of_dropped_procedures_are_never_reused(
    make_server: Callable[..., Server], script: Callable[[str], str]
) -> None:
    server = make_server(env={"OET_MAX_PROCEDURES": "2"})
    quick = script(QUICK)
    with server.client() as api:
        ids = [run_until(api, quick, "COMPLETED") for _ in range(5)]
        assert ids == [1, 2, 3, 4, 5]
        assert listed_ids(api) == [4, 5]
    server.stop()

    again = make_server(env={"OET_MAX_PROCEDURES": "2"}, db_path=server.db_path)
    with again.client() as api:
        assert listed_ids(api) == [4, 5]
        assert create_id(api, quick) == 6
        assert listed_ids(api) == [5, 6]


def test_the_max_procedures_setting_is_honoured(
    make_server: Callable[..., Server], script: Callable[[str], str]
) -> None:
    server = make_server(env={"OET_MAX_PROCEDURES": "3"})
    quick = script(QUICK)
    with server.client() as api:
        for _ in range(5):
            create_id(api, quick)

        assert listed_ids(api) == [3, 4, 5]
        for dropped in (1, 2):
            assert api.get(f"/procedures/{dropped}").status_code == 404
        # The dropped procedures' runners were ended with them.
        wait_for_runners(server, 3)


def test_a_running_procedure_is_never_dropped(
    make_server: Callable[..., Server], script: Callable[[str], str]
) -> None:
    server = make_server(env={"OET_MAX_PROCEDURES": "3"})
    quick = script(QUICK)
    with server.client() as api:
        finished = run_until(api, quick, "COMPLETED")
        running = run_until(api, script(SLEEPER), "RUNNING")
        created = create_id(api, quick)
        assert listed_ids(api) == [finished, running, created]

        newest = create_id(api, quick)
        assert listed_ids(api) == [running, created, newest]

        # Only unfinished ones are left: the oldest that is not running goes.
        newer = create_id(api, quick)
        assert listed_ids(api) == [running, newest, newer]
        assert get(api, running)["state"] == "RUNNING"


def test_create_is_refused_when_only_a_running_procedure_could_be_dropped(
    make_server: Callable[..., Server], script: Callable[[str], str]
) -> None:
    server = make_server(env={"OET_MAX_PROCEDURES": "1"})
    with server.client() as api:
        running = run_until(api, script(SLEEPER), "RUNNING")

        response = api.post("/procedures", json={"script_uri": script(QUICK)})

        assert response.status_code == 409, response.text
        assert set(response.json()) == {"error", "type", "Message"}
        assert response.json()["type"] == "StateConflict"
        assert listed_ids(api) == [running]
        assert get(api, running)["state"] == "RUNNING"


def test_a_procedure_still_running_its_init_is_never_dropped(
    make_server: Callable[..., Server], script: Callable[[str], str]
) -> None:
    server = make_server(env={"OET_MAX_PROCEDURES": "1"})
    slow_init_uri = script(slow_init(1.5))
    with ThreadPoolExecutor(1) as pool, server.client() as api:
        first = pool.submit(api.post, "/procedures", json={"script_uri": slow_init_uri})
        wait_for(
            lambda: (
                [p["state"] for p in api.get("/procedures").json()["procedures"]]
                == ["INITIALISING"]
            ),
            10,
            "the first procedure to be in its init",
        )

        second = api.post("/procedures", json={"script_uri": script(QUICK)})

        # Dropping it would kill its init() half way, and answer its create with a
        # procedure that no longer exists.
        assert second.status_code == 409, second.text
        assert second.json()["type"] == "StateConflict"
        created = first.result(timeout=30)
        assert created.status_code == 201, created.text
        assert created.json()["procedure"]["state"] == "CREATED"
        assert listed_ids(api) == [1]
        assert get(api, 1)["state"] == "CREATED"


# -- restart --------------------------------------------------------------------------


def test_after_a_server_crash_live_procedures_are_failed_and_finished_ones_kept(
    make_server: Callable[..., Server], script: Callable[[str], str]
) -> None:
    first = make_server()
    with first.client() as api:
        completed = run_until(api, script(QUICK), "COMPLETED")
        before = get(api, completed)
        created = create_id(api, script(QUICK))
        running = run_until(api, script(SLEEPER), "RUNNING")
    # The CREATED and the RUNNING procedures' runners; the COMPLETED one's has exited.
    crash(first, runners=2, within=10)

    second = make_server(db_path=first.db_path)
    with second.client() as api:
        assert listed_ids(api) == [completed, created, running]
        after = get(api, completed)
        assert {**after, "uri": None} == {**before, "uri": None}
        assert after["uri"] == f"{second.procedures}/{completed}"
        for pid, was in ((created, "CREATED"), (running, "RUNNING")):
            procedure = get(api, pid)
            assert procedure["state"] == "FAILED"
            reason = procedure["history"]["reason"]
            assert "server stopped" in reason
            assert was in reason
            assert was in procedure["history"]["process_states"]
            assert "FAILED" in procedure["history"]["process_states"]
        # The crash did not make the new server reuse an ID.
        assert create_id(api, script(QUICK)) == running + 1


def test_a_graceful_stop_ends_the_running_procedure_stopped_with_a_reason(
    make_server: Callable[..., Server], script: Callable[[str], str]
) -> None:
    first = make_server()
    with first.client() as api:
        created = create_id(api, script(QUICK))
        running = run_until(api, script(SLEEPER), "RUNNING")
    runners = wait_for_runners(first, 2)

    first.stop(signal.SIGTERM)

    assert not any(is_running(pid) for pid in runners)
    second = make_server(db_path=first.db_path)
    with second.client() as api:
        for pid in (created, running):
            procedure = get(api, pid)
            assert procedure["state"] == "STOPPED"
            assert "shut down" in procedure["history"]["reason"]
            assert "STOPPED" in procedure["history"]["process_states"]
        assert "RUNNING" in get(api, running)["history"]["process_states"]


def test_no_procedure_is_running_after_any_restart(
    make_server: Callable[..., Server], script: Callable[[str], str]
) -> None:
    db_path = None
    for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGKILL):
        server = make_server(db_path=db_path)
        db_path = server.db_path
        with server.client() as api:
            run_until(api, script(SLEEPER), "RUNNING")
        server.stop(sig)

    last = make_server(db_path=db_path)
    with last.client() as api:
        states = [p["state"] for p in api.get("/procedures").json()["procedures"]]
    assert states == ["FAILED", "STOPPED", "FAILED"]


def test_a_runner_whose_script_ignores_stops_ends_soon_after_a_server_crash(
    make_server: Callable[..., Server], script: Callable[[str], str]
) -> None:
    server = make_server(env={"OET_STOP_GRACE": "1"})
    with server.client() as api:
        pid = run_until(api, script(SWALLOWS_STOP), "RUNNING")
    crash(server, runners=1, within=8)

    again = make_server(db_path=server.db_path)
    with again.client() as api:
        assert get(api, pid)["state"] == "FAILED"
