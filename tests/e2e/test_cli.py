"""Every ``oet`` command and option against a real OET server.

Most commands run in-process with typer's CliRunner; the ones whose exit code,
signal handling or absence of a traceback matters as a user sees it run as
the installed ``oet`` console script in a subprocess.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner, Result

from oet.cli.main import app
from tests.commands import OET, Follower, data_of, run_installed
from tests.conftest import Server, free_port, wait_for
from tests.procedures import written_json

pytestmark = [pytest.mark.e2e, pytest.mark.both_backends]


HELLO = "file://scripts/hello_world.py"
RECORDS_CALLS = """\
import json, pathlib, time

def init(*args, **kwargs):
    pathlib.Path({out!r}).with_suffix('.init').write_text(json.dumps([args, kwargs]))

def run(*args, **kwargs):
    pathlib.Path({out!r}).with_suffix('.run').write_text(json.dumps([args, kwargs]))
    while {forever}:
        time.sleep(0.02)
"""
TAKES_ANYTHING = "def init(*args, **kwargs):\n    pass\n\n\ndef run(*args, **kwargs):\n    pass\n"
FAILS_IN_RUN = "def run():\n    raise ZeroDivisionError('observing went wrong')\n"


class Oet:
    """``oet`` run in-process against one server."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def __call__(self, *args: str) -> Result:
        env = {"OET_REST_URI": self.server.procedures}
        return CliRunner().invoke(app, list(args), env=env)

    def ok(self, *args: str) -> str:
        """Run a command that must succeed; its standard output."""
        result = self(*args)
        assert result.exit_code == 0, f"oet {' '.join(args)}: {result.output}"
        assert result.stderr == ""
        return result.stdout


@pytest.fixture
def oet(server: Server) -> Oet:
    return Oet(server)


def procedure(api: httpx.Client, pid: int) -> dict[str, Any]:
    body: dict[str, Any] = api.get(f"/procedures/{pid}").json()["procedure"]
    return body


def state_becomes(api: httpx.Client, pid: int, state: str) -> None:
    wait_for(lambda: procedure(api, pid)["state"] == state, 20, f"procedure {pid} {state}")


def recording_script(script: Callable[[str], str], script_dir: Path, forever: bool) -> str:
    return script(RECORDS_CALLS.format(out=str(script_dir / "calls"), forever=forever))


def recorded(script_dir: Path, method: str) -> Any:
    path = (script_dir / "calls").with_suffix(f".{method}")
    return written_json(path, f"the script's {method}() to be called")


# -- create ----------------------------------------------------------------------------


def test_create_prints_the_new_procedure_as_one_created_row(oet: Oet) -> None:
    lines = oet.ok("create", HELLO).splitlines()
    assert lines[0].split() == ["ID", "Script", "Creation", "time", "State"]
    assert lines[1].split()[:2] == ["1", HELLO]
    assert lines[1].split()[-1] == "CREATED"
    assert len(lines) == 2


def test_create_calls_init_with_positional_args_and_literal_keyword_values(
    oet: Oet, api: httpx.Client, script: Callable[[str], str], script_dir: Path
) -> None:
    uri = recording_script(script, script_dir, forever=False)
    oet.ok("create", uri, "hello", "--subarray_id=3", "42", "--verbose=true", "--x=[1,2]", "--dry")
    expected = {"subarray_id": 3, "verbose": "true", "x": [1, 2], "dry": True}
    assert recorded(script_dir, "init") == [["hello", 42], expected]
    assert procedure(api, 1)["script_args"]["init"] == {"args": ["hello", 42], "kwargs": expected}


def test_create_gives_init_subarray_id_1_by_default(
    oet: Oet, script: Callable[[str], str], script_dir: Path
) -> None:
    oet.ok("create", recording_script(script, script_dir, forever=False))
    assert recorded(script_dir, "init") == [[], {"subarray_id": 1}]


def test_create_of_a_missing_script_is_one_line_and_exit_1(oet: Oet) -> None:
    result = oet("create", "file:///no/such/script.py")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: 400 Bad Request: Script file:///no/such/script.py")
    assert len(result.stderr.splitlines()) == 1


def test_create_of_a_script_whose_init_raises_shows_it_failed(
    oet: Oet, script: Callable[[str], str]
) -> None:
    result = oet("create", script("def init(**kwargs):\n    raise ValueError('no dish')\n"))
    assert result.exit_code == 1
    assert result.stdout.splitlines()[1].split()[-1] == "FAILED"
    assert result.stderr == (
        "Error: Procedure 1 failed while loading: ValueError: no dish; see 'oet describe --pid=1'\n"
    )


# -- list ------------------------------------------------------------------------------


def test_list_shows_every_procedure_and_list_pid_only_one(oet: Oet) -> None:
    oet.ok("create", HELLO)
    oet.ok("create", HELLO, "--subarray_id=2")
    rows = [line.split() for line in oet.ok("list").splitlines()[1:]]
    assert [(row[0], row[1], row[-1]) for row in rows] == [
        ("1", HELLO, "CREATED"),
        ("2", HELLO, "CREATED"),
    ]
    only = oet.ok("list", "--pid=2").splitlines()
    assert len(only) == 2
    assert only[1].split()[0] == "2"


def test_list_of_an_empty_server_is_just_the_header(oet: Oet) -> None:
    assert oet.ok("list") == "ID  Script  Creation time  State\n"


def test_list_of_an_unknown_pid_is_the_servers_404_in_one_line(oet: Oet) -> None:
    result = oet("list", "--pid", "4")
    assert result.exit_code == 1
    assert result.stderr == "Error: 404 Not Found: No information available for PID=4\n"


# -- start -----------------------------------------------------------------------------


def test_start_without_pid_starts_the_last_created_procedure(
    oet: Oet, api: httpx.Client, script: Callable[[str], str], script_dir: Path
) -> None:
    oet.ok("create", HELLO)
    oet.ok("create", recording_script(script, script_dir, forever=False))
    row = oet.ok("start").splitlines()[1].split()
    assert row[0] == "2"
    assert row[-1] == "RUNNING"
    assert recorded(script_dir, "run") == [[], {}]
    state_becomes(api, 2, "COMPLETED")
    assert procedure(api, 1)["state"] == "CREATED"


def test_start_pid_passes_interleaved_run_arguments(
    oet: Oet, api: httpx.Client, script: Callable[[str], str], script_dir: Path
) -> None:
    oet.ok("create", recording_script(script, script_dir, forever=False))
    oet.ok("create", HELLO)
    oet.ok("start", "--pid=1", "bob", "--simulate=false", "--scan_duration=14.0", "3")
    assert recorded(script_dir, "run") == [["bob", 3], {"simulate": "false", "scan_duration": 14.0}]
    state_becomes(api, 1, "COMPLETED")
    assert procedure(api, 2)["state"] == "CREATED"


def test_start_with_nothing_created_is_one_line_and_exit_1(oet: Oet) -> None:
    result = oet("start")
    assert result.exit_code == 1
    assert result.stderr == "Error: There are no procedures: create one with 'oet create'\n"


def test_starting_a_second_procedure_while_one_runs_is_refused(
    oet: Oet, script: Callable[[str], str], script_dir: Path
) -> None:
    oet.ok("create", recording_script(script, script_dir, forever=True))
    oet.ok("create", HELLO)
    oet.ok("start", "--pid=1")
    result = oet("start", "--pid=2")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: 409 Conflict: Procedure 1 is RUNNING")
    oet.ok("stop", "--no-run_abort")


# -- stop ------------------------------------------------------------------------------


def test_stop_without_pid_stops_the_running_procedure_and_reports_the_failed_abort(
    oet: Oet, api: httpx.Client, script: Callable[[str], str], script_dir: Path
) -> None:
    oet.ok("create", recording_script(script, script_dir, forever=True), "--subarray_id=2")
    oet.ok("create", HELLO)
    oet.ok("start", "--pid=1")
    recorded(script_dir, "run")
    message = oet.ok("stop")
    # no Tango device answers here: the stop happens, the abort cannot
    assert message.startswith("Stopped script with ID 1, but subarray activity was not aborted")
    assert "ska_mid/tm_subarray_node/2" in message
    assert procedure(api, 1)["state"] == "STOPPED"
    assert "Abort" in procedure(api, 1)["history"]["reason"]
    assert procedure(api, 2)["state"] == "CREATED"


@pytest.mark.parametrize("flag", ["--no-run_abort", "--no-run-abort"])
def test_stop_without_run_abort_only_stops_the_script(
    oet: Oet, api: httpx.Client, script: Callable[[str], str], script_dir: Path, flag: str
) -> None:
    oet.ok("create", recording_script(script, script_dir, forever=True))
    oet.ok("start")
    recorded(script_dir, "run")
    assert oet.ok("stop", "--pid=1", flag) == "Successfully stopped script with ID 1\n"
    assert procedure(api, 1)["state"] == "STOPPED"
    assert "Abort" not in procedure(api, 1)["history"]["reason"]


def test_stop_of_a_procedure_that_was_never_started_is_refused_in_one_line(
    oet: Oet, api: httpx.Client
) -> None:
    oet.ok("create", HELLO)
    result = oet("stop", "--pid=1", "--no-run-abort")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: 409 Conflict: Procedure 1 is CREATED:")
    assert "oet discard --pid=1" in result.stderr
    assert procedure(api, 1)["state"] == "CREATED"


def test_stop_with_nothing_running_is_one_line_and_exit_1(oet: Oet) -> None:
    oet.ok("create", HELLO)
    result = oet("stop")
    assert result.exit_code == 1
    assert result.stderr == "Error: No procedure is running: there is nothing to stop\n"


def test_stopping_a_finished_procedure_maps_the_409_to_one_line(
    oet: Oet, api: httpx.Client
) -> None:
    oet.ok("create", HELLO)
    oet.ok("start")
    state_becomes(api, 1, "COMPLETED")
    result = oet("stop", "--pid=1")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: 409 Conflict: Procedure 1 is COMPLETED: its script has ended, so there is"
        " nothing to stop and nothing was aborted. Check the ID with 'oet list'\n"
    )


# -- describe --------------------------------------------------------------------------


def test_describe_shows_script_history_and_arguments_of_the_last_created(
    oet: Oet, server: Server, api: httpx.Client, script: Callable[[str], str]
) -> None:
    uri = script(TAKES_ANYTHING)
    oet.ok("create", HELLO, "--subarray_id=1")
    oet.ok("create", uri, "goodbye")
    oet.ok("start", "--pid=2", "bob", "--simulate=false")
    state_becomes(api, 2, "COMPLETED")
    sections = oet.ok("describe").rstrip("\n").split("\n\n")
    assert sections[0].splitlines()[0].split() == ["ID", "Script", "URI"]
    assert sections[0].splitlines()[1].split() == ["2", uri, f"{server.procedures}/2"]
    states = [line.split()[-1] for line in sections[1].splitlines()]
    assert states == ["State", "INITIALISING", "CREATED", "RUNNING", "COMPLETED"]
    assert sections[2].splitlines() == [
        "Method  Arguments    Keyword Arguments",
        "init    ['goodbye']  {'subarray_id': 1}",
        "run     ['bob']      {'simulate': 'false'}",
    ]
    assert len(sections) == 3
    assert oet.ok("describe", "--pid=1").splitlines()[1].split()[0] == "1"


def test_describe_of_a_failed_procedure_shows_the_reason_and_stack_trace(
    oet: Oet, api: httpx.Client, script: Callable[[str], str]
) -> None:
    oet.ok("create", script(FAILS_IN_RUN))
    oet.ok("start")
    state_becomes(api, 1, "FAILED")
    text = oet.ok("describe", "--pid=1")
    assert "Reason: ZeroDivisionError: observing went wrong" in text
    trace = text.split("Stack trace:\n", 1)[1]
    assert trace.startswith("Traceback (most recent call last):")
    assert "raise ZeroDivisionError('observing went wrong')" in trace
    assert trace.rstrip().endswith("ZeroDivisionError: observing went wrong")


def test_describe_with_nothing_created_is_one_line(oet: Oet) -> None:
    result = oet("describe")
    assert result.exit_code == 1
    assert result.stderr == "Error: There are no procedures: create one with 'oet create'\n"


# -- listen (a real subprocess, stopped with Ctrl-C) -----------------------------------


def test_listen_prints_events_as_they_happen_and_exits_0_on_ctrl_c(
    server: Server, oet: Oet
) -> None:
    with Follower([*OET, "listen", "--raw"], {"OET_REST_URI": server.procedures}) as listener:
        output = listen_while_hello_runs(listener, oet)
        assert listener.interrupt() == 0
        assert listener.stderr() == ""
    assert "event: user.script.hello\n" in output
    events = data_of(output)
    hello = next(e for e in events if e["topic"] == "user.script.hello")
    assert hello["payload"] == {"greeting": "Hello, Ada!"}
    assert hello["greeting"] == "Hello, Ada!"
    assert hello["procedure_id"] == 1
    assert hello["source"] == "script"
    envelope = {"id", "topic", "time", "procedure_id", "source", "payload", "msg_src"}
    assert all(set(e) == envelope | set(e["payload"]) for e in events)
    assert "\n\nid: " in output  # a blank line between events
    assert "\nevent: procedure.lifecycle.started\n" in output


@pytest.mark.embedded_only("on Kubernetes event IDs outlive a restart: nothing to resync")
def test_listen_carries_on_across_a_server_restart_and_says_it_resynced(
    make_server: Callable[..., Server],
) -> None:
    first = make_server()
    with Follower([*OET, "listen", "--raw"], {"OET_REST_URI": first.procedures}) as listener:
        listener.wait_for_text(
            "event: request.procedure.list", poke=lambda: httpx.get(first.procedures)
        )
        first.stop()
        second = make_server(db_path=first.db_path, port=first.port)
        listener.wait_for_text("event: stream.resync", poke=lambda: httpx.get(second.procedures))

        def new_events_follow_the_resync() -> bool:
            httpx.get(second.procedures)
            after = listener.output().split("event: stream.resync", 1)[1]
            return "event: request.procedure.list" in after

        wait_for(new_events_follow_the_resync, 30, "events from the restarted server")
        assert listener.interrupt() == 0
        assert "Reconnected to the event stream" in listener.stderr()


def listen_while_hello_runs(listener: Follower, oet: Oet) -> str:
    listener.wait_for_text("event: request.procedure.list", poke=lambda: oet("list"))
    oet.ok("create", HELLO)
    oet.ok("start", "Ada")
    return listener.wait_for_text("event: procedure.lifecycle.complete")


def test_listen_filters_by_topic_prefix_and_procedure(
    server: Server, oet: Oet, api: httpx.Client
) -> None:
    oet.ok("create", HELLO)
    oet.ok("create", HELLO)

    def ask_to_stop_both() -> None:  # each publishes request.procedure.stop, then gets a 409
        api.get("/procedures")
        for pid in (1, 2):
            api.put(f"/procedures/{pid}", json={"state": "STOPPED"})

    options = ["--pid", "2", "--topic", "request.procedure.stop", "--topic", "user."]
    with Follower(
        [*OET, "listen", "--raw", *options], {"OET_REST_URI": server.procedures}
    ) as listener:
        listener.wait_for_text("event: request.procedure.stop", poke=ask_to_stop_both)
        seen = len(data_of(listener.output()))
        ask_to_stop_both()  # the list and the stop of 1 come first and must be filtered out
        wait_for(lambda: len(data_of(listener.output())) > seen, 20, "one more stop of 2")
        events = data_of(listener.output())
        assert listener.interrupt() == 0
    assert {(e["topic"], e["procedure_id"]) for e in events} == {("request.procedure.stop", 2)}


# -- as a user runs it: the installed console script -----------------------------------


def test_installed_oet_creates_starts_and_lists_with_exit_code_0(server: Server) -> None:
    env = {"OET_REST_URI": server.procedures}
    for args in (["create", HELLO], ["start", "World"], ["list", "--pid=1"], ["describe"]):
        done = run_installed(*args, env=env)
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""
    assert f"{server.procedures}/1" in done.stdout


def test_installed_oet_reports_an_unreachable_server_in_one_line() -> None:
    url = f"http://127.0.0.1:{free_port()}/api/v1.0/procedures"
    done = run_installed("list", "--server-url", url, env={})
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith(f"Error: Cannot reach the OET server at {url}")
    assert len(done.stderr.splitlines()) == 1


def test_installed_oet_maps_api_errors_to_one_line_and_exit_1(server: Server) -> None:
    done = run_installed("stop", "--pid=7", env={"OET_REST_URI": server.procedures})
    assert done.returncode == 1
    assert done.stderr == "Error: 404 Not Found: No information available for PID=7\n"


def test_installed_oet_alone_prints_help_and_exits_0() -> None:
    done = run_installed(env={})
    assert done.returncode == 0
    assert done.stdout.startswith("Usage: oet [OPTIONS] COMMAND [ARGS]...")
    assert "http://oet-rest:5000/api/v1.0/procedures" in done.stdout


def test_installed_oet_reads_the_server_from_oet_rest_uri_unless_told_otherwise(
    server: Server,
) -> None:
    httpx.post(server.procedures, json={"script_uri": HELLO}, timeout=30).raise_for_status()
    from_env = run_installed("list", env={"OET_REST_URI": server.procedures})
    assert from_env.returncode == 0
    assert HELLO in from_env.stdout
    unreachable = f"http://127.0.0.1:{free_port()}/api/v1.0/procedures"
    from_option = run_installed(
        "list", "--server-url", server.procedures, env={"OET_REST_URI": unreachable}
    )
    assert from_option.returncode == 0
    assert HELLO in from_option.stdout


def test_installed_oet_rejects_a_non_numeric_pid_without_a_traceback(server: Server) -> None:
    done = run_installed("describe", "--pid=two", env={"OET_REST_URI": server.procedures})
    assert done.returncode == 2  # a usage error, as for every click/typer command
    assert done.stderr.startswith("Error: Invalid value for '--pid'")
    assert done.stderr.endswith("(see 'oet describe --help')\n")
    assert done.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["frobnicate"], "Error: No such command 'frobnicate'. (see 'oet --help')\n"),
        (["create"], "Error: Missing argument 'SCRIPT_URI'. (see 'oet create --help')\n"),
        (["stop", "--bogus"], "Error: No such option: --bogus (see 'oet stop --help')\n"),
    ],
)
def test_installed_oet_reports_a_usage_mistake_in_one_line(args: list[str], message: str) -> None:
    done = run_installed(*args, env={"OET_REST_URI": "http://127.0.0.1:9/api/v1.0/procedures"})
    assert done.returncode == 2
    assert done.stderr == message
    assert done.stdout == ""
