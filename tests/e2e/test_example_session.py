"""The user docs' example sessions, replayed end to end against a real server.

Once with the installed ``oet`` command ("REST CLIENT", 1.2 Examples) and
once with ``curl`` ("REST API", 2.1 Examples), asserting what a user would
notice: the tables and states, the JSON fields, the status codes and the
events that ``listen`` (or ``curl -N``) shows. The docs' scripts are written
into a temporary folder; they record how they were called.
"""

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.commands import OET, Follower, data_of
from tests.conftest import REPO, Server
from tests.procedures import written_json

pytestmark = [pytest.mark.e2e, pytest.mark.both_backends]

CURL = "/usr/bin/curl"
TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
SCRIPT = """\
import json, pathlib, time

def init(*args, **kwargs):
    pathlib.Path(__file__).with_suffix('.init.json').write_text(json.dumps([args, kwargs]))

def run(*args, **kwargs):
    pathlib.Path(__file__).with_suffix('.run.json').write_text(json.dumps([args, kwargs]))
    while True:  # observes until stopped
        time.sleep(0.02)
"""


def write_script(folder: Path, name: str) -> tuple[str, Path]:
    """The docs' script ``name`` in ``folder``: its file:// URI and path."""
    path = folder / name
    path.write_text(SCRIPT)
    return f"file://{path}", path


def called_with(script: Path, method: str) -> Any:
    """The arguments the script's ``method`` was called with, once it has been."""
    return written_json(
        script.with_suffix(f".{method}.json"), f"{script.name} {method}() to be called"
    )


# What a listener sees about procedure 2 from its start on, list requests aside.
START_THEN_STOP = [
    "request.procedure.start",
    "procedure.lifecycle.started",
    "request.procedure.stop",
    "procedure.lifecycle.stopped",
]


def topics_about(output: str, pid: int) -> list[str]:
    """The topics of the streamed events about procedure ``pid``, list requests aside."""
    return [
        e["topic"]
        for e in data_of(output)
        if e["procedure_id"] == pid and e["topic"] != "request.procedure.list"
    ]


def rows(table: str) -> list[list[str]]:
    """The data rows of an ``oet`` table, split into ID, Script, Creation time, State."""
    lines = table.splitlines()
    assert lines[0].split() == ["ID", "Script", "Creation", "time", "State"]
    result = []
    for line in lines[1:]:
        match = re.fullmatch(rf"(\d+)\s+(\S+)\s+({TIME})\s+([A-Z]+)", line)
        assert match, f"not a procedure row: {line!r}"
        result.append(list(match.groups()))
    return result


def test_the_oet_example_session(server: Server, script_dir: Path) -> None:
    env = {**os.environ, "OET_REST_URI": server.procedures}

    def oet(*args: str) -> str:
        done = subprocess.run(
            [*OET, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, f"oet {' '.join(args)} failed: {done.stderr}"
        assert done.stderr == ""
        return done.stdout

    test, test_path = write_script(script_dir, "test.py")
    test2, test2_path = write_script(script_dir, "test2.py")

    # $ oet create file://test.py 'hello' --verbose=true
    [created] = rows(oet("create", test, "hello", "--verbose=true"))
    assert (created[0], created[1], created[3]) == ("1", test, "CREATED")
    assert called_with(test_path, "init") == [["hello"], {"subarray_id": 1, "verbose": "true"}]

    # $ oet create file://test2.py 'goodbye'
    [created2] = rows(oet("create", test2, "goodbye"))
    assert (created2[0], created2[1], created2[3]) == ("2", test2, "CREATED")

    # $ oet list
    assert rows(oet("list")) == [created, created2]

    # $ oet list --pid=2
    assert rows(oet("list", "--pid=2")) == [created2]

    with Follower([*OET, "listen", "--raw"], {"OET_REST_URI": server.procedures}) as listener:
        listener.wait_for_text("event: request.procedure.list", poke=lambda: oet("list"))

        # $ oet start --pid=2 'bob' --simulate=false
        [started] = rows(oet("start", "--pid=2", "bob", "--simulate=false"))
        assert started == [*created2[:3], "RUNNING"]
        assert called_with(test2_path, "run") == [["bob"], {"simulate": "false"}]

        # $ oet list
        assert rows(oet("list")) == [created, started]

        # $ oet describe --pid=2
        identity, history, calls = oet("describe", "--pid=2").rstrip("\n").split("\n\n")
        assert identity.splitlines()[1].split() == ["2", test2, f"{server.procedures}/2"]
        assert [
            re.fullmatch(rf"({TIME}\.\d{{6}})  (\w+)", line) for line in history.splitlines()[1:]
        ]
        assert [line.split()[-1] for line in history.splitlines()] == [
            "State",
            "INITIALISING",
            "CREATED",
            "RUNNING",
        ]
        assert calls.splitlines() == [
            "Method  Arguments    Keyword Arguments",
            "init    ['goodbye']  {'subarray_id': 1}",
            "run     ['bob']      {'simulate': 'false'}",
        ]

        # $ oet stop   (the running one; no Tango device here, so the abort is reported as not done)
        message = oet("stop")
        assert message.startswith("Stopped script with ID 2, but subarray activity was not aborted")
        assert [row[3] for row in rows(oet("list"))] == ["CREATED", "STOPPED"]

        # $ oet listen   (running since before the start)
        output = listener.wait_for_text("event: procedure.lifecycle.stopped")
        assert topics_about(output, 2) == START_THEN_STOP
        assert listener.interrupt() == 0


def curl(*args: str) -> tuple[int, dict[str, str], Any]:
    """``curl -i ARGS``: the status code, headers (lower-case names) and JSON body."""
    done = subprocess.run([CURL, "-s", "-i", *args], capture_output=True, timeout=60, check=True)
    head, _, body = done.stdout.decode().partition("\r\n\r\n")
    status_line, *header_lines = head.split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), headers, json.loads(body)


def test_the_curl_example_session(server: Server, script_dir: Path) -> None:
    url = server.procedures
    allocation, _ = write_script(script_dir, "resource_allocation.py")
    observing, observing_path = write_script(script_dir, "observing_script.py")
    sb_uri = "file:///path/to/scheduling_block_123.json"
    json_type = ("-H", "Content-Type: application/json")

    # 2.1.1 Creating a procedure (here #1 allocates resources, #2 observes, as in 2.1.2)
    body = {"script_uri": allocation, "script_args": {"init": {"kwargs": {"dishes": [1, 2, 3]}}}}
    status, _, _ = curl(*json_type, "-X", "POST", "-d", json.dumps(body), url)
    assert status == 201
    body = {
        "script_uri": observing,
        "script_args": {"init": {"kwargs": {"subarray_id": 1, "sb_uri": sb_uri}}},
    }
    status, headers, created = curl(*json_type, "-X", "POST", "-d", json.dumps(body), url)
    assert status == 201
    assert headers["content-type"] == "application/json"
    procedure = created["procedure"]
    assert procedure["uri"] == f"{url}/2"
    assert procedure["script_uri"] == observing
    assert procedure["state"] == "CREATED"
    assert procedure["script_args"] == {
        "init": {"args": [], "kwargs": {"subarray_id": 1, "sb_uri": sb_uri}},
        "run": {"args": [], "kwargs": {}},
    }
    assert list(procedure["history"]["process_states"]) == ["INITIALISING", "CREATED"]
    assert procedure["history"]["stacktrace"] is None
    assert called_with(observing_path, "init") == [[], {"subarray_id": 1, "sb_uri": sb_uri}]

    # 2.1.2 Listing all procedures
    status, _, listing = curl(url)
    assert status == 200
    assert [p["uri"] for p in listing["procedures"]] == [f"{url}/1", f"{url}/2"]
    assert listing["procedures"][0]["script_args"]["init"]["kwargs"] == {"dishes": [1, 2, 3]}

    # 2.1.3 Listing one procedure
    status, _, one = curl(f"{url}/1")
    assert status == 200
    assert one["procedure"] == listing["procedures"][0]

    # 2.1.7 Listen real time oet events (followed from here on)
    with Follower([CURL, "-s", "-N", f"{server.api}/stream"]) as stream:
        stream.wait_for_text("event: request.procedure.list", poke=lambda: httpx.get(url))

        # 2.1.4 Starting procedure execution
        start = {"script_args": {"run": {"kwargs": {"scan_duration": 14.0}}}, "state": "RUNNING"}
        status, _, running = curl(*json_type, "-X", "PUT", "-d", json.dumps(start), f"{url}/2")
        assert status == 200
        assert running["procedure"]["state"] == "RUNNING"
        assert running["procedure"]["script_args"]["run"] == {
            "args": [],
            "kwargs": {"scan_duration": 14.0},
        }
        assert "RUNNING" in running["procedure"]["history"]["process_states"]
        assert called_with(observing_path, "run") == [[], {"scan_duration": 14.0}]

        # 2.1.5 Aborting process execution
        stop = {"abort": True, "state": "STOPPED"}
        status, _, stopped = curl(*json_type, "-X", "PUT", "-d", json.dumps(stop), f"{url}/2")
        assert status == 200
        assert set(stopped) == {"abort_message"}
        # with no Tango device to receive Abort, the message says the abort was not done
        assert stopped["abort_message"].startswith(
            "Stopped script with ID 2, but subarray activity was not aborted"
        )
        assert httpx.get(f"{url}/2").json()["procedure"]["state"] == "STOPPED"

        output = stream.wait_for_text("event: procedure.lifecycle.stopped")
        assert topics_about(output, 2) == START_THEN_STOP
        assert re.search(r"^id: \d+$", output, re.M)
        stream.interrupt()

    # 2.1.6 When an error occurs
    status, headers, error = curl(f"{url}/4")
    assert status == 404
    assert headers["content-type"] == "application/json"
    assert error == {
        "error": "404 Not Found",
        "type": "ResourceNotFound",
        "Message": "No information available for PID=4",
    }
