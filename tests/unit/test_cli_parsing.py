"""How ``oet`` reads its command line and what it asks the server for.

No server here: the commands talk to an ``httpx.MockTransport`` that records
each request and answers as the REST API would, so these tests pin down the
requests each command line turns into.
"""

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from oet.cli.arguments import parse_script_args, parse_value
from oet.cli.client import stream_url
from oet.cli.main import app

URL = "http://oet.test:5000/api/v1.0/procedures"


def procedure_json(pid: int, state: str = "CREATED", **init_kwargs: Any) -> dict[str, Any]:
    """A procedure as the REST API shows it."""
    return {
        "uri": f"{URL}/{pid}",
        "script_uri": f"file://script{pid}.py",
        "script_args": {
            "init": {"args": [], "kwargs": init_kwargs},
            "run": {"args": [], "kwargs": {}},
        },
        "state": state,
        "history": {"process_states": {"CREATED": 1601463545.0 + pid}, "stacktrace": None},
    }


class FakeServer:
    """Answers like an OET server holding ``procedures``; records every request."""

    def __init__(self, *procedures: dict[str, Any]) -> None:
        self.procedures = {int(p["uri"].rsplit("/", 1)[1]): p for p in procedures}
        self.requests: list[httpx.Request] = []
        self.transport = httpx.MockTransport(self.handle)

    def bodies(self, method: str) -> list[Any]:
        return [json.loads(r.content) for r in self.requests if r.method == method]

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if request.method == "GET" and path.endswith("/procedures"):
            return httpx.Response(200, json={"procedures": list(self.procedures.values())})
        if request.method == "POST":
            body = json.loads(request.content)
            created = procedure_json(len(self.procedures) + 1)
            created["script_uri"] = body["script_uri"]
            created["script_args"]["init"] = body["script_args"]["init"]
            return httpx.Response(201, json={"procedure": created})
        pid = int(path.rsplit("/", 1)[1])
        if request.method == "PUT" and json.loads(request.content)["state"] == "STOPPED":
            return httpx.Response(200, json={"abort_message": f"stopped {pid}"})
        return httpx.Response(200, json={"procedure": {**self.procedures[pid], "state": "RUNNING"}})


def run_oet(fake: FakeServer, *args: str, env: dict[str, str] | None = None) -> Result:
    """``oet ARGS`` against ``fake``, with OET_REST_URI pointing at it unless ``env`` says."""
    return CliRunner().invoke(
        app, list(args), obj=fake.transport, env={"OET_REST_URI": URL, **(env or {})}
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3", 3),
        ("-2.5", -2.5),
        ("[1,2]", [1, 2]),
        ("(1, 2)", [1, 2]),
        ("{'a': 1}", {"a": 1}),
        ("None", None),
        ("True", True),
        ("'quoted'", "quoted"),
        ("true", "true"),
        ("hello", "hello"),
        ("file:///scripts/sb.json", "file:///scripts/sb.json"),
        ("", ""),
        ("{1, 2}", "{1, 2}"),
        ("1e999", "1e999"),
        ("b'raw'", "b'raw'"),
        ("__import__('os')", "__import__('os')"),
    ],
)
def test_values_that_read_as_json_able_python_literals_keep_their_type(
    text: str, expected: Any
) -> None:
    assert parse_value(text) == expected


def test_script_args_split_into_positional_and_keyword_arguments_in_any_order() -> None:
    call = parse_script_args(["hello", "--verbose=true", "-5", "--dishes=[1,2]", "world"])
    assert call.args == ("hello", -5, "world")
    assert call.kwargs == {"verbose": "true", "dishes": [1, 2]}


def test_a_bare_flag_is_true_and_the_docs_single_dash_form_is_a_keyword() -> None:
    call = parse_script_args(["--simulate", "-myparam=12", "--name=a=b", "--empty="])
    assert call.args == ()
    assert call.kwargs == {"simulate": True, "myparam": 12, "name": "a=b", "empty": ""}


def test_stream_url_sits_next_to_the_procedures_collection() -> None:
    assert stream_url(URL) == "http://oet.test:5000/api/v1.0/stream"
    assert stream_url(URL + "/") == "http://oet.test:5000/api/v1.0/stream"


def test_create_parses_keyword_values_as_python_literals() -> None:
    fake = FakeServer()
    result = run_oet(
        fake, "create", "file://test.py", "hello", "--subarray_id=3", "--verbose=true", "--x=[1,2]"
    )
    assert result.exit_code == 0, result.output
    [body] = fake.bodies("POST")
    assert body == {
        "script_uri": "file://test.py",
        "script_args": {
            "init": {
                "args": ["hello"],
                "kwargs": {"subarray_id": 3, "verbose": "true", "x": [1, 2]},
            }
        },
    }


def test_create_passes_subarray_id_1_unless_given() -> None:
    fake = FakeServer()
    assert run_oet(fake, "create", "file://test.py", "--flag").exit_code == 0
    assert fake.bodies("POST")[0]["script_args"]["init"] == {
        "args": [],
        "kwargs": {"subarray_id": 1, "flag": True},
    }


def test_arguments_after_a_double_dash_go_to_the_script_even_if_they_look_like_options() -> None:
    fake = FakeServer(procedure_json(1))
    assert run_oet(fake, "start", "--pid", "1", "--", "--pid=7", "--help").exit_code == 0
    [body] = fake.bodies("PUT")
    assert body["script_args"]["run"]["kwargs"] == {"pid": 7, "help": True}


def test_start_without_pid_starts_the_procedure_with_the_highest_id() -> None:
    fake = FakeServer(procedure_json(3), procedure_json(1), procedure_json(2))
    result = run_oet(fake, "start")
    assert result.exit_code == 0, result.output
    [put] = [r for r in fake.requests if r.method == "PUT"]
    assert put.url.path.endswith("/procedures/3")
    assert json.loads(put.content) == {"state": "RUNNING"}  # keeps the run args given at create


def test_start_sends_interleaved_run_arguments_for_the_given_pid() -> None:
    fake = FakeServer(procedure_json(1), procedure_json(2))
    result = run_oet(fake, "start", "bob", "--pid=1", "--simulate=false", "7")
    assert result.exit_code == 0, result.output
    [put] = [r for r in fake.requests if r.method == "PUT"]
    assert put.url.path.endswith("/procedures/1")
    assert json.loads(put.content) == {
        "state": "RUNNING",
        "script_args": {"run": {"args": ["bob", 7], "kwargs": {"simulate": "false"}}},
    }


def test_stop_without_pid_stops_the_running_procedure_and_aborts_by_default() -> None:
    fake = FakeServer(
        procedure_json(1, "COMPLETED"), procedure_json(2, "RUNNING"), procedure_json(3)
    )
    result = run_oet(fake, "stop")
    assert result.exit_code == 0, result.output
    assert result.stdout == "stopped 2\n"
    [put] = [r for r in fake.requests if r.method == "PUT"]
    assert put.url.path.endswith("/procedures/2")
    assert json.loads(put.content) == {"state": "STOPPED", "abort": True}


@pytest.mark.parametrize(
    ("flag", "abort"),
    [
        ("--no-run_abort", False),
        ("--no-run-abort", False),
        ("--run_abort", True),
        ("--run-abort", True),
    ],
)
def test_stop_accepts_both_spellings_of_run_abort(flag: str, abort: bool) -> None:
    fake = FakeServer(procedure_json(4, "RUNNING"))
    assert run_oet(fake, "stop", "--pid=4", flag).exit_code == 0
    assert fake.bodies("PUT") == [{"state": "STOPPED", "abort": abort}]


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["start"], "Error: There are no procedures: create one with 'oet create'\n"),
        (["describe"], "Error: There are no procedures: create one with 'oet create'\n"),
        (["stop"], "Error: No procedure is running: there is nothing to stop\n"),
    ],
)
def test_commands_with_nothing_to_act_on_fail_with_one_line(
    command: list[str], message: str
) -> None:
    fake = FakeServer(procedure_json(1, "COMPLETED")) if command == ["stop"] else FakeServer()
    result = run_oet(fake, *command)
    assert result.exit_code == 1
    assert result.stderr == message
    assert result.stdout == ""


def test_list_with_pid_asks_for_that_procedure_only() -> None:
    fake = FakeServer(procedure_json(1), procedure_json(2))
    assert run_oet(fake, "list", "--pid=2").exit_code == 0
    assert [r.url.path for r in fake.requests] == ["/api/v1.0/procedures/2"]


def test_server_url_option_wins_over_the_environment() -> None:
    fake = FakeServer()
    other = "http://elsewhere:8000/api/v1.0/procedures"
    assert run_oet(fake, "list", f"--server-url={other}").exit_code == 0
    assert str(fake.requests[0].url) == other


def test_oet_rest_uri_is_used_when_no_server_url_is_given() -> None:
    fake = FakeServer()
    env_url = "http://from-env:5000/api/v1.0/procedures"
    assert run_oet(fake, "list", env={"OET_REST_URI": env_url}).exit_code == 0
    assert str(fake.requests[0].url) == env_url


def test_without_any_setting_the_skampi_service_name_is_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OET_CONFIG_FILE", "/nonexistent/oet.ini")
    fake = FakeServer()
    result = CliRunner().invoke(app, ["list"], obj=fake.transport, env={"OET_REST_URI": None})
    assert result.exit_code == 0, result.output
    assert str(fake.requests[0].url) == "http://oet-rest:5000/api/v1.0/procedures"


def sse_server(body: str) -> Callable[[httpx.Request], httpx.Response]:
    def handle(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v1.0/stream"
        return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})

    return handle


def sse(event_id: int, topic: str, pid: int | None) -> str:
    data = {"id": event_id, "topic": topic, "time": 1.0, "procedure_id": pid, "source": "api"}
    return f"id: {event_id}\r\nevent: {topic}\r\ndata: {json.dumps(data)}\r\n\r\n"


NO_RECONNECT = {"OET_REST_URI": URL, "OET_LISTEN_RECONNECT": "0"}

STREAM = (
    ": ping\r\n\r\n"
    + sse(1, "request.procedure.list", None)
    + sse(2, "procedure.lifecycle.created", 1)
    + sse(3, "user.script.hello", 2)
    + sse(4, "procedure.lifecycle.started", 2)
)


@pytest.mark.parametrize(
    ("options", "expected_ids"),
    [
        ([], [1, 2, 3, 4]),
        (["--topic", "procedure.lifecycle"], [2, 4]),
        (["--topic", "user.", "--topic", "request.procedure"], [1, 3]),
        (["--pid", "2"], [3, 4]),
        (["--pid=2", "--topic=procedure."], [4]),
    ],
)
def test_listen_shows_only_events_matching_its_topic_prefixes_and_pid(
    options: list[str], expected_ids: list[int]
) -> None:
    transport = httpx.MockTransport(sse_server(STREAM))
    result = CliRunner().invoke(app, ["listen", "--raw", *options], obj=transport, env=NO_RECONNECT)
    # the mock stream ends, and listen may not reconnect: that is reported as an error
    assert result.exit_code == 1
    assert "closed the event stream" in result.stderr
    shown = [
        json.loads(line[6:])["id"] for line in result.stdout.splitlines() if line[:5] == "data:"
    ]
    assert shown == expected_ids


@pytest.mark.parametrize("raw", ["--raw", "--raw=True", "--raw=1"])
def test_listen_raw_prints_id_event_and_data_lines_then_a_blank_line(raw: str) -> None:
    transport = httpx.MockTransport(sse_server(sse(9, "user.script.hello", 2)))
    result = CliRunner().invoke(app, ["listen", raw], obj=transport, env=NO_RECONNECT)
    data = json.loads(sse(9, "user.script.hello", 2).split("data: ")[1].split("\r\n")[0])
    assert result.stdout == f"id: 9\nevent: user.script.hello\ndata: {json.dumps(data)}\n\n"


@pytest.mark.parametrize("options", [[], ["--raw=False"], ["--raw=0"]])
def test_listen_prints_one_readable_line_per_event_by_default(options: list[str]) -> None:
    transport = httpx.MockTransport(sse_server(STREAM))
    result = CliRunner().invoke(app, ["listen", *options], obj=transport, env=NO_RECONNECT)
    lines = result.stdout.splitlines()
    assert [line.split("  ")[1:3] for line in lines] == [
        ["request.procedure.list", "pid=-"],
        ["procedure.lifecycle.created", "pid=1"],
        ["user.script.hello", "pid=2"],
        ["procedure.lifecycle.started", "pid=2"],
    ]
