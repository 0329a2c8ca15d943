"""A SKAMPI user's habits work: the docs' option forms, start --wait, listen, addresses.

Every command here is the installed ``oet`` console script in a subprocess,
against a real server with real runners, as an operator types it.
"""

import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.backends import first_also_on_kubernetes
from tests.commands import OET, Follower, data_of, run_installed
from tests.conftest import Server
from tests.procedures import ANNOUNCES_THEN_SLEEPS, create_id, get, start, wait_for_state

pytestmark = [pytest.mark.e2e, pytest.mark.both_backends]

HELLO = "file://scripts/hello_world.py"
RECORDS = """\
import json, pathlib, time

def init(*args, **kwargs):
    pathlib.Path({out!r}).with_suffix('.init').write_text(json.dumps([args, kwargs]))

def run(*args, **kwargs):
    pathlib.Path({out!r}).with_suffix('.run').write_text(json.dumps([args, kwargs]))
"""
FAILS = "def run():\n    raise ZeroDivisionError('observing went wrong')\n"


def oet_ok(*args: str) -> str:
    """Run the installed oet, with no OET_REST_URI: the address is on the command line."""
    done = run_installed(*args, env={"OET_REST_URI": "http://nowhere.invalid:1"})
    assert done.returncode == 0, f"oet {' '.join(args)}: {done.stderr}"
    assert done.stderr == ""
    return done.stdout


def test_every_documented_option_works_in_its_name_equals_value_form(
    server: Server, api: httpx.Client, script: Callable[[str], str], script_dir: Path
) -> None:
    url = f"--server-url={server.procedures}"
    recorder = script(RECORDS.format(out=str(script_dir / "calls")))

    # create: server-url, script-uri, args, kwargs (-subarray_id=1 as the docs' table spells it)
    assert " CREATED" in oet_ok("create", url, recorder, "hello", "-subarray_id=2")
    assert (script_dir / "calls.init").read_text() == '[["hello"], {"subarray_id": 2}]'
    assert " CREATED" in oet_ok("create", url, f"--script-uri={recorder}", "bye")
    assert (script_dir / "calls.init").read_text() == '[["bye"], {"subarray_id": 1}]'
    assert " CREATED" in oet_ok("create", f"--server_url={server.procedures}", HELLO)

    # list: server-url, pid
    assert oet_ok("list", url, "--pid=2").splitlines()[1].split()[0] == "2"

    # start: server-url, pid, args, kwargs
    assert " RUNNING" in oet_ok("start", url, "--pid=2", "bob", "--simulate=false")
    wait_for_state(api, 2, "COMPLETED")
    assert (script_dir / "calls.run").read_text() == '[["bob"], {"simulate": "false"}]'

    # describe: server-url, pid
    assert f"{server.procedures}/2" in oet_ok("describe", url, "--pid=2")

    # listen: server-url, given as the docs' stream address
    with Follower([*OET, "listen", f"--server-url={server.api}/stream", "--raw"]) as listener:
        listener.wait_for_text("event: request.procedure.list", poke=lambda: api.get("/procedures"))
        assert listener.interrupt() == 0


STOP_FORMS = [
    ("--run_abort=False", False),
    ("--run_abort=false", False),
    ("--run_abort=0", False),
    ("--no-run_abort", False),
    ("--run_abort=True", True),
    ("--run_abort=true", True),
    ("--run_abort=1", True),
    ("--run_abort", True),
    ("--run_abort False", False),
    ("--run_abort True", True),
]


@pytest.mark.parametrize(
    ("option", "aborts"),
    first_also_on_kubernetes(STOP_FORMS, "the CLI parses the forms; one shows the stop"),
    ids=[f for f, _ in STOP_FORMS],
)
def test_stop_takes_run_abort_in_every_documented_form(
    server: Server, api: httpx.Client, script: Callable[[str], str], option: str, aborts: bool
) -> None:
    pid = create_id(api, script(ANNOUNCES_THEN_SLEEPS), subarray_id=1)
    start(api, pid)
    wait_for_state(api, pid, "RUNNING")

    message = oet_ok("stop", f"--server-url={server.procedures}", f"--pid={pid}", *option.split())

    if aborts:  # no Tango device here: the abort is attempted and reported as failed
        assert message.startswith(f"Stopped script with ID {pid}, but subarray activity was not")
    else:
        assert message == f"Successfully stopped script with ID {pid}\n"
    assert get(api, pid)["state"] == "STOPPED"


def test_a_boolean_option_with_a_value_that_is_not_true_or_false_is_a_usage_error() -> None:
    done = run_installed("stop", "--pid=1", "--run_abort=perhaps", env={})
    assert done.returncode == 2
    assert done.stderr.startswith("Error: Invalid value for '--run_abort': 'perhaps'")
    assert len(done.stderr.splitlines()) == 1


# -- start --wait ------------------------------------------------------------------------


def test_start_wait_prints_the_events_and_exits_0_when_the_procedure_completes(
    server: Server,
) -> None:
    env = {"OET_REST_URI": server.procedures}
    run_installed("create", HELLO, env=env)
    done = run_installed("start", "--wait", "Ada", env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[1].split()[-1] == "RUNNING"
    assert [line.split("  ")[1] for line in lines[2:]] == [
        "procedure.lifecycle.started",
        "user.script.hello",
        "procedure.lifecycle.complete",
    ]
    assert 'greeting="Hello, Ada!"' in lines[3]
    assert done.stderr == ""


def test_start_wait_exits_1_with_the_reason_when_the_procedure_fails(
    server: Server, script: Callable[[str], str]
) -> None:
    env = {"OET_REST_URI": server.procedures}
    run_installed("create", script(FAILS), env=env)
    done = run_installed("start", "--wait=True", env=env)
    assert done.returncode == 1
    assert "procedure.lifecycle.failed" in done.stdout
    assert done.stderr == (
        "Error: Procedure 1 FAILED: ZeroDivisionError: observing went wrong"
        " (oet describe --pid=1 shows the stack trace)\n"
    )


def test_start_wait_exits_3_with_the_reason_when_the_procedure_is_stopped(
    server: Server, api: httpx.Client, script: Callable[[str], str]
) -> None:
    env = {"OET_REST_URI": server.procedures}
    run_installed("create", script(ANNOUNCES_THEN_SLEEPS), env=env)
    with Follower([*OET, "start", "--pid=1", "--wait"], env) as waiting:
        waiting.wait_for_text("test.running")
        run_installed("stop", "--run_abort=False", env=env)
        assert waiting.process.wait(30) == 3
        assert "procedure.lifecycle.stopped" in waiting.output()
        assert waiting.stderr() == "Error: Procedure 1 STOPPED: Stopped on request\n"


def test_start_without_wait_returns_at_once_with_running(
    server: Server, api: httpx.Client, script: Callable[[str], str]
) -> None:
    env = {"OET_REST_URI": server.procedures}
    run_installed("create", script(ANNOUNCES_THEN_SLEEPS), env=env)
    done = run_installed("start", "--wait=false", env=env)
    assert done.returncode == 0
    assert done.stdout.splitlines()[1].split()[-1] == "RUNNING"
    assert get(api, 1)["state"] == "RUNNING"


# -- listen ------------------------------------------------------------------------------


def test_listen_prints_one_readable_line_per_event(server: Server) -> None:
    env = {"OET_REST_URI": server.procedures}
    with Follower([*OET, "listen"], env) as listener:
        listener.wait_for_text("request.procedure.list", poke=lambda: httpx.get(server.procedures))
        run_installed("create", HELLO, env=env)
        run_installed("start", "Ada", env=env)
        output = listener.wait_for_text("procedure.lifecycle.complete")
        assert listener.interrupt() == 0
    hello = next(line for line in output.splitlines() if "  user.script.hello  " in line)
    stamp, topic, pid, greeting = hello.split("  ")
    assert (topic, pid, greeting) == ("user.script.hello", "pid=1", 'greeting="Hello, Ada!"')
    assert len(stamp) == len("2026-01-01 00:00:00.000")
    assert "data:" not in output
    assert all(len(line.split("  ")) >= 3 for line in output.splitlines())


def test_listen_raw_prints_the_sse_lines_with_the_fields_at_the_top(server: Server) -> None:
    env = {"OET_REST_URI": server.procedures}
    with Follower([*OET, "listen", "--raw"], env) as listener:
        listener.wait_for_text("request.procedure.list", poke=lambda: httpx.get(server.procedures))
        run_installed("create", HELLO, env=env)
        run_installed("start", "Ada", env=env)
        output = listener.wait_for_text("event: procedure.lifecycle.complete")
        assert listener.interrupt() == 0
    blocks = output.split("\n\n")
    assert all(b.startswith("id: ") for b in blocks if b.strip())
    hello = next(e for e in data_of(output) if e["topic"] == "user.script.hello")
    assert hello["greeting"] == "Hello, Ada!"
    assert hello["procedure_id"] == 1


# -- the server's address ----------------------------------------------------------------


@pytest.mark.parametrize(
    "form",
    first_also_on_kubernetes(
        ["{base}", "{base}/", "{api}", "{api}/procedures"], "the CLI reads the address"
    ),
)
def test_the_server_url_may_be_the_host_the_api_or_the_procedures(
    server: Server, form: str
) -> None:
    address = form.format(base=server.base, api=server.api)
    for env in ({"OET_REST_URI": address}, {}):
        args = ["list"] if env else ["list", f"--server-url={address}"]
        done = run_installed(*args, env=env or {"OET_REST_URI": "http://nowhere.invalid:1"})
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("ID  Script")


def test_a_server_url_that_is_not_an_oet_api_gets_a_one_line_hint(server: Server) -> None:
    done = run_installed("list", env={"OET_REST_URI": f"{server.base}/oet"})
    assert done.returncode == 1
    assert done.stderr == (
        f"Error: No OET procedures collection at {server.base}/oet (404 Not Found: Not Found);"
        " the server URL should look like http://HOST:5000/api/v1.0/procedures\n"
    )


def test_oet_discard_forgets_an_idle_procedure_and_aborts_nothing(
    server: Server, api: httpx.Client
) -> None:
    env = {"OET_REST_URI": server.procedures}
    run_installed("create", HELLO, env=env)
    done = run_installed("discard", "--pid=1", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Discarded procedure 1 (CREATED); nothing was aborted\n"
    assert api.get("/procedures").json() == {"procedures": []}


def test_help_names_the_new_options() -> None:
    start_help = subprocess.run([*OET, "start", "--help"], capture_output=True, text=True)
    assert "--wait" in start_help.stdout
    listen_help = subprocess.run([*OET, "listen", "--help"], capture_output=True, text=True)
    assert "--raw" in listen_help.stdout
    stop_help = subprocess.run([*OET, "stop", "--help"], capture_output=True, text=True)
    assert "--run_abort=True/False" in " ".join(stop_help.stdout.split())


def test_with_a_server_token_oet_sends_it_for_create_start_wait_and_discard(
    make_server: Callable[..., Server],
) -> None:
    guarded = make_server(env={"OET_API_TOKEN": "s3cret-token"})
    env = {"OET_REST_URI": guarded.procedures, "OET_API_TOKEN": "s3cret-token"}
    assert run_installed("create", HELLO, env=env).returncode == 0

    waited = run_installed("start", "--wait", "Ada", env=env)
    assert waited.returncode == 0, waited.stderr
    assert "procedure.lifecycle.complete" in waited.stdout

    assert run_installed("create", HELLO, env=env).returncode == 0
    refused = run_installed("discard", "--pid=2", env={**env, "OET_API_TOKEN": ""})
    assert refused.returncode == 1
    assert refused.stderr.startswith("Error: 401 Unauthorized")
    assert "API token" in refused.stderr

    discarded = run_installed("discard", "--pid=2", env=env)
    assert discarded.returncode == 0, discarded.stderr
    assert discarded.stdout == "Discarded procedure 2 (CREATED); nothing was aborted\n"
    with guarded.client() as api:
        assert [p["state"] for p in api.get("/procedures").json()["procedures"]] == ["COMPLETED"]
