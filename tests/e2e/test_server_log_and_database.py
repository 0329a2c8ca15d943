"""What the server's own resources can take: its log, and its procedure database.

A script that prints without end gets a bounded share of the server log,
and the log says what was left out. A database the server cannot write
stops it at start-up with one clear line instead of failing the first create.
"""

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, Server, free_port
from tests.procedures import create_id, start, wait_for_state

pytestmark = pytest.mark.e2e

# Prints 20 MB in one call, then 20 MB more line by line.
PRINTS_A_LOT = """
import sys

def run():
    print("x" * 20_000_000)
    for _ in range(20_000):
        print("y" * 999)
    print("the end", file=sys.stderr)
"""


def test_a_script_printing_without_end_gets_a_bounded_share_of_the_server_log(
    make_server: Callable[..., Server], script: Callable[[str], str]
) -> None:
    server = make_server(env={"OET_SCRIPT_OUTPUT_LIMIT": "65536"})
    before = server.log.stat().st_size
    with server.client() as api:
        pid = create_id(api, script(PRINTS_A_LOT))
        start(api, pid)
        wait_for_state(api, pid, "COMPLETED", timeout=60)
        api.get("/procedures")  # the runner's output is copied before its end is reported
    server.stop()

    log = server.log.read_bytes()[before:]
    assert len(log) < 65536 + 16384, f"the log grew by {len(log)} bytes"
    assert b"x" * 1000 in log  # what fits is kept
    assert f"procedure {pid}: script output over 65536 bytes".encode() in log
    assert b"bytes of script output left out of this log" in log


@contextlib.contextmanager
def read_only(path: Path | None) -> Iterator[None]:
    """Make ``path`` and its folder unwritable, even for root (``chattr +i``), for a while."""
    if path is None:
        yield
        return
    targets = [str(path), str(path.parent)]
    if os.geteuid() != 0:
        path.chmod(0o444)
        path.parent.chmod(0o555)
        try:
            yield
        finally:
            path.parent.chmod(0o755)
        return
    if shutil.which("chattr") is None:
        pytest.skip("root needs chattr to make a file read-only")
    if subprocess.run(["chattr", "+i", *targets], capture_output=True).returncode != 0:
        pytest.skip("this filesystem has no immutable files")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *targets], check=True)


def start_server(db_path: Path) -> subprocess.CompletedProcess[str]:
    """Run ``oet-rest`` with ``db_path``, expecting it to refuse to start."""
    env = {**os.environ, "OET_DB_PATH": str(db_path)}
    command = [sys.executable, "-m", "oet.api.server", "--port", str(free_port())]
    return subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("problem", ["a directory", "under a file", "read-only file"])
def test_a_database_that_cannot_be_written_stops_the_server_at_start_up(
    tmp_path: Path, problem: str
) -> None:
    if problem == "a directory":
        db_path = tmp_path / "oet.sqlite3"
        db_path.mkdir()
    elif problem == "under a file":
        (tmp_path / "plain-file").write_text("")
        db_path = tmp_path / "plain-file" / "oet.sqlite3"
    else:
        db_path = tmp_path / "oet.sqlite3"
        Server(db_path).start().stop()
        for leftover in tmp_path.glob("oet.sqlite3-*"):
            leftover.unlink()
    with read_only(db_path if problem == "read-only file" else None):
        done = start_server(db_path)

    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if "oet-rest:" in line]
    assert len(lines) == 1, done.stderr
    assert "cannot write the procedure database" in lines[0]
    assert "Traceback" not in done.stderr


def test_a_database_that_sqlite_cannot_write_is_found_at_start_up(tmp_path: Path) -> None:
    db_path = tmp_path / "oet.sqlite3"
    db_path.write_bytes(b"this is not an SQLite database, though it has its name" * 100)

    done = start_server(db_path)

    assert done.returncode == 1
    assert "cannot write the procedure database" in done.stderr
