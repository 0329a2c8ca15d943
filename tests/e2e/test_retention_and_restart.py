"""Which procedures OET keeps, and what becomes of them when the server stops.

OET keeps the newest ``max_procedures`` procedures (10 by default, as the user
docs say), dropping the oldest finished ones first and never a running one.
The retention tests run on both backends (``both_backends``): on Kubernetes
the API makes room at create and the operator deletes finished Procedures
beyond the limit, and the answers must be the embedded backend's.

Restarts: with the embedded backend, records live in SQLite, so they survive a
restart, and a procedure that was live when its server died is reported as
ended, never left RUNNING (its runner was the server's child). On Kubernetes
the API server holds no state and runners are not its children: a killed API
changes no procedure, and its successor lists the same ones and resumes the
stream from ``Last-Event-ID`` (docs/kubernetes.md). Tests that show the
embedded server's own crash handling stay embedded-only.
"""

import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server, wait_for
from tests.k8s.oet_operator import script_events
from tests.procedures import (
    QUICK,
    SLEEPER,
    SWALLOWS_STOP,
    create_id,
    get,
    pid_of,
    run_until,
    runner_pids,
    slow_init,
    start,
    stop,
    wait_for_runners,
    wait_for_state,
)
from tests.sse import EventStream

pytestmark = pytest.mark.e2e
both_backends = pytest.mark.both_backends

RunnerIds = Callable[[Server], set[int]]


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


@pytest.fixture
def live_runners(backend: str, request: pytest.FixtureRequest) -> RunnerIds:
    """The IDs of the procedures whose runner process is alive on this machine.

    Embedded: the server's runner subprocesses (each names itself
    ``oet-runner-<id>``). Kubernetes: the runner processes of the stack's
    namespace; runner Pods run on this machine, so their processes are here too.
    """
    if backend == "kubernetes":
        stack = request.getfixturevalue("kube_stack")
        return lambda _server: stack.live_runners()

    def of_server(server: Server) -> set[int]:
        ids = set()
        for pid in runner_pids(server):
            try:
                ids.add(int(Path(f"/proc/{pid}/comm").read_text().strip().split("-")[-1]))
            except (OSError, ValueError):
                continue
        return ids

    return of_server


# -- retention ------------------------------------------------------------------


@both_backends
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


@both_backends
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


@both_backends
def test_the_max_procedures_setting_is_honoured(
    make_server: Callable[..., Server], script: Callable[[str], str], live_runners: RunnerIds
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
        wait_for(lambda: live_runners(server) == {3, 4, 5}, 60, "the runners of 3, 4 and 5 only")


@both_backends
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


@both_backends
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


@both_backends
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


# Embedded only: on Kubernetes a killed API ends no procedure (see the both-backend test below).
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


# Embedded only: on Kubernetes the API's shutdown leaves runner Pods running, by design.
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


# Embedded only: on Kubernetes procedures outlive the API by design; runners end them.
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


# Embedded only: runner subprocesses are the server's children only on this backend.
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


# -- the API killed and restarted, on both backends ---------------------------------

# Publishes ``test.running``; once a ``.go`` file is beside it, ``test.went``;
# once a ``.finish`` file is there too, returns: the test says when it moves on.
WAITS_FOR_FILES = """
import pathlib
import time
from oet import scripting

HERE = pathlib.Path(__file__)


def wait_for(suffix):
    while not HERE.with_suffix(suffix).exists():
        time.sleep(0.1)


def run():
    scripting.publish("test.running")
    wait_for(".go")
    scripting.publish("test.went")
    wait_for(".finish")
"""


@both_backends
def test_an_api_killed_and_restarted_lists_the_same_procedures(
    make_server: Callable[..., Server], script: Callable[[str], str], backend: str
) -> None:
    first = make_server()
    with first.client() as api:
        completed = run_until(api, script(QUICK), "COMPLETED")
        created = create_id(api, script(QUICK))
        running = run_until(api, script(SLEEPER), "RUNNING")
        before = api.get("/procedures").json()["procedures"]
    first.stop(signal.SIGKILL)

    second = make_server(db_path=first.db_path, port=first.port)

    with second.client() as api:
        after = api.get("/procedures").json()["procedures"]
        assert [pid_of(p) for p in after] == [completed, created, running]
        assert after[0] == before[0]
        if backend == "kubernetes":
            # By design: the runners are Pods, not the API's children; nothing ended.
            assert after == before
            assert stop(api, running) == f"Successfully stopped script with ID {running}"
            start(api, created)
            wait_for_state(api, created, "COMPLETED", timeout=60)
        else:
            # By design: the runners died with their server; they are reported ended.
            assert [p["state"] for p in after[1:]] == ["FAILED", "FAILED"]
        assert create_id(api, script(QUICK)) == running + 1


@both_backends
def test_a_stream_resumed_with_last_event_id_after_an_api_restart(
    make_server: Callable[..., Server],
    script: Callable[[str], str],
    backend: str,
    request: pytest.FixtureRequest,
) -> None:
    first = make_server()
    uri = script(WAITS_FOR_FILES)
    files = Path(uri.removeprefix("file://"))
    with first.client() as api, EventStream(f"{first.api}/stream") as stream:
        pid = create_id(api, uri)
        start(api, pid)
        last = stream.until_topic("test.running", pid, timeout=60)[-1]
    first.stop(signal.SIGKILL)
    # While no API server runs, the script publishes (if it still runs).
    files.with_suffix(".go").touch()
    if backend == "kubernetes":
        namespace = request.getfixturevalue("kube_stack").namespace
        wait_for(
            lambda: any(
                e["reason"] == "test.went" for e in script_events(namespace, f"procedure-{pid}")
            ),
            60,
            "the script's event published while the API was down",
        )

    second = make_server(db_path=first.db_path, port=first.port)

    with second.client() as api, EventStream(f"{second.api}/stream", last.id) as resumed:
        if backend == "kubernetes":
            # Event IDs are the cluster's resourceVersions and script events are kept as
            # Events: the new server replays what the client missed, then goes on live.
            missed = resumed.next(timeout=30)
            assert (missed.topic, missed.procedure_id) == ("test.went", pid)
            assert int(missed.id or "") > int(last.id or "")
            files.with_suffix(".finish").touch()
            rest = resumed.until_topic("procedure.lifecycle.complete", pid, timeout=60)
            assert [m.topic for m in rest if not m.topic.startswith("request.")] == [
                "procedure.lifecycle.complete"
            ]
            assert get(api, pid)["state"] == "COMPLETED"
        else:
            # By design: the embedded server's events live in its memory, and its runner
            # died with it. The client is told to resync, and the list says what became of it.
            assert resumed.next(timeout=30).topic == "stream.resync"
            assert get(api, pid)["state"] == "FAILED"
