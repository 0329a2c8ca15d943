"""Processes a script starts end with its procedure, however they detach.

Each script starts a process that would otherwise live for an hour — a plain
child, a child in its own session (``setsid``), or a grandchild whose parent
exited at once (double fork) — writes its PID where the test can read it,
and then ends in one of three ways: ``run()`` returns (COMPLETED), the
operator stops it (STOPPED), or it ignores the stop and the server kills its
runner (STOPPED by the watchdog). In every case nothing it started is left.
"""

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server, wait_for
from tests.procedures import alive, create_id, start, stop, wait_for_state, written_json

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Each ``start_orphan`` runs in run() and leaves a process that sleeps for an hour.
FORKS = {
    "child": """
def start_orphan():
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"]).pid
""",
    "setsid child": """
def start_orphan():
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(3600)"], start_new_session=True
    )
    return child.pid
""",
    "double fork": """
def start_orphan():
    read, write = os.pipe()
    middle = os.fork()
    if middle == 0:
        os.setsid()
        grandchild = os.fork()
        if grandchild == 0:
            os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(3600)"])
        os.write(write, str(grandchild).encode())
        os._exit(0)
    os.waitpid(middle, 0)
    return int(os.read(read, 64))
""",
}

ENDINGS = {
    "completes": "return",
    "is stopped": "time.sleep(3600)",
    "ignores the stop": """
    while True:
        try:
            time.sleep(3600)
        except BaseException:
            pass""",
}


def script_source(fork: str, ending: str, pid_file: Path) -> str:
    return f"""
import json
import os
import subprocess
import sys
import time
{FORKS[fork]}

def run():
    orphan = start_orphan()
    with open({str(pid_file)!r} + ".tmp", "w") as out:
        json.dump(orphan, out)
    os.rename({str(pid_file)!r} + ".tmp", {str(pid_file)!r})
    {ENDINGS[ending].strip() if ending != "ignores the stop" else ENDINGS[ending]}
"""


@pytest.fixture
def quick_watchdog(make_server: Callable[..., Server]) -> Server:
    """A server that kills a runner whose script ignores a stop for 1 s."""
    return make_server(env={"OET_STOP_GRACE": "1"})


@pytest.mark.parametrize("ending", list(ENDINGS))
@pytest.mark.parametrize("fork", list(FORKS))
def test_nothing_a_script_started_outlives_its_procedure(
    quick_watchdog: Server, tmp_path: Path, fork: str, ending: str
) -> None:
    pid_file = tmp_path / f"orphan-{fork.replace(' ', '-')}-{ending.replace(' ', '-')}.json"
    script = tmp_path / f"forks_{len(list(tmp_path.glob('forks_*')))}.py"
    script.write_text(script_source(fork, ending, pid_file))
    with httpx.Client(base_url=quick_watchdog.api, timeout=60) as api:
        pid = create_id(api, f"file://{script}")
        start(api, pid)
        orphan = written_json(pid_file, "the script's orphan PID")
        if ending == "completes":
            wait_for_state(api, pid, "COMPLETED", timeout=30)
        else:
            assert alive(orphan)
            stop(api, pid)
            wait_for_state(api, pid, "STOPPED", timeout=30)
        wait_for(lambda: not alive(orphan), 10, f"process {orphan} ({fork}) to be gone")
