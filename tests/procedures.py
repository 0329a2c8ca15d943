"""Driving procedures through a real OET server, and the scripts they run.

Shared by the end-to-end and integration tests: the small script sources they
create procedures from, and helpers for the REST calls they all make (create,
read, start, stop, wait for a state) and for finding a server's runner
processes. Every helper that makes a request checks its status code, so a test
only spells out a request where the request itself is what it tests.

    from tests.procedures import SLEEPER, create_id, start, wait_for_state
"""

import array
import contextlib
import fcntl
import json
import os
import termios
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import Server, wait_for

FINAL_STATES = frozenset({"COMPLETED", "FAILED", "STOPPED"})

# -- scripts ---------------------------------------------------------------------

# Returns at once, whatever it is started with.
QUICK = """
def run(*args, **kwargs):
    pass
"""

# Sleeps quietly in run() for far longer than any test lasts.
SLEEPER = """
import time


def run(seconds=120):
    time.sleep(seconds)
"""

# Publishes ``test.running`` once inside run(), then sleeps for an hour.
ANNOUNCES_THEN_SLEEPS = """
import time
from oet import scripting


def init(subarray_id=None):
    pass


def run(*args, **kwargs):
    scripting.publish("test.running")
    time.sleep(3600)
"""

# Swallows every stop in silence, so it ends only when the stop grace period is over.
SWALLOWS_STOP = """
import time


def run():
    while True:
        try:
            time.sleep(1)
        except BaseException:
            pass
"""

# Publishes ``test.running`` once, then ignores every stop, saying ``test.ignored_stop``.
IGNORES_STOP = """
import time
from oet import scripting


def init(subarray_id=None):
    pass


def run():
    announced = False
    while True:
        try:
            if not announced:
                announced = True
                scripting.publish("test.running")
            time.sleep(3600)
        except BaseException:
            scripting.publish("test.ignored_stop")
"""


def slow_init(seconds: float) -> str:
    """The source of a script whose init() takes ``seconds`` and whose run() returns at once."""
    return f"""
import time


def init():
    time.sleep({seconds})


def run():
    pass
"""


# -- REST calls --------------------------------------------------------------------


def pid_of(procedure: dict[str, Any]) -> int:
    """The numeric ID at the end of a procedure's ``uri``."""
    return int(procedure["uri"].rsplit("/", 1)[1])


def create(api: httpx.Client, script_uri: str, **script_args: Any) -> dict[str, Any]:
    """POST a procedure and return it; it must be answered with 201.

    ``script_args`` are sent as they are: ``init={"args": [...], "kwargs": {...}}``
    and ``run={...}``; none are sent when none are given.
    """
    body: dict[str, Any] = {"script_uri": script_uri}
    if script_args:
        body["script_args"] = script_args
    response = api.post("/procedures", json=body)
    assert response.status_code == 201, response.text
    procedure: dict[str, Any] = response.json()["procedure"]
    return procedure


def create_id(api: httpx.Client, script_uri: str, **init_kwargs: Any) -> int:
    """Create a procedure whose init() gets ``init_kwargs``; its ID. It must be CREATED."""
    script_args = {"init": {"kwargs": init_kwargs}} if init_kwargs else {}
    procedure = create(api, script_uri, **script_args)
    assert procedure["state"] == "CREATED", procedure
    return pid_of(procedure)


def get(api: httpx.Client, pid: int) -> dict[str, Any]:
    """GET procedure ``pid``; it must exist."""
    response = api.get(f"/procedures/{pid}")
    assert response.status_code == 200, response.text
    procedure: dict[str, Any] = response.json()["procedure"]
    return procedure


def state_of(api: httpx.Client, pid: int) -> str:
    """The state procedure ``pid`` is in now."""
    state: str = get(api, pid)["state"]
    return state


def start(api: httpx.Client, pid: int, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Start procedure ``pid``, which must be answered with 200; the started procedure.

    ``args`` and ``kwargs`` go to run(); with neither, no run arguments are sent,
    so those given at create are used.
    """
    body: dict[str, Any] = {"state": "RUNNING"}
    if args or kwargs:
        body["script_args"] = {"run": {"args": list(args), "kwargs": kwargs}}
    response = api.put(f"/procedures/{pid}", json=body)
    assert response.status_code == 200, response.text
    procedure: dict[str, Any] = response.json()["procedure"]
    return procedure


def stop(api: httpx.Client, pid: int, abort: bool = False) -> str:
    """Stop procedure ``pid``, which must be answered with 200; the ``abort_message``."""
    response = api.put(f"/procedures/{pid}", json={"state": "STOPPED", "abort": abort})
    assert response.status_code == 200, response.text
    message: str = response.json()["abort_message"]
    return message


def wait_for_state(api: httpx.Client, pid: int, state: str, timeout: float = 15) -> dict[str, Any]:
    """Wait until procedure ``pid`` is in ``state``; fail early if it ends otherwise."""

    def reached() -> dict[str, Any] | None:
        procedure = get(api, pid)
        if procedure["state"] != state and procedure["state"] in FINAL_STATES:
            raise AssertionError(f"procedure {pid} ended {procedure['state']}, not {state}")
        return procedure if procedure["state"] == state else None

    result: dict[str, Any] = wait_for(reached, timeout, f"procedure {pid} to be {state}")  # type: ignore[assignment]
    return result


def run_until(api: httpx.Client, script_uri: str, state: str) -> int:
    """Create a procedure from ``script_uri``, start it and wait until it is ``state``; its ID."""
    pid = create_id(api, script_uri)
    start(api, pid)
    wait_for_state(api, pid, state)
    return pid


# -- runner processes ---------------------------------------------------------------


def runner_pids(server: Server, spares: bool = False) -> set[int]:
    """The runner subprocesses of ``server`` running a procedure, found through /proc.

    A runner names itself ``oet-spare`` while it waits for its load command and
    ``oet-runner-<id>`` once it has loaded its procedure; the idle spares the
    server keeps ready are left out, unless ``spares``. The zygote the spares
    are forked from (``oet-zygote``) is not a runner.

    On the Kubernetes backend the runners are the processes of the runner
    Pods of the server's namespace (on this same machine), not its children.
    """
    assert server.process is not None
    if server.env.get("OET_BACKEND") == "kubernetes":
        return set(pod_runners(server.env["OET_KUBE_NAMESPACE"]))
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
            comm = (entry / "comm").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        loaded = comm.startswith("oet-runner-")
        spare = comm.strip() == "oet-spare"
        runner = ppid == server.process.pid and b"oet.runner" in cmdline
        if runner and (loaded or (spares and spare)):
            found.add(int(entry.name))
    return found


def pod_runners(namespace: str) -> dict[int, str]:
    """The runners of ``namespace``'s runner Pods (on this machine): host PID → Procedure name.

    Found by their environment; a runner that has exited has none left (a
    zombie's is empty), so only live ones are found.
    """
    wanted = f"OET_PROCEDURE_NAMESPACE={namespace}".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"oet.runner" in cmdline and wanted in environ:
            names = [v.split(b"=", 1)[1] for v in environ if v.startswith(b"OET_PROCEDURE_NAME=")]
            found[int(entry.name)] = names[0].decode() if names else ""
    return found


def spare_pids(server: Server) -> set[int]:
    """The idle spare runners of ``server``."""
    return runner_pids(server, spares=True) - runner_pids(server)


def wait_for_spares(server: Server, count: int, timeout: float = 20) -> set[int]:
    """Wait until ``server`` has exactly ``count`` idle spares; return their PIDs."""
    return _wait_for_exactly(lambda: spare_pids(server), count, timeout, "spare runners")


def _wait_for_exactly(
    find: Callable[[], set[int]], count: int, timeout: float, what: str
) -> set[int]:
    """Wait until ``find()`` returns exactly ``count`` PIDs; return them."""
    found: set[int] = set()

    def settled() -> bool:
        nonlocal found
        found = find()
        return len(found) == count

    wait_for(settled, timeout, f"{count} {what}")
    return found


def unread_input(pid: int) -> int:
    """Bytes written to process ``pid``'s pipes that it has not read yet.

    Each pipe it holds is opened again through /proc (a new reader of the same pipe) and
    asked how much waits in it (FIONREAD); nothing is read.
    """
    waiting = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if not os.readlink(fd).startswith("pipe:"):
                continue
            reader = os.open(fd, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            waiting += unread_bytes(reader)
        finally:
            os.close(reader)
    return waiting


def unread_bytes(fd: int) -> int:
    """How many bytes wait in the pipe behind ``fd`` (FIONREAD)."""
    count = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, count)
    return count[0]


def alive(pid: int) -> bool:
    """True while ``pid`` exists and has not exited (a zombie waiting to be reaped has)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def children_of(pid: int) -> dict[int, str]:
    """The children of process ``pid``: PID → state letter (``Z`` for a zombie)."""
    found: dict[int, str] = {}
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                for child in (task / "children").read_text().split():
                    with contextlib.suppress(OSError):
                        stat = Path(f"/proc/{child}/stat").read_text()
                        found[int(child)] = stat.rsplit(")", 1)[1].split()[0]
    return found


def zygote_pids(server: Server) -> set[int]:
    """The runner zygotes (``oet-zygote``) among the children of ``server``, live ones only."""
    assert server.process is not None
    found = set()
    for child, state in children_of(server.process.pid).items():
        with contextlib.suppress(OSError):
            if state != "Z" and Path(f"/proc/{child}/comm").read_text().strip() == "oet-zygote":
                found.add(child)
    return found


def wait_for_runners(server: Server, count: int, timeout: float = 10) -> set[int]:
    """Wait until ``server`` has exactly ``count`` runner processes; return their PIDs."""
    return _wait_for_exactly(lambda: runner_pids(server), count, timeout, "runner processes")


def written_json(path: Path, what: str, timeout: float = 20) -> Any:
    """The JSON a script writes to ``path``, once the file is there and complete.

    A script's ``write_text`` creates the file before it fills it, so waiting
    for the file to exist is not enough.
    """

    def parsed() -> list[Any] | None:
        try:
            return [json.loads(path.read_text())]
        except (FileNotFoundError, ValueError):
            return None

    found = wait_for(parsed, timeout, what)
    assert isinstance(found, list)
    return found[0]
