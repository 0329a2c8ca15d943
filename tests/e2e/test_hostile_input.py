"""Inputs an outside review used to break the server, each now refused or harmless.

Every test sends what a hostile or careless client could send and checks
that the answer is a clear 4xx (or a harmless 2xx), that nothing was
recorded, and that the server goes on serving everyone else.
"""

import json
import os
import re
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, Server, wait_for
from tests.e2e.test_rest_errors import assert_error
from tests.procedures import (
    QUICK,
    SLEEPER,
    create,
    create_id,
    get,
    pid_of,
    run_until,
    runner_pids,
    start,
    wait_for_state,
)
from tests.sse import EventStream

pytestmark = pytest.mark.e2e

JSON = {"Content-Type": "application/json"}


def listed(api: httpx.Client) -> list[dict[str, object]]:
    response = api.get("/procedures")
    assert response.status_code == 200, response.text
    procedures: list[dict[str, object]] = response.json()["procedures"]
    return procedures


# -- 1. lone surrogates ------------------------------------------------------------


@pytest.mark.parametrize(
    "encoded",
    [b'"\\ud800"', b'"\xed\xa0\x80"', b'{"\\udfff": 1}'],
    ids=["JSON escape", "raw UTF-8 bytes", "in a key"],
)
def test_a_lone_surrogate_is_refused_before_anything_is_recorded(
    make_server: Callable[..., Server], script: Callable[[str], str], encoded: bytes
) -> None:
    server = make_server()
    uri = script(QUICK).encode()
    body = b'{"script_uri": "%s", "script_args": {"init": {"args": [%s]}}}' % (uri, encoded)
    with server.client() as api:
        response = api.post("/procedures", content=body, headers=JSON)

        assert_error(response, 400, "MalformedRequest")
        assert listed(api) == []
    server.stop()
    with make_server(db_path=server.db_path).client() as api:
        assert listed(api) == []


def test_a_stored_record_that_utf8_cannot_carry_does_not_take_the_list_down(
    make_server: Callable[..., Server], script: Callable[[str], str]
) -> None:
    server = make_server()
    with server.client() as api:
        pid = create_id(api, script(QUICK))
        create_id(api, script(QUICK))
    server.stop()
    with sqlite3.connect(server.db_path) as db:  # as an older server could have left it
        (body,) = db.execute("SELECT body FROM procedures WHERE id = ?", (pid,)).fetchone()
        record = json.loads(body)
        record["init"]["args"] = ["\ud800"]
        db.execute("UPDATE procedures SET body = ? WHERE id = ?", (json.dumps(record), pid))

    with make_server(db_path=server.db_path).client() as api:
        assert len(listed(api)) == 2
        assert get(api, pid)["script_args"]["init"]["args"] == ["\ud800"]  # type: ignore[index]


def test_a_script_failing_with_a_lone_surrogate_leaves_the_list_readable(
    server: Server, api: httpx.Client, script: Callable[[str], str]
) -> None:
    uri = script("from oet import scripting\n\ndef run():\n    raise ValueError('\\ud800')\n")
    with EventStream(f"{server.api}/stream") as stream:
        pid = create_id(api, uri)
        start(api, pid)
        failed = stream.until_topic("procedure.lifecycle.failed", pid)[-1]

    assert "\ud800" in failed.body["payload"]["procedure"]["history"]["reason"]
    assert get(api, pid)["state"] == "FAILED"
    assert len(listed(api)) == 1


# -- 4. oversized path components and event IDs -----------------------------------------


def test_a_script_name_longer_than_the_filesystem_allows_is_a_400(
    api: httpx.Client, tmp_path: Path
) -> None:
    response = api.post("/procedures", json={"script_uri": f"file://{tmp_path}/{'a' * 300}.py"})

    assert_error(response, 400, "ScriptNotFound")
    assert listed(api) == []


def test_a_last_event_id_of_5000_digits_is_treated_as_unknown(
    server: Server, api: httpx.Client, script: Callable[[str], str]
) -> None:
    with EventStream(f"{server.api}/stream", last_event_id="9" * 5000) as stream:
        assert stream.status_code == 200
        create_id(api, script(QUICK))
        created = stream.until_topic("procedure.lifecycle.created")[-1]
        assert created.body["topic"] == "procedure.lifecycle.created"


# -- 5. what error answers reveal ------------------------------------------------------


def test_a_server_failure_answers_only_an_error_id_that_the_log_explains(
    server: Server, api: httpx.Client, script: Callable[[str], str]
) -> None:
    uri = script(QUICK)
    blocker = sqlite3.connect(server.db_path, timeout=1, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # the server cannot write its records now
    try:
        response = api.post("/procedures", json={"script_uri": uri})
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()

    message = assert_error(response, 500)
    assert not re.search(r"sqlite|locked|Error:|Traceback|/", message, re.I), message
    error_id = re.search(r"error id (\w+)", message)
    assert error_id, message
    log = server.log.read_text()
    assert error_id.group(1) in log
    assert "database is locked" in log
    create_id(api, uri)  # and the server serves on


def test_a_missing_script_is_refused_without_naming_server_paths(api: httpx.Client) -> None:
    message = assert_error(
        api.post("/procedures", json={"script_uri": "file://scripts/not_there.py"}), 400
    )

    assert str(REPO) not in message
    assert "file://scripts/not_there.py" in message


def test_a_failed_script_stack_trace_starts_at_the_script(
    api: httpx.Client, script: Callable[[str], str]
) -> None:
    uri = script("def run():\n    raise RuntimeError('dish out of range')\n")
    pid = create_id(api, uri)
    start(api, pid)

    history = wait_for_state(api, pid, "FAILED")["history"]

    trace = history["stacktrace"]
    frames = re.findall(r'File "([^"]+)"', trace)
    assert frames == [uri.removeprefix("file://")], trace
    assert "RuntimeError: dish out of range" in trace


# -- 10. smaller ones --------------------------------------------------------------------


def test_a_number_too_long_to_read_is_named_as_such(
    api: httpx.Client, script: Callable[[str], str]
) -> None:
    huge = "1" + "0" * 5000
    body = json.dumps({"script_uri": script(QUICK), "script_args": {"init": {"args": ["N"]}}})
    body = body.replace('"N"', huge)
    message = assert_error(api.post("/procedures", content=body, headers=JSON), 400)

    assert "not valid JSON" not in message
    assert "digits" in message
    assert listed(api) == []


@pytest.mark.parametrize("host", ["evil.example/<script>", "a b", "x@y:80"])
def test_a_malformed_host_header_is_not_copied_into_uris(
    server: Server, script: Callable[[str], str], host: str
) -> None:
    with server.client() as api:
        pid = create_id(api, script(QUICK))
        answer = api.get(f"/procedures/{pid}", headers={"Host": host})

    assert answer.status_code == 200, answer.text
    assert answer.json()["procedure"]["uri"] == f"{server.procedures}/{pid}"


def test_uris_use_the_public_url_when_one_is_set(
    make_server: Callable[..., Server], script: Callable[[str], str]
) -> None:
    server = make_server(env={"OET_PUBLIC_URL": "https://oet.example.org/"})
    with server.client() as api, EventStream(f"{server.api}/stream") as stream:
        procedure = create(api, script(QUICK))
        event = stream.until_topic("procedure.lifecycle.created")[-1]

    expected = f"https://oet.example.org/api/v1.0/procedures/{pid_of(procedure)}"
    assert procedure["uri"] == expected
    assert event.body["payload"]["procedure"]["uri"] == expected


def test_lifecycle_events_carry_the_same_absolute_uri_as_get(
    server: Server, api: httpx.Client, script: Callable[[str], str]
) -> None:
    with EventStream(f"{server.api}/stream") as stream:
        pid = create_id(api, script(QUICK))
        event = stream.until_topic("procedure.lifecycle.created")[-1]

    assert event.body["payload"]["procedure"]["uri"] == get(api, pid)["uri"]
    # the user docs' shape: the payload's fields at the top level too
    assert event.body["procedure"]["uri"] == get(api, pid)["uri"]


def test_polling_the_list_does_not_push_lifecycle_events_out_of_the_replay_buffer(
    make_server: Callable[..., Server], script: Callable[[str], str]
) -> None:
    server = make_server(env={"OET_EVENT_BUFFER": "20"})
    with server.client() as api, EventStream(f"{server.api}/stream") as stream:
        create_id(api, script(QUICK))
        created = stream.until_topic("procedure.lifecycle.created")[-1]
        for _ in range(100):
            listed(api)

    assert created.id is not None
    with EventStream(f"{server.api}/stream", last_event_id=int(created.id) - 1) as replay:
        first = replay.next()
    assert first.topic != "stream.resync"
    assert first.id == created.id


def test_a_runner_killed_by_a_signal_is_reported_in_a_sentence(
    server: Server, api: httpx.Client, script: Callable[[str], str]
) -> None:
    pid = run_until(api, script(SLEEPER), "RUNNING")
    (runner,) = wait_for(lambda: runner_pids(server), 10, "the runner")  # type: ignore[misc]
    os.kill(runner, signal.SIGKILL)

    reason = wait_for_state(api, pid, "FAILED")["history"]["reason"]
    assert reason == "The runner was killed by signal 9 before the procedure ended"
