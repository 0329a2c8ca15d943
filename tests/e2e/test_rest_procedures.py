"""The procedures resources of the REST API, end to end against a real server.

Every request goes over HTTP to an ``oet-rest`` subprocess, and every script
runs in a real runner subprocess. Scripts record the arguments they receive in
a JSON file next to themselves, so the tests can see what reached the script.
"""

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Server
from tests.procedures import (
    FINAL_STATES,
    QUICK,
    SLEEPER,
    SWALLOWS_STOP,
    create,
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

pytestmark = [pytest.mark.e2e, pytest.mark.both_backends]

RECORDER = """
import json
import pathlib

CALLS = pathlib.Path(__file__).with_suffix(".calls.json")


def _record(name, args, kwargs):
    calls = json.loads(CALLS.read_text()) if CALLS.exists() else []
    calls.append({"function": name, "args": list(args), "kwargs": kwargs})
    CALLS.write_text(json.dumps(calls))


def init(*args, **kwargs):
    _record("init", args, kwargs)


def run(*args, **kwargs):
    _record("run", args, kwargs)
"""

MAIN_ONLY = """
import json
import pathlib


def main(*args, **kwargs):
    out = pathlib.Path(__file__).with_suffix(".calls.json")
    out.write_text(json.dumps([{"function": "main", "args": list(args), "kwargs": kwargs}]))
"""

RUN_RAISES = """
def run():
    raise RuntimeError("the dish refused to move to az=370")
"""

INIT_RAISES = """
def init(subarray_id=1):
    raise ValueError(f"subarray {subarray_id} is not in the configuration")


def run():
    pass
"""

EXITS_HARD = """
import os


def run():
    os._exit(3)
"""


def calls_of(uri: str) -> list[dict[str, Any]]:
    """What the recording script at ``uri`` was called with, in order."""
    calls = Path(uri.removeprefix("file://")).with_suffix(".calls.json")
    if not calls.exists():
        return []
    result: list[dict[str, Any]] = json.loads(calls.read_text())
    return result


def run_to_completion(api: httpx.Client, pid: int, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Start ``pid`` with these run() arguments and wait until it completes; what start answered."""
    started = start(api, pid, *args, **kwargs)
    wait_for_state(api, pid, "COMPLETED")
    return started


def failed_run(api: httpx.Client, script_uri: str) -> dict[str, Any]:
    """Create and start a procedure from ``script_uri``; the procedure once it has FAILED."""
    return get(api, run_until(api, script_uri, "FAILED"))


# -- creating ---------------------------------------------------------------


def test_create_answers_201_with_the_documented_procedure(
    api: httpx.Client, server: Server, script: Callable[[str], str]
) -> None:
    uri = script(RECORDER)
    response = api.post(
        "/procedures",
        json={
            "script_uri": uri,
            "script_args": {
                "init": {"kwargs": {"subarray_id": 1, "sb_uri": "file:///path/to/sb_123.json"}}
            },
        },
    )

    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert set(response.json()) == {"procedure"}
    procedure = response.json()["procedure"]
    assert procedure["uri"] == f"{server.procedures}/1"
    assert procedure["script_uri"] == uri
    assert procedure["script_args"] == {
        "init": {"args": [], "kwargs": {"subarray_id": 1, "sb_uri": "file:///path/to/sb_123.json"}},
        "run": {"args": [], "kwargs": {}},
    }
    assert procedure["state"] == "CREATED"
    history = procedure["history"]
    assert history["stacktrace"] is None
    assert "CREATED" in history["process_states"]
    assert isinstance(history["process_states"]["CREATED"], float)
    assert set(history["process_states"]) <= {"INITIALISING", "CREATED"}


def test_create_keeps_the_json_types_of_every_argument(
    api: httpx.Client, script: Callable[[str], str]
) -> None:
    uri = script(RECORDER)
    args = [1, 2.5, True, False, None, "1", "", [1, [2, [3]]], {"a": {"b": [None, 0.0]}}]
    kwargs = {
        "subarray_id": "1",
        "count": 0,
        "ratio": -1e-3,
        "simulate": False,
        "nothing": None,
        "dishes": [1, 2, 3],
        "nested": {"list": [{"x": 1}], "empty": {}},
        "unicode": "Ω≈ç√",
    }
    run_args = {"args": [3.0, "3"], "kwargs": {"scan_duration": 14.0, "flags": [True, None]}}

    created = create(api, uri, init={"args": args, "kwargs": kwargs}, run=run_args)

    assert created["script_args"]["init"] == {"args": args, "kwargs": kwargs}
    assert created["script_args"]["run"] == run_args
    assert get(api, pid_of(created))["script_args"] == created["script_args"]
    # What the script's init received, round-tripped through JSON again.
    assert calls_of(uri) == [{"function": "init", "args": args, "kwargs": kwargs}]


def test_init_receives_the_create_arguments_before_create_answers(
    api: httpx.Client, script: Callable[[str], str]
) -> None:
    uri = script(RECORDER)

    create(api, uri, init={"args": ["hello"], "kwargs": {"verbose": True, "subarray_id": 2}})

    assert calls_of(uri) == [
        {"function": "init", "args": ["hello"], "kwargs": {"verbose": True, "subarray_id": 2}}
    ]


def test_a_script_whose_init_raises_fails_at_create_with_its_stacktrace(
    api: httpx.Client, script: Callable[[str], str]
) -> None:
    uri = script(INIT_RAISES)

    response = api.post(
        "/procedures",
        json={"script_uri": uri, "script_args": {"init": {"kwargs": {"subarray_id": 7}}}},
    )

    # The procedure exists (its failure is part of the record) but it has failed,
    # and create answers only once init() has.
    assert response.status_code == 201, response.text
    procedure = response.json()["procedure"]
    assert procedure["state"] == "FAILED"
    assert get(api, pid_of(procedure)) == procedure
    assert "ValueError" in procedure["history"]["stacktrace"]
    assert "subarray 7 is not in the configuration" in procedure["history"]["stacktrace"]
    assert "CREATED" not in procedure["history"]["process_states"]
    assert "FAILED" in procedure["history"]["process_states"]
    conflict = api.put(f"/procedures/{pid_of(procedure)}", json={"state": "RUNNING"})
    assert conflict.status_code == 409, conflict.text


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("def run(:\n    pass\n", "SyntaxError"),
        ("import no_such_module_for_oet\n", "ModuleNotFoundError"),
        ("def init():\n    pass\n", "neither run() nor main()"),
    ],
    ids=["syntax error", "bad import", "no entry point"],
)
def test_a_script_that_cannot_be_loaded_fails_at_create_saying_why(
    api: httpx.Client, script: Callable[[str], str], source: str, error: str
) -> None:
    failed = create(api, script(source))

    assert failed["state"] == "FAILED"
    assert error in failed["history"]["stacktrace"]
    assert "CREATED" not in failed["history"]["process_states"]


def test_the_relative_script_uri_of_the_user_docs_is_loaded_from_the_server_directory(
    api: httpx.Client,
) -> None:
    procedure = create(api, "file://scripts/hello_world.py", init={"kwargs": {"subarray_id": 1}})

    assert procedure["state"] == "CREATED"
    assert procedure["script_uri"] == "file://scripts/hello_world.py"
    run_to_completion(api, pid_of(procedure), "bob")


def test_a_procedure_still_in_init_cannot_start_but_can_be_stopped(
    make_server: Callable[..., Server], script: Callable[[str], str]
) -> None:
    server = make_server(env={"OET_CREATE_WAIT": "0.2"})
    with server.client() as api:
        procedure = create(api, script(slow_init(60)))
        pid = pid_of(procedure)
        assert procedure["state"] not in {"CREATED", *FINAL_STATES}

        refused = api.put(f"/procedures/{pid}", json={"state": "RUNNING"})
        assert refused.status_code == 409, refused.text
        assert "init()" in refused.json()["Message"]

        stopped = api.put(f"/procedures/{pid}", json={"state": "STOPPED"})
        assert stopped.status_code == 200, stopped.text
        assert stopped.json() == {"abort_message": f"Successfully stopped script with ID {pid}"}
        assert get(api, pid)["state"] == "STOPPED"
        wait_for_runners(server, 0, timeout=5)


# -- listing ------------------------------------------------------------------


def test_list_returns_every_procedure_oldest_first(
    api: httpx.Client, server: Server, script: Callable[[str], str]
) -> None:
    assert api.get("/procedures").json() == {"procedures": []}
    uris = [script(RECORDER) for _ in range(3)]
    created = [create(api, uri, init={"args": [n]}) for n, uri in enumerate(uris)]

    response = api.get("/procedures")

    assert response.status_code == 200
    assert set(response.json()) == {"procedures"}
    listed = response.json()["procedures"]
    assert [p["script_uri"] for p in listed] == uris
    assert [p["uri"] for p in listed] == [f"{server.procedures}/{n}" for n in (1, 2, 3)]
    assert listed == created


def test_repeated_lists_follow_every_change_and_the_address_each_client_used(
    api: httpx.Client, server: Server, script: Callable[[str], str]
) -> None:
    pid = create_id(api, script(SLEEPER))
    assert [p["state"] for p in api.get("/procedures").json()["procedures"]] == ["CREATED"]
    assert [p["state"] for p in api.get("/procedures").json()["procedures"]] == ["CREATED"]

    start(api, pid)
    assert [p["state"] for p in api.get("/procedures").json()["procedures"]] == ["RUNNING"]
    stop(api, pid)
    listed = api.get("/procedures").json()["procedures"]
    assert [p["state"] for p in listed] == ["STOPPED"]
    assert listed == [get(api, pid)]

    for host in ("oet.example.org", "localhost:5000", "oet.example.org"):
        answer = api.get("/procedures", headers={"Host": host})
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/json"
        assert [p["uri"] for p in answer.json()["procedures"]] == [
            f"http://{host}/api/v1.0/procedures/{pid}"
        ]


def test_get_returns_the_procedure_its_uri_points_to(
    api: httpx.Client, script: Callable[[str], str]
) -> None:
    first = create(api, script(RECORDER), init={"args": ["first"]})
    second = create(api, script(RECORDER), init={"args": ["second"]})

    for procedure in (first, second):
        response = httpx.get(procedure["uri"], timeout=10)
        assert response.status_code == 200
        assert response.json() == {"procedure": procedure}


def test_the_api_v1_alias_serves_the_same_procedures(
    api: httpx.Client, server: Server, script: Callable[[str], str]
) -> None:
    alias = f"{server.base}/api/v1/procedures"
    created = httpx.post(alias, json={"script_uri": script(SLEEPER)}, timeout=30)
    assert created.status_code == 201, created.text
    pid = pid_of(created.json()["procedure"])

    assert httpx.get(alias, timeout=10).json() == api.get("/procedures").json()
    assert httpx.get(f"{alias}/{pid}", timeout=10).json() == api.get(f"/procedures/{pid}").json()
    started = httpx.put(f"{alias}/{pid}", json={"state": "RUNNING"}, timeout=30)
    assert started.status_code == 200, started.text
    stopped = httpx.put(f"{alias}/{pid}", json={"state": "STOPPED"}, timeout=30)
    assert stopped.status_code == 200, stopped.text
    assert get(api, pid)["state"] == "STOPPED"
    missing = httpx.get(f"{alias}/99", timeout=10)
    assert missing.status_code == 404
    assert missing.json()["type"] == "ResourceNotFound"


# -- starting -------------------------------------------------------------------


def test_start_runs_the_script_with_the_run_arguments_until_completed(
    api: httpx.Client, script: Callable[[str], str]
) -> None:
    uri = script(RECORDER)
    pid = create_id(api, uri, subarray_id=1)

    response = api.put(
        f"/procedures/{pid}",
        json={"state": "RUNNING", "script_args": {"run": {"kwargs": {"scan_duration": 14.0}}}},
    )

    assert response.status_code == 200, response.text
    assert set(response.json()) == {"procedure"}
    started = response.json()["procedure"]
    assert started["state"] in {"RUNNING", "COMPLETED"}
    assert started["script_args"]["run"] == {"args": [], "kwargs": {"scan_duration": 14.0}}
    assert "RUNNING" in started["history"]["process_states"]
    done = wait_for_state(api, pid, "COMPLETED")
    states = done["history"]["process_states"]
    assert states["CREATED"] <= states["RUNNING"] <= states["COMPLETED"]
    assert done["history"]["stacktrace"] is None
    assert done["script_args"]["run"] == {"args": [], "kwargs": {"scan_duration": 14.0}}
    assert calls_of(uri) == [
        {"function": "init", "args": [], "kwargs": {"subarray_id": 1}},
        {"function": "run", "args": [], "kwargs": {"scan_duration": 14.0}},
    ]


def test_start_without_run_arguments_uses_those_given_at_create(
    api: httpx.Client, script: Callable[[str], str]
) -> None:
    uri = script(RECORDER)
    run = {"args": ["bob"], "kwargs": {"simulate": False}}
    pid = pid_of(create(api, uri, run=run))

    run_to_completion(api, pid)

    assert calls_of(uri)[-1] == {"function": "run", **run}


def test_run_arguments_given_at_start_replace_those_given_at_create(
    api: httpx.Client, script: Callable[[str], str]
) -> None:
    uri = script(RECORDER)
    pid = pid_of(create(api, uri, run={"args": ["old"], "kwargs": {"old": 1}}))

    started = run_to_completion(api, pid, 1, "1", None, [2.0], new={"deep": [True]})

    expected = {"args": [1, "1", None, [2.0]], "kwargs": {"new": {"deep": [True]}}}
    assert started["script_args"]["run"] == expected
    assert calls_of(uri)[-1] == {"function": "run", **expected}


def test_main_is_run_when_the_script_has_no_run(
    api: httpx.Client, script: Callable[[str], str]
) -> None:
    uri = script(MAIN_ONLY)
    pid = create_id(api, uri)

    run_to_completion(api, pid, "sb.json", subarray_id=3)

    assert calls_of(uri) == [
        {"function": "main", "args": ["sb.json"], "kwargs": {"subarray_id": 3}}
    ]


def test_a_script_that_raises_fails_with_a_stacktrace_naming_the_error(
    api: httpx.Client, script: Callable[[str], str]
) -> None:
    failed = failed_run(api, script(RUN_RAISES))

    stacktrace = failed["history"]["stacktrace"]
    assert "RuntimeError" in stacktrace
    assert "the dish refused to move to az=370" in stacktrace
    assert "Traceback" in stacktrace
    assert {"CREATED", "RUNNING", "FAILED"} <= set(failed["history"]["process_states"])


# -- stopping ---------------------------------------------------------------------


def test_stop_without_abort_stops_a_running_script(
    api: httpx.Client, script: Callable[[str], str]
) -> None:
    pid = run_until(api, script(SLEEPER), "RUNNING")

    response = api.put(f"/procedures/{pid}", json={"state": "STOPPED", "abort": False})

    assert response.status_code == 200, response.text
    assert response.json() == {"abort_message": f"Successfully stopped script with ID {pid}"}
    stopped = get(api, pid)
    assert stopped["state"] == "STOPPED"
    assert {"CREATED", "RUNNING", "STOPPED"} <= set(stopped["history"]["process_states"])
    assert stopped["history"]["stacktrace"] is None


def test_stop_defaults_to_no_abort(api: httpx.Client, script: Callable[[str], str]) -> None:
    pid = create_id(api, script(SLEEPER), subarray_id=1)
    start(api, pid)

    response = api.put(f"/procedures/{pid}", json={"state": "STOPPED"})

    assert response.status_code == 200, response.text
    assert response.json() == {"abort_message": f"Successfully stopped script with ID {pid}"}
    assert get(api, pid)["state"] == "STOPPED"


def test_stop_with_abort_reports_that_no_subarray_could_be_aborted(
    api: httpx.Client, script: Callable[[str], str]
) -> None:
    pid = create_id(api, script(SLEEPER))
    start(api, pid)

    response = api.put(f"/procedures/{pid}", json={"state": "STOPPED", "abort": True})

    assert response.status_code == 200, response.text
    message = response.json()["abort_message"]
    assert message.startswith(
        f"Stopped script with ID {pid}, but subarray activity was not aborted"
    )
    assert "subarray_id" in message
    stopped = get(api, pid)
    assert stopped["state"] == "STOPPED"
    assert "subarray_id" in stopped["history"]["reason"]


@pytest.mark.parametrize("abort", [False, True])
def test_stop_of_a_created_procedure_is_refused_and_leaves_it_ready_to_start(
    api: httpx.Client, script: Callable[[str], str], abort: bool
) -> None:
    uri = script(RECORDER)
    pid = create_id(api, uri)

    response = api.put(f"/procedures/{pid}", json={"state": "STOPPED", "abort": abort})

    assert response.status_code == 409, response.text
    body = response.json()
    assert body["type"] == "StateConflict"
    assert f"Procedure {pid} is CREATED: its script is not running" in body["Message"]
    assert f"DELETE /procedures/{pid}" in body["Message"]
    assert get(api, pid)["state"] == "CREATED"
    start(api, pid)
    wait_for_state(api, pid, "COMPLETED")
    assert [call["function"] for call in calls_of(uri)] == ["init", "run"]


def test_discard_forgets_a_created_procedure_and_ends_its_runner_without_running_it(
    server: Server, api: httpx.Client, script: Callable[[str], str]
) -> None:
    uri = script(RECORDER)
    pid = create_id(api, uri)
    wait_for_runners(server, 1)

    response = api.delete(f"/procedures/{pid}")

    assert response.status_code == 200, response.text
    assert response.json()["procedure"]["state"] == "CREATED"
    assert api.get(f"/procedures/{pid}").status_code == 404
    wait_for_runners(server, 0)
    assert [call["function"] for call in calls_of(uri)] == ["init"]


def test_discard_forgets_a_finished_procedure(
    api: httpx.Client, script: Callable[[str], str]
) -> None:
    pid = run_until(api, script(QUICK), "COMPLETED")
    assert api.delete(f"/procedures/{pid}").status_code == 200
    assert api.get("/procedures").json() == {"procedures": []}


def test_discard_of_a_running_procedure_is_refused_and_it_keeps_running(
    api: httpx.Client, script: Callable[[str], str]
) -> None:
    pid = run_until(api, script(SLEEPER), "RUNNING")

    response = api.delete(f"/procedures/{pid}")

    assert response.status_code == 409, response.text
    assert "stop it first" in response.json()["Message"]
    assert get(api, pid)["state"] == "RUNNING"


def test_a_procedure_can_start_once_the_running_one_has_stopped(
    api: httpx.Client, script: Callable[[str], str]
) -> None:
    first = create_id(api, script(SLEEPER))
    second_uri = script(RECORDER)
    second = create_id(api, second_uri)
    start(api, first)
    stop(api, first)

    run_to_completion(api, second, after=first)

    assert calls_of(second_uri)[-1] == {"function": "run", "args": [], "kwargs": {"after": first}}


# -- procedures always end -----------------------------------------------------------


def test_a_script_that_exits_the_runner_fails_with_the_exit_code(
    api: httpx.Client, script: Callable[[str], str]
) -> None:
    failed = failed_run(api, script(EXITS_HARD))

    assert "exited with code 3" in failed["history"]["reason"]


@pytest.mark.embedded_only(
    "a runner is a child process here; Pod and container deaths: tests/k8s/test_operator.py"
)
def test_a_killed_runner_fails_its_procedure_with_the_signal(
    api: httpx.Client, server: Server, script: Callable[[str], str]
) -> None:
    pid = run_until(api, script(SLEEPER), "RUNNING")
    (runner,) = runner_pids(server)

    os.kill(runner, signal.SIGKILL)

    failed = wait_for_state(api, pid, "FAILED")
    assert "signal 9" in failed["history"]["reason"]


@pytest.mark.embedded_only("stop_grace is the server's setting here, the operator's on Kubernetes")
def test_a_script_that_swallows_the_stop_is_killed_after_the_grace_period(
    make_server: Callable[..., Server], script: Callable[[str], str]
) -> None:
    server = make_server(env={"OET_STOP_GRACE": "1"})
    with server.client() as api:
        pid = run_until(api, script(SWALLOWS_STOP), "RUNNING")

        response = api.put(f"/procedures/{pid}", json={"state": "STOPPED"}, timeout=20)

        assert response.status_code == 200, response.text
        assert response.json() == {"abort_message": f"Successfully stopped script with ID {pid}"}
        stopped = wait_for_state(api, pid, "STOPPED", timeout=5)
        states = stopped["history"]["process_states"]
        assert states["STOPPED"] - states["STOPPING"] < 5
        assert "killed" in stopped["history"]["reason"]
        assert "1 s" in stopped["history"]["reason"]
        wait_for_runners(server, 0, timeout=5)
