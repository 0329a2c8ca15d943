"""Every command in README.md works as written, against a real server, twice.

The ``$ `` lines of each section's ``console`` blocks are run in order, each
in its own shell (so each line works when copied on its own), against a
real server, with the README's address replaced by the server's. Commands
that follow a stream (``oet listen``, ``curl -N``) run until their first
event arrives and are then interrupted, as a user would with Ctrl-C. Each
section runs twice on the same server: the examples must not depend on the
server being fresh.
"""

import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
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
    """The ``$ `` lines of the README's console blocks (of one ``## `` section).

    A trailing comment (two spaces, then ``#``) is left out.
    """
    text = README.read_text()
    if section is not None:
        text = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```console\n(.*?)```", text, re.S)
    lines = [line[2:] for block in blocks for line in block.splitlines() if line.startswith("$ ")]
    return [re.sub(r"\s{2,}#.*$", "", line).strip() for line in lines]


def follow_until_first_event(command: str, env: dict[str, str], server: Server) -> str:
    """Run a stream-following command until it shows an event, then Ctrl-C it."""
    with Follower(["bash", "-c", f"exec {command}"], env) as follower:
        output = follower.wait_for_text(
            "request.procedure.list", poke=lambda: httpx.get(server.procedures)
        )
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
            assert "request.procedure.list" in follow_until_first_event(command, env, server)
            continue
        done = subprocess.run(
            ["bash", "-c", command], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, f"{command!r} failed:\n{done.stdout}\n{done.stderr}"
        assert "Traceback" not in done.stderr


def newest_states(server: Server, count: int) -> list[str]:
    listing = httpx.get(server.procedures).json()["procedures"]
    return [p["state"] for p in sorted(listing, key=pid_of)[-count:]]


@pytest.mark.e2e
def test_readme_oet_session_works_twice_on_one_server(server: Server) -> None:
    for _ in range(2):
        run_section("A session with the `oet` command", server)
        assert newest_states(server, 3) == ["COMPLETED", "COMPLETED", "STOPPED"]


@pytest.mark.e2e
@pytest.mark.parametrize("section", ["A session with the `oet` command", "The same with curl"])
def test_readme_sections_work_again_after_a_server_restart(
    make_server: Callable[..., Server], section: str
) -> None:
    first = make_server()
    run_section(section, first)
    first.stop()
    second = make_server(db_path=first.db_path, port=first.port)
    run_section(section, second)
    assert "STOPPED" in newest_states(second, 1)


@pytest.mark.e2e
def test_readme_curl_session_works_twice_on_one_server(server: Server) -> None:
    for _ in range(2):
        run_section("The same with curl", server)
        assert newest_states(server, 2) == ["COMPLETED", "STOPPED"]
        newest = sorted(httpx.get(server.procedures).json()["procedures"], key=pid_of)[-1]
        assert "Abort" in newest["history"]["reason"]  # the outcome is recorded either way


@pytest.mark.e2e
def test_readme_curl_examples_that_send_a_body_say_it_is_json() -> None:
    sending = [c for c in readme_commands() if c.startswith("curl") and " -d " in c]
    assert sending
    assert all("-H 'Content-Type: application/json'" in c for c in sending)


@pytest.mark.e2e
def test_readme_gives_the_two_setup_commands() -> None:
    commands = readme_commands("Set up and run")
    assert commands[:2] == ["make rest", "make test"]


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_make_rest_on_a_fresh_machine_installs_without_warnings_and_serves(
    tmp_path: Path,
) -> None:
    # A fresh virtualenv (VENV=...), so the install step really runs, as on a new machine.
    port = free_port()
    env = {**os.environ, "OET_DB_PATH": str(tmp_path / "oet.sqlite3")}
    output = tmp_path / "make-rest.out"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            ["make", "-s", "rest", f"PORT={port}", f"VENV={tmp_path / 'venv'}"],
            cwd=REPO,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/api/v1.0/procedures"

    def answers() -> bool:
        assert process.poll() is None, f"make rest exited:\n{output.read_text()}"
        try:
            return bool(httpx.get(url, timeout=1).json() == {"procedures": []})
        except httpx.TransportError:
            return False

    try:
        wait_for(answers, 600, "make rest to install OET and serve")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
    printed = output.read_text()
    assert not re.search(r"(?i)warning|deprecat", printed), printed
