"""The 2021 CLI's habits: ``--name=value`` booleans, server addresses, readable events.

Pure functions, no server: how option words are rewritten, which URL a server
address means, how one event reads on one line, and what ``start --wait``
exits with.
"""

import datetime
import json
from typing import Any

import pytest
import typer

from oet.cli.address import procedures_url
from oet.cli.client import ProcedureSummary, StreamEvent
from oet.cli.formatting import event_line
from oet.cli.main import app
from oet.cli.options import rewrite_boolean_values
from oet.cli.waiting import follow_procedure, outcome
from oet.domain import ProcedureInput


def stop_params() -> list[Any]:
    command = typer.main.get_command(app)
    return list(command.commands["stop"].params)  # type: ignore[attr-defined]


def start_params() -> list[Any]:
    command = typer.main.get_command(app)
    return list(command.commands["start"].params)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("word", "becomes"),
    [
        ("--run_abort=True", "--run_abort"),
        ("--run_abort=true", "--run_abort"),
        ("--run_abort=1", "--run_abort"),
        ("--run-abort=yes", "--run_abort"),
        ("--run_abort=False", "--no-run_abort"),
        ("--run_abort=false", "--no-run_abort"),
        ("--run_abort=0", "--no-run_abort"),
        ("--no-run_abort=True", "--no-run_abort"),
        ("--no-run_abort=False", "--run_abort"),
    ],
)
def test_a_boolean_option_given_a_value_becomes_its_bare_form(word: str, becomes: str) -> None:
    assert rewrite_boolean_values(["--pid=3", word], stop_params()) == ["--pid=3", becomes]


def test_a_flag_without_a_negation_given_false_is_left_at_its_default() -> None:
    assert rewrite_boolean_values(["--wait=False", "bob"], start_params()) == ["bob"]
    assert rewrite_boolean_values(["--wait=1", "bob"], start_params()) == ["--wait", "bob"]


def test_a_command_without_arguments_also_reads_flag_space_value() -> None:
    words = ["--run_abort", "False", "--pid", "3"]
    assert rewrite_boolean_values(words, stop_params(), separate_values=True) == [
        "--no-run_abort",
        "--pid",
        "3",
    ]
    # start takes script arguments: a word after --wait is the script's
    assert rewrite_boolean_values(["--wait", "1"], start_params()) == ["--wait", "1"]


def test_script_arguments_and_words_after_a_double_dash_are_left_alone() -> None:
    words = ["--simulate=false", "--verbose=true", "--", "--wait=0"]
    assert rewrite_boolean_values(words, start_params()) == words


def test_a_boolean_value_that_is_neither_true_nor_false_is_a_usage_error() -> None:
    with pytest.raises(typer.BadParameter, match="'maybe' is not true or false"):
        rewrite_boolean_values(["--run_abort=maybe"], stop_params())


@pytest.mark.parametrize(
    "given",
    [
        "http://oet-rest:5000",
        "http://oet-rest:5000/",
        "http://oet-rest:5000/api/v1.0",
        "http://oet-rest:5000/api/v1.0/",
        "http://oet-rest:5000/api/v1.0/procedures",
        "http://oet-rest:5000/api/v1.0/procedures/",
        "http://oet-rest:5000/api/v1.0/stream",
        " http://oet-rest:5000/api/v1.0 ",
    ],
)
def test_every_usual_form_of_the_server_address_means_the_procedures_collection(
    given: str,
) -> None:
    assert procedures_url(given) == "http://oet-rest:5000/api/v1.0/procedures"


def test_a_proxy_prefix_and_the_short_api_version_are_kept() -> None:
    assert procedures_url("https://gw/oet/api/v1") == "https://gw/oet/api/v1/procedures"
    assert procedures_url("https://gw/oet") == "https://gw/oet"


def event(topic: str, pid: int | None, payload: dict[str, Any], **top: Any) -> StreamEvent:
    data = {**top, "id": 7, "topic": topic, "time": 1700000000.25, "procedure_id": pid}
    data.update(source="script", payload=payload)
    return StreamEvent(topic, json.dumps(data), "7")


def test_a_script_event_reads_as_local_time_topic_procedure_and_fields() -> None:
    line = event_line(
        event("user.script.scan", 3, {"scan": 7, "msg": "two words", "dishes": [1, 2]})
    )
    stamp = datetime.datetime.fromtimestamp(1700000000.25).strftime("%Y-%m-%d %H:%M:%S.250")
    assert line == f'{stamp}  user.script.scan  pid=3  scan=7  msg="two words"  dishes=[1, 2]'


def test_a_lifecycle_event_reads_as_the_procedure_state_script_and_reason() -> None:
    procedure = {
        "state": "FAILED",
        "script_uri": "file://x.py",
        "history": {"reason": "RuntimeError: boom"},
    }
    line = event_line(event("procedure.lifecycle.failed", 2, {"procedure": procedure}))
    assert line.endswith(
        "  procedure.lifecycle.failed  pid=2  state=FAILED  script=file://x.py"
        '  reason="RuntimeError: boom"'
    )


def test_an_event_is_always_one_line() -> None:
    line = event_line(event("t", None, {"text": "line one\nline two"}))
    assert "\n" not in line
    assert line.endswith('  t  pid=-  text="line one\\nline two"')


def test_an_event_whose_data_is_not_json_is_still_one_line() -> None:
    assert event_line(StreamEvent("odd", "not\njson")).endswith("  odd  not json")


def summary(state: str, reason: str | None = None, stacktrace: str | None = None) -> Any:
    return ProcedureSummary(
        4, "u/4", "file://x.py", state, ProcedureInput(), ProcedureInput(), {}, stacktrace, reason
    )


def test_start_wait_exit_codes_say_how_the_procedure_ended() -> None:
    assert outcome(summary("COMPLETED")) == (0, None)
    assert outcome(summary("FAILED", "RuntimeError: boom", "Traceback...")) == (
        1,
        "Procedure 4 FAILED: RuntimeError: boom (oet describe --pid=4 shows the stack trace)",
    )
    assert outcome(summary("STOPPED", "Stopped on request")) == (
        3,
        "Procedure 4 STOPPED: Stopped on request",
    )


def test_waiting_shows_only_the_procedures_own_events_and_ends_with_its_ending() -> None:
    shown: list[str] = []
    stream = [
        event("request.procedure.start", 4, {}),
        event("procedure.lifecycle.started", 4, {}),
        event("user.other", 5, {}),
        event("user.mine", 4, {}),
        event("procedure.lifecycle.complete", 4, {}),
        event("user.after", 4, {}),
    ]
    assert follow_procedure(stream, 4, lambda e: shown.append(e.topic))
    assert shown == ["procedure.lifecycle.started", "user.mine", "procedure.lifecycle.complete"]
    assert not follow_procedure(stream[:2], 4, lambda e: None)
