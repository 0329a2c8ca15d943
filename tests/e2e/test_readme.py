"""Every command in README.md works as written, against a real server.

The ``$ `` lines of each section's ``console`` blocks are run in a shell, in
order, against a fresh server, with the README's address replaced by the
server's. Commands that follow a stream (``oet listen``, ``curl -N``) run
until their first event arrives and are then interrupted, as a user would
with Ctrl-C.
"""

import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.commands import Follower
from tests.conftest import REPO, Server, free_port, wait_for
from tests.procedures import pid_of

README = REPO / "README.md"
ADDRESS = "http://127.0.0.1:5000"
BIN = Path(sys.executable).parent


def readme_commands(section: str | None = None) -> list[str]:
    """The ``$ `` lines of the README's console blocks (of one ``## `` section)."""
    text = README.read_text()
    if section is not None:
        text = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```console\n(.*?)```", text, re.S)
    lines = [line[2:] for block in blocks for line in block.splitlines() if line.startswith("$ ")]
    return [shlex.join(shlex.split(line, comments=True)) for line in lines]


def follow_until_first_event(command: str, env: dict[str, str], server: Server) -> str:
    """Run a stream-following command until it prints an event, then Ctrl-C it."""
    with Follower(["bash", "-c", f"exec {command}"], env) as follower:
        output = follower.wait_for_text("event:", poke=lambda: httpx.get(server.procedures))
        follower.interrupt()
    return output


def run_section(section: str, server: Server) -> None:
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "OET_REST_URI": server.procedures,
    }
    commands = [c for c in readme_commands(section) if not c.startswith(("make ", ". ", "export "))]
    assert commands, f"no commands in section {section!r}"
    for command in commands:
        command = command.replace(ADDRESS, server.base)
        if command.startswith("oet listen") or " -N " in command:
            assert "event:" in follow_until_first_event(command, env, server)
            continue
        done = subprocess.run(
            command, shell=True, cwd=REPO, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, f"{command!r} failed:\n{done.stdout}\n{done.stderr}"
        assert "Traceback" not in done.stderr


def states(server: Server) -> dict[int, str]:
    listing = httpx.get(server.procedures).json()["procedures"]
    return {pid_of(p): p["state"] for p in listing}


@pytest.mark.e2e
def test_readme_oet_session_runs_one_procedure_and_stops_another(server: Server) -> None:
    run_section("A session with the `oet` command", server)
    final = states(server)
    assert final[1] == "COMPLETED"
    assert final[2] == "COMPLETED"
    assert final[3] == "STOPPED"


@pytest.mark.e2e
def test_readme_curl_session_runs_one_procedure_and_stops_another(server: Server) -> None:
    run_section("The same with curl", server)
    final = states(server)
    assert final == {1: "COMPLETED", 2: "STOPPED"}
    reason = httpx.get(f"{server.procedures}/2").json()["procedure"]["history"]["reason"]
    assert "Abort" in reason  # whether or not a subarray answered, the outcome is recorded


@pytest.mark.e2e
def test_readme_gives_the_two_setup_commands() -> None:
    commands = readme_commands("Set up and run")
    assert commands[:2] == ["make rest", "make test"]


@pytest.mark.e2e
def test_make_rest_serves_the_api_on_the_requested_port(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "OET_DB_PATH": str(tmp_path / "oet.sqlite3")}
    process = subprocess.Popen(
        ["make", "-s", "rest", f"PORT={port}"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api/v1.0/procedures"

    def answers() -> bool:
        assert process.poll() is None, "make rest exited"
        try:
            return bool(httpx.get(url, timeout=1).json() == {"procedures": []})
        except httpx.TransportError:
            return False

    try:
        wait_for(answers, 120, "make rest to serve")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
