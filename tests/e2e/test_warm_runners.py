"""Warm runners: the spare runner processes that make creating a procedure quick.

The server keeps ``warm_runners`` runners started ahead of need. Handing a
procedure to a spare must change nothing a script or an operator can see:
one process per procedure, nothing of one script visible to the next, a spare
that dies replaced, none left behind when the server stops.
"""

import contextlib
import os
import re
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import Server, wait_for
from tests.procedures import (
    QUICK,
    alive,
    create,
    create_id,
    run_until,
    runner_pids,
    spare_pids,
    start,
    unread_input,
    wait_for_spares,
    wait_for_state,
    written_json,
)

pytestmark = pytest.mark.e2e

# Leaves every kind of process-wide trace a script can leave behind.
LITTERS = """
import os, sys, types
import neighbour

def init(scratch):
    neighbour.value = "left by the first script"
    sys.modules["oet_test_litter"] = types.ModuleType("oet_test_litter")
    os.environ["OET_TEST_LITTER"] = "left by the first script"
    os.chdir(scratch)

def run():
    pass
"""

# Reports what it finds of those traces, and where it runs.
LOOKS = """
import json, os, sys
import neighbour

def init(report):
    found = {
        "neighbour": getattr(neighbour, "value", None),
        "module": "oet_test_litter" in sys.modules,
        "environ": os.environ.get("OET_TEST_LITTER"),
        "cwd": os.getcwd(),
        "pid": os.getpid(),
        "server_env": os.environ.get("OET_TEST_SERVER_ENV"),
    }
    with open(report + ".tmp", "w") as out:
        json.dump(found, out)
    os.replace(report + ".tmp", report)

def run():
    pass
"""


def test_a_procedure_sees_nothing_the_previous_one_left_behind(
    make_server: Callable[..., Server], script: Callable[[str], str], tmp_path: Path
) -> None:
    (tmp_path / "neighbour.py").write_text("value = None\n")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    server = make_server(env={"OET_TEST_SERVER_ENV": "the server's"})
    with server.client() as api:
        spare = wait_for_spares(server, 1).pop()
        first = create_id(api, script(LITTERS), scratch=str(scratch))
        assert runner_pids(server) == {spare}, "the first procedure should run in the spare"
        start(api, first)
        wait_for_state(api, first, "COMPLETED")

        next_spare = wait_for_spares(server, 1).pop()
        report = tmp_path / "found.json"
        create_id(api, script(LOOKS), report=str(report))
        found = written_json(report, "the second script's report")

    assert found["pid"] == next_spare != spare
    assert found["neighbour"] is None
    assert found["module"] is False
    assert found["environ"] is None
    assert found["cwd"] == str(Path(__file__).resolve().parents[2])  # the server's own
    assert found["server_env"] == "the server's"


def test_a_spare_killed_while_idle_is_replaced_and_procedures_still_run(
    server: Server, script: Callable[[str], str]
) -> None:
    spare = wait_for_spares(server, 1).pop()
    os.kill(spare, signal.SIGKILL)
    wait_for(lambda: not alive(spare), 10, "the killed spare to go")
    replacement = wait_for_spares(server, 1).pop()
    assert replacement != spare
    with server.client() as api:
        run_until(api, script(QUICK), "COMPLETED")


def test_a_procedure_created_just_after_its_spare_died_still_runs(
    server: Server, script: Callable[[str], str]
) -> None:
    spare = wait_for_spares(server, 1).pop()
    os.kill(spare, signal.SIGKILL)
    with server.client() as api:
        run_until(api, script(QUICK), "COMPLETED")


def test_a_procedure_whose_spare_died_before_reading_its_load_gets_a_new_runner(
    server: Server, script: Callable[[str], str]
) -> None:
    spare = wait_for_spares(server, 1).pop()
    os.kill(spare, signal.SIGSTOP)  # taken, it cannot read its load before it is killed
    try:
        before = unread_input(spare)
        with ThreadPoolExecutor(1) as pool, server.client() as api:
            creating = pool.submit(create_id, api, script(QUICK))
            wait_for(lambda: unread_input(spare) > before, 20, "the load command to the spare")
            os.kill(spare, signal.SIGKILL)
            pid = creating.result(60)
            start(api, pid)
            wait_for_state(api, pid, "COMPLETED")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(spare, signal.SIGKILL)
    said = re.search(
        rf"runner process {spare} was killed by signal 9 before reading its load;"
        r" runner process (\d+) took it over",
        server.log.read_text(),
    )
    assert said is not None, server.log.read_text()
    assert int(said[1]) != spare


def test_a_runner_that_dies_in_init_is_not_replaced_so_init_never_runs_twice(
    server: Server, script: Callable[[str], str], tmp_path: Path
) -> None:
    calls = tmp_path / "init-calls"
    dies_in_init = f"""
import os, signal

def init():
    with open({str(calls)!r}, "a") as out:
        out.write("init\\n")
    os.kill(os.getpid(), signal.SIGKILL)

def run():
    pass
"""
    with server.client() as api:
        procedure = create(api, script(dies_in_init))

    assert procedure["state"] == "FAILED"
    reason = procedure["history"]["reason"]
    assert reason == "The runner was killed by signal 9 before the procedure ended"
    assert calls.read_text() == "init\n"


def test_server_shutdown_leaves_no_spare_behind(server: Server) -> None:
    spares = wait_for_spares(server, 1)
    server.stop(signal.SIGTERM)
    wait_for(lambda: not any(map(alive, spares)), 10, "the spare to exit with its server")


def test_a_spare_exits_when_its_server_is_killed(server: Server) -> None:
    spares = wait_for_spares(server, 1)
    server.stop(signal.SIGKILL)
    wait_for(lambda: not any(map(alive, spares)), 10, "the orphaned spare to exit")


def test_warm_runners_sets_how_many_spares_wait(
    make_server: Callable[..., Server], script: Callable[[str], str]
) -> None:
    server = make_server(env={"OET_WARM_RUNNERS": "2"})
    before = wait_for_spares(server, 2)
    with server.client() as api:
        run_until(api, script(QUICK), "COMPLETED")
    after = wait_for_spares(server, 2)
    assert len(before & after) == 1, "one spare used, one replacement started"


def test_without_warm_runners_each_runner_starts_on_demand(
    make_server: Callable[..., Server], script: Callable[[str], str]
) -> None:
    server = make_server(env={"OET_WARM_RUNNERS": "0"})
    with server.client() as api:
        pid = create_id(api, script(QUICK))
        assert len(runner_pids(server, spares=True)) == 1, "only the procedure's own runner"
        start(api, pid)
        wait_for_state(api, pid, "COMPLETED")
        wait_for(lambda: not runner_pids(server, spares=True), 10, "the runner to exit")
        assert spare_pids(server) == set()
