"""Runners forked from the zygote: what forking adds to warm runners.

Spares are forked from one process that imported the runner (``oet-zygote``)
and adopted by the server. The zygote is a moving part of its own: killed, it
is replaced; it never outlives its server; what one script changes in the
modules the zygote had imported is not seen by the next; and what a killed
runner leaves behind, now adopted by the server, is reaped.
"""

import contextlib
import os
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import Server, wait_for
from tests.procedures import (
    QUICK,
    SWALLOWS_STOP,
    alive,
    children_of,
    create,
    create_id,
    pid_of,
    run_until,
    runner_pids,
    start,
    stop,
    wait_for_spares,
    wait_for_state,
    written_json,
    zygote_pids,
)

pytestmark = pytest.mark.e2e

# Changes the state of modules every runner has imported before its script.
CHANGES_SHARED_MODULES = """
import json
import sys
from pubsub import pub
from oet import scripting

def listener(**kwargs):
    pass

def init():
    scripting.left_by_first = "left by the first script"
    json.left_by_first = True
    pub.subscribe(listener, "test.left_behind")
    sys.left_by_first = True
    import email.mime.text  # imported by no runner before a script

def run():
    pass
"""

# Reports whether it finds those changes.
LOOKS_AT_SHARED_MODULES = """
import json as json_module
import os
import sys
from pubsub import pub
from oet import scripting

def init(report):
    found = {
        "scripting": getattr(scripting, "left_by_first", None),
        "json": hasattr(json_module, "left_by_first"),
        "pubsub": pub.getDefaultTopicMgr().getTopic("test.left_behind", okIfNone=True) is not None,
        "sys": hasattr(sys, "left_by_first"),
        "email": "email.mime.text" in sys.modules,
        "pid": os.getpid(),
        "parent": os.getppid(),
    }
    with open(report + ".tmp", "w") as out:
        json_module.dump(found, out)
    os.replace(report + ".tmp", report)

def run():
    pass
"""

# Starts a child that sleeps for an hour, then swallows every stop.
STARTS_CHILD_THEN_SWALLOWS_STOP = (
    """
import subprocess, sys

def init():
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
"""
    + SWALLOWS_STOP
)


def the_zygote(server: Server, timeout: float = 20) -> int:
    """Wait until ``server`` has exactly one live zygote; return its PID."""
    found: set[int] = set()

    def one() -> bool:
        nonlocal found
        found = zygote_pids(server)
        return len(found) == 1

    wait_for(one, timeout, "one runner zygote")
    return found.pop()


def test_spares_are_forked_by_the_zygote_and_are_the_servers_children(server: Server) -> None:
    zygote = the_zygote(server)
    spare = wait_for_spares(server, 1).pop()
    assert server.process is not None
    assert spare in children_of(server.process.pid), "the server is the spare's parent"
    assert (
        Path(f"/proc/{spare}/cmdline").read_bytes() == Path(f"/proc/{zygote}/cmdline").read_bytes()
    ), "the spare is a fork of the zygote (same command line)"


def test_a_killed_zygote_is_replaced_and_procedures_still_load(
    server: Server, script: Callable[[str], str]
) -> None:
    zygote = the_zygote(server)
    wait_for_spares(server, 1)
    os.kill(zygote, signal.SIGKILL)
    wait_for(lambda: zygote not in zygote_pids(server), 10, "the killed zygote to go")
    with server.client() as api:
        run_until(api, script(QUICK), "COMPLETED")  # in the spare forked before
        replacement = the_zygote(server)
        assert replacement != zygote
        killed = wait_for_spares(server, 1)  # forked by the new zygote
        for spare in killed:
            os.kill(spare, signal.SIGKILL)
        # Gone for the server too: a create at the instant of the kill may still get it.
        wait_for(lambda: not any(map(alive, killed)), 10, "the killed spare to go")
        run_until(api, script(QUICK), "COMPLETED")  # forked on demand, or a fresh spare


def test_a_procedure_stopped_while_its_runner_is_forked_ends_stopped_and_its_script_never_runs(
    server: Server, script: Callable[[str], str], tmp_path: Path
) -> None:
    ran = tmp_path / "init-ran"
    writes_when_loaded = f"""
open({str(ran)!r}, "w").close()

def init():
    pass

def run():
    pass
"""
    zygote = the_zygote(server)
    (spare,) = wait_for_spares(server, 1)
    os.kill(zygote, signal.SIGSTOP)  # no runner can be forked until it goes on
    try:
        os.kill(spare, signal.SIGKILL)
        wait_for(lambda: not alive(spare), 10, "the killed spare to go")
        with ThreadPoolExecutor(2) as pool, server.client() as api, server.client() as other:
            creating = pool.submit(create, api, script(writes_when_loaded))

            pids: list[int] = []

            def recorded() -> bool:
                pids[:] = [pid_of(p) for p in other.get("/procedures").json()["procedures"]]
                return bool(pids)

            wait_for(recorded, 20, "the procedure to be recorded")
            (pid,) = pids
            stopping = pool.submit(stop, other, pid)
            wait_for_state(api, pid, "STOPPING")
            os.kill(zygote, signal.SIGCONT)
            created, message = creating.result(60), stopping.result(60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(zygote, signal.SIGCONT)

    assert created["state"] == "STOPPED"
    assert created["history"]["reason"] == "Stopped before the script was loaded"
    assert message == f"Successfully stopped script with ID {pid}"
    assert not ran.exists(), "the script of a stopped procedure was loaded"


def test_a_script_does_not_see_what_the_previous_one_changed_in_shared_modules(
    server: Server, script: Callable[[str], str], tmp_path: Path
) -> None:
    with server.client() as api:
        first = create_id(api, script(CHANGES_SHARED_MODULES))
        start(api, first)
        wait_for_state(api, first, "COMPLETED")
        wait_for_spares(server, 1)
        report = tmp_path / "found.json"
        create_id(api, script(LOOKS_AT_SHARED_MODULES), report=str(report))
        found = written_json(report, "the second script's report")

    assert server.process is not None
    assert found["parent"] == server.process.pid
    assert found["scripting"] is None
    assert found["json"] is False
    assert found["pubsub"] is False
    assert found["sys"] is False
    assert found["email"] is False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["shutdown", "killed"])
def test_no_zygote_or_runner_outlives_its_server(
    server: Server, script: Callable[[str], str], sig: int
) -> None:
    with server.client() as api:
        create_id(api, script(QUICK))  # a loaded runner, idle in CREATED
        left = runner_pids(server) | wait_for_spares(server, 1) | {the_zygote(server)}
    assert len(left) == 3
    server.stop(sig)
    # After a SIGKILL the runners see their pipes close: the loaded one ends its script
    # (stop_grace) and exits, the spare and the zygote exit at once.
    wait_for(lambda: not any(map(alive, left)), 20, "the zygote and the runners to exit")


def test_processes_a_killed_runner_leaves_behind_are_reaped(
    make_server: Callable[..., Server], script: Callable[[str], str]
) -> None:
    server = make_server(env={"OET_STOP_GRACE": "1"})
    assert server.process is not None
    with server.client() as api:
        pid = create_id(api, script(STARTS_CHILD_THEN_SWALLOWS_STOP))
        runner = runner_pids(server).pop()
        start(api, pid)
        stop(api, pid)  # the watchdog kills the runner and its child after 1 s
        wait_for_state(api, pid, "STOPPED", timeout=30)
    wait_for(lambda: not alive(runner), 10, "the runner to be killed")

    def no_zombie() -> bool:
        return "Z" not in children_of(server.process.pid).values()

    # The runner's child, killed first, waits as a zombie of the killed runner
    # and is then adopted by the server, which must reap it.
    wait_for(no_zombie, 10, "no zombie among the server's children")
