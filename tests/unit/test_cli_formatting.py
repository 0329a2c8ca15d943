"""What ``oet`` prints: the user docs' tables, and one line for every failure.

Server answers come from an ``httpx.MockTransport``; times are checked
against the local time zone the CLI shows them in.
"""

import datetime
from typing import Any

import httpx
import pytest
import typer
from typer.testing import CliRunner, Result

from oet.cli.client import ProcedureSummary, StreamEvent, UnexpectedAnswer
from oet.cli.formatting import describe, event_lines, local_time, procedure_table, table
from oet.cli.main import app
from tests.unit.test_cli_parsing import URL, procedure_json

CREATED_AT = 1601461812.5
COMMANDS = ["create", "list", "start", "stop", "describe", "listen"]


def local(timestamp: float, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    return datetime.datetime.fromtimestamp(timestamp).strftime(fmt)


def summary(**changes: Any) -> ProcedureSummary:
    data = procedure_json(2, sb_uri="file:///sb.json", subarray_id=1)
    data["script_uri"] = "file://test2.py"
    data["history"]["process_states"] = {"CREATED": CREATED_AT, "RUNNING": CREATED_AT + 300.25}
    data["state"] = "RUNNING"
    data["script_args"]["run"] = {"args": ["bob"], "kwargs": {"simulate": "false"}}
    data["history"].update(changes)
    return ProcedureSummary.from_json(data)


def answering(status: int, **response: Any) -> Result:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, **response)

    return CliRunner().invoke(
        app, ["list"], obj=httpx.MockTransport(handle), env={"OET_REST_URI": URL}
    )


def failing_with(exc: Exception) -> Result:
    def handle(request: httpx.Request) -> httpx.Response:
        raise exc

    return CliRunner().invoke(
        app, ["list"], obj=httpx.MockTransport(handle), env={"OET_REST_URI": URL}
    )


def test_table_aligns_columns_two_spaces_apart_without_trailing_spaces() -> None:
    assert table(("ID", "Script"), [(1, "file://a.py"), (10, "b")]) == (
        "ID  Script\n1   file://a.py\n10  b"
    )


def test_procedure_table_shows_id_script_local_creation_time_and_state() -> None:
    procedure = summary()
    assert procedure_table([procedure]).splitlines() == [
        "ID  Script           Creation time        State",
        f"2   file://test2.py  {local(CREATED_AT)}  RUNNING",
    ]


def test_creation_time_is_the_earliest_state_change_even_if_listed_later() -> None:
    data = procedure_json(1)
    data["history"]["process_states"] = {"RUNNING": CREATED_AT + 5, "CREATED": CREATED_AT}
    assert ProcedureSummary.from_json(data).created_at == CREATED_AT


def test_describe_shows_identity_state_history_and_call_arguments() -> None:
    text = describe(summary())
    precise = "%Y-%m-%d %H:%M:%S.%f"
    assert text == (
        f"ID  Script           URI\n2   file://test2.py  {URL}/2\n"
        "\n"
        "Time                        State\n"
        f"{local(CREATED_AT, precise)}  CREATED\n"
        f"{local(CREATED_AT + 300.25, precise)}  RUNNING\n"
        "\n"
        "Method  Arguments  Keyword Arguments\n"
        "init    []         {'sb_uri': 'file:///sb.json', 'subarray_id': 1}\n"
        "run     ['bob']    {'simulate': 'false'}"
    )
    assert "Stack trace" not in text
    assert "Reason" not in text


def test_describe_of_a_failed_procedure_ends_with_the_reason_and_stack_trace() -> None:
    trace = 'Traceback (most recent call last):\n  File "x.py", line 1\nZeroDivisionError: boom\n'
    text = describe(summary(stacktrace=trace, reason="ZeroDivisionError: boom"))
    assert text.endswith(f"\n\nReason: ZeroDivisionError: boom\n\nStack trace:\n{trace.rstrip()}")


def test_local_time_can_show_microseconds() -> None:
    assert local_time(CREATED_AT, precise=True).endswith(".500000")
    assert local_time(CREATED_AT) == local(CREATED_AT)


def test_event_lines_repeat_data_for_each_line_of_a_multiline_payload() -> None:
    assert event_lines(StreamEvent("a.b", "x\ny")) == "event: a.b\ndata: x\ndata: y\n"


def test_an_api_error_body_becomes_one_line_with_status_and_message() -> None:
    body = {
        "error": "409 Conflict",
        "type": "StateConflict",
        "Message": "Procedure 2 is COMPLETED: there is nothing to stop",
    }
    result = answering(409, json=body)
    assert result.exit_code == 1
    assert (
        result.stderr == "Error: 409 Conflict: Procedure 2 is COMPLETED: there is nothing to stop\n"
    )
    assert result.stdout == ""


def test_an_error_without_the_api_body_names_the_status_and_the_url() -> None:
    result = answering(502, text="<html>Bad gateway</html>")
    assert result.exit_code == 1
    assert result.stderr == f"Error: 502 Bad Gateway: from {URL}\n"


def test_a_success_that_is_not_json_is_reported_not_crashed_on() -> None:
    result = answering(200, text="<html>welcome</html>")
    assert result.exit_code == 1
    assert result.stderr == f"Error: The answer from {URL} is not JSON\n"


def test_a_listing_of_the_wrong_shape_is_reported_not_crashed_on() -> None:
    result = answering(200, json={"procedures": [{"uri": "no id here"}]})
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: The server sent a procedure OET cannot read")
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    ("exc", "message"),
    [
        (
            httpx.ConnectError("[Errno 111] Connection refused"),
            f"Cannot reach the OET server at {URL}",
        ),
        (httpx.ReadTimeout("timed out"), f"The OET server at {URL} did not answer in time"),
        (httpx.ConnectTimeout("timed out"), f"The OET server at {URL} did not answer in time"),
        (httpx.RemoteProtocolError("peer closed\nconnection"), "peer closed connection"),
    ],
)
def test_transport_failures_become_one_line_naming_the_server(exc: Exception, message: str) -> None:
    result = failing_with(exc)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ")
    assert message in result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.output


@pytest.mark.parametrize("url", ["oet-rest:5000/procedures", "ftp://host/procedures", "http://"])
def test_a_server_url_that_is_not_http_is_one_line(url: str) -> None:
    result = CliRunner().invoke(app, ["list", "--server-url", url])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ")
    assert len(result.stderr.splitlines()) == 1


def test_invalid_settings_are_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OET_MAX_PROCEDURES", "many")
    result = CliRunner().invoke(app, ["list"], env={"OET_REST_URI": None})
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: OET configuration is invalid: max_procedures")
    assert len(result.stderr.splitlines()) == 1


def test_a_procedure_that_failed_in_init_is_shown_and_reported() -> None:
    failed = procedure_json(1, "FAILED")
    failed["history"]["reason"] = "ValueError: no such dish"

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, json={"procedure": failed})

    result = CliRunner().invoke(
        app,
        ["create", "file://script1.py"],
        obj=httpx.MockTransport(handle),
        env={"OET_REST_URI": URL},
    )
    assert result.exit_code == 1
    assert "FAILED" in result.stdout
    assert result.stderr == (
        "Error: Procedure 1 failed while loading: ValueError: no such dish;"
        " see 'oet describe --pid=1'\n"
    )


def test_unreadable_procedures_raise_unexpected_answer() -> None:
    with pytest.raises(UnexpectedAnswer):
        ProcedureSummary.from_json(["not", "a", "procedure"])


def test_oet_alone_prints_help_and_succeeds() -> None:
    result = CliRunner().invoke(app, [])
    assert result.exit_code == 0
    assert "Usage: oet" in result.stdout
    for command in COMMANDS:
        assert f"  {command} " in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_parameter_of_every_command_has_help_text(command: str) -> None:
    group = typer.main.get_group(app)
    params = group.commands[command].params
    assert params
    for param in params:
        assert getattr(param, "help", None), f"oet {command}: {param.name} has no help"
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "--server-url" in result.stdout
