"""The abort hook against a real Tango device server.

``DeviceTestContext(process=True)`` runs a stand-in for the TMC subarray node
(``ska_mid/tm_subarray_node/1``) in its own process, without a Tango
database; it counts the ``Abort`` commands it receives. The hook is tested on
its own (``send_abort``) and through the whole product: REST server, runner,
Tango. The tests through the REST server run on both backends
(``both_backends``): on Kubernetes the runner is a Pod of the OET image on the
host's network, so the device on 127.0.0.1 is reached from inside it, and the
abort settings a test gives its server reach the operator and its runners
(tests/k8s/stack.py).
"""

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import tango

from oet.runner.abort import send_abort
from tests.commands import OET
from tests.conftest import REPO, Server, free_port, wait_for
from tests.procedures import (
    ANNOUNCES_THEN_SLEEPS,
    IGNORES_STOP,
    create,
    create_id,
    get,
    pid_of,
    start,
    stop,
)
from tests.sse import EventStream
from tests.tango_device import DEVICE, Subarray, run_subarray_device

pytestmark = pytest.mark.tango


@pytest.fixture(scope="module")
def subarray() -> Iterator[Subarray]:
    """A subarray device that answers Abort at once (shared by the module's tests)."""
    yield from run_subarray_device()


@pytest.fixture(scope="module")
def slow_subarray() -> Iterator[Subarray]:
    """A subarray device that takes 3 s to answer Abort."""
    yield from run_subarray_device(abort_delay=3.0)


@pytest.fixture
def nobody_port() -> int:
    """A TCP port on which nothing listens: connections are refused."""
    return free_port()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def nowhere(port: int) -> str:
    return f"tango://127.0.0.1:{port}/ska_mid/tm_subarray_node/{{subarray_id}}#dbase=no"


# -- send_abort on its own ---------------------------------------------------------


def test_the_fqdn_template_reaches_the_device(subarray: Subarray) -> None:
    assert subarray.template.format(subarray_id=1) == subarray.fqdn
    assert tango.DeviceProxy(subarray.fqdn).dev_name() == DEVICE


def test_send_abort_sends_abort_to_the_subarray_device(subarray: Subarray) -> None:
    before = subarray.aborts
    sent, message = send_abort(1, subarray.template, 5.0)
    assert (sent, message) == (True, f"Abort sent to {subarray.fqdn}")
    assert subarray.aborts == before + 1


def test_send_abort_accepts_a_subarray_id_given_as_text(subarray: Subarray) -> None:
    before = subarray.aborts
    sent, _ = send_abort("1", subarray.template, 5.0)
    assert sent
    assert subarray.aborts == before + 1


def test_send_abort_without_a_subarray_id_sends_nothing(subarray: Subarray) -> None:
    before = subarray.aborts
    sent, message = send_abort(None, subarray.template, 5.0)
    assert not sent
    assert "without a subarray_id" in message
    assert subarray.aborts == before


@pytest.mark.parametrize("subarray_id", ["one", "1; rm", [1], 1.5, True])
def test_send_abort_refuses_a_subarray_id_that_is_not_a_whole_number(
    subarray: Subarray, subarray_id: Any
) -> None:
    # 1.5 and True must not be rounded to subarray 1: that would abort a subarray
    # the procedure was never told to use.
    before = subarray.aborts
    sent, message = send_abort(subarray_id, subarray.template, 5.0)
    assert not sent
    assert message.startswith("Abort not sent:")
    assert "not a whole number" in message
    assert subarray.aborts == before


def test_send_abort_to_a_subarray_with_no_device_fails_with_the_reason(
    subarray: Subarray,
) -> None:
    sent, message = send_abort(2, subarray.template, 5.0)
    assert not sent
    assert "ska_mid/tm_subarray_node/2" in message
    assert "failed" in message


def test_send_abort_to_an_unreachable_host_fails_quickly(nobody_port: int) -> None:
    began = time.monotonic()
    sent, message = send_abort(1, nowhere(nobody_port), 2.0)
    elapsed = time.monotonic() - began
    assert not sent
    assert f"127.0.0.1:{nobody_port}" in message
    assert "failed" in message
    assert elapsed < 2.0 + 1.5


def test_send_abort_to_a_host_that_never_answers_gives_up_after_the_timeout(
    silent_port: int,
) -> None:
    # In a child process (the supervisor's helper, ``python -m oet.runner.abort``):
    # the hung Tango call is abandoned there, not left in the test process.
    began = time.monotonic()
    helper = subprocess.run(
        [sys.executable, "-m", "oet.runner.abort", json.dumps([1, nowhere(silent_port), 1.0])],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    elapsed = time.monotonic() - began
    outcome = json.loads(helper.stdout)
    assert outcome["sent"] is False
    assert "no answer within 1 s" in outcome["message"]
    assert elapsed < 1.0 + 5.0
    print(f"\nabort to a silent host gave up after {elapsed:.2f} s (timeout 1 s)")


def test_send_abort_to_a_slow_subarray_gives_up_after_the_timeout(
    slow_subarray: Subarray,
) -> None:
    began = time.monotonic()
    sent, message = send_abort(1, slow_subarray.template, 1.0)
    elapsed = time.monotonic() - began
    assert not sent
    assert slow_subarray.fqdn in message
    assert elapsed < 1.0 + 1.5
    wait_for(lambda: slow_subarray.aborts >= 1, 10, "the slow subarray to finish its Abort")


# -- through the REST server and the runner -------------------------------------------

ServerFor = Callable[..., tuple[Server, httpx.Client]]


def running_procedure(server: Server, api: httpx.Client, uri: str, **init_kwargs: Any) -> int:
    """Create and start a procedure; return its ID once its script is running."""
    with EventStream(f"{server.api}/stream") as stream:
        pid = create_id(api, uri, **init_kwargs)
        start(api, pid)
        stream.until_topic("test.running", pid, timeout=60)
    return pid


def stop_with_abort(api: httpx.Client, pid: int) -> tuple[str, dict[str, Any]]:
    """Stop with abort; the abort_message and the procedure afterwards."""
    message = stop(api, pid, abort=True)
    procedure = get(api, pid)
    assert procedure["state"] == "STOPPED", procedure
    return message, procedure


def aborted_while_running(subarray: Subarray, server_for: ServerFor, uri: str) -> dict[str, Any]:
    """Run ``uri`` for subarray 1 of ``subarray``, stop it with abort; the stopped procedure.

    The stop must say it aborted the subarray, which must have got exactly one Abort.
    """
    server, api = server_for(subarray.template)
    pid = running_procedure(server, api, uri, subarray_id=1)
    before = subarray.aborts
    message, procedure = stop_with_abort(api, pid)
    assert message == f"Successfully stopped script with ID {pid} and aborted subarray activity"
    assert subarray.aborts == before + 1
    return procedure


@pytest.fixture
def server_for(make_server: Callable[..., Server]) -> Iterator[ServerFor]:
    """A server whose abort hook uses ``template`` (abort timeout 2 s, stop grace 1 s)."""
    clients: list[httpx.Client] = []

    def make(template: str, **env: str) -> tuple[Server, httpx.Client]:
        server = make_server(
            env={
                "OET_ABORT_FQDN_TEMPLATE": template,
                "OET_ABORT_TIMEOUT": "2",
                "OET_STOP_GRACE": "1",
                **env,
            }
        )
        clients.append(server.client())
        return server, clients[-1]

    yield make
    for client in clients:
        client.close()


@pytest.mark.e2e
@pytest.mark.both_backends
def test_stop_with_abort_aborts_the_subarray_and_says_so(
    subarray: Subarray, server_for: ServerFor, script: Callable[[str], str]
) -> None:
    procedure = aborted_while_running(subarray, server_for, script(ANNOUNCES_THEN_SLEEPS))
    assert f"Abort sent to {subarray.fqdn}" in procedure["history"]["reason"]


@pytest.mark.e2e
@pytest.mark.both_backends
def test_stop_with_abort_of_a_script_that_ignores_the_stop_still_aborts_the_subarray(
    subarray: Subarray, server_for: ServerFor, script: Callable[[str], str]
) -> None:
    procedure = aborted_while_running(subarray, server_for, script(IGNORES_STOP))
    reason = procedure["history"]["reason"]
    assert "runner killed" in reason
    assert f"Abort sent to {subarray.fqdn}" in reason


@pytest.mark.e2e
@pytest.mark.both_backends
def test_stop_without_abort_leaves_the_subarray_alone(
    subarray: Subarray, server_for: ServerFor, script: Callable[[str], str]
) -> None:
    server, api = server_for(subarray.template)
    pid = running_procedure(server, api, script(ANNOUNCES_THEN_SLEEPS), subarray_id=1)
    before = subarray.aborts
    response = api.put(f"/procedures/{pid}", json={"state": "STOPPED", "abort": False})
    assert response.json() == {"abort_message": f"Successfully stopped script with ID {pid}"}
    assert subarray.aborts == before


@pytest.mark.e2e
@pytest.mark.both_backends
@pytest.mark.parametrize("target", ["refusing", "silent"])
def test_stop_with_abort_when_the_subarray_cannot_be_reached_still_stops_the_script(
    server_for: ServerFor,
    script: Callable[[str], str],
    nobody_port: int,
    silent_port: int,
    target: str,
) -> None:
    port = nobody_port if target == "refusing" else silent_port
    server, api = server_for(nowhere(port))
    pid = running_procedure(server, api, script(ANNOUNCES_THEN_SLEEPS), subarray_id=1)
    began = time.monotonic()
    message, procedure = stop_with_abort(api, pid)
    elapsed = time.monotonic() - began
    prefix = f"Stopped script with ID {pid}, but subarray activity was not aborted: "
    assert message.startswith(prefix)
    assert f"127.0.0.1:{port}/ska_mid/tm_subarray_node/1" in message
    assert "failed" in message
    assert message[len(prefix) :] in procedure["history"]["reason"]
    assert elapsed < 2 + 6  # abort timeout plus margin
    print(f"\nstop with abort of a {target} subarray answered in {elapsed:.2f} s")


@pytest.mark.e2e
@pytest.mark.both_backends
def test_stop_with_abort_of_a_procedure_without_subarray_id_says_why_no_abort_was_sent(
    subarray: Subarray, server_for: ServerFor, script: Callable[[str], str]
) -> None:
    server, api = server_for(subarray.template)
    pid = running_procedure(server, api, script(ANNOUNCES_THEN_SLEEPS))
    before = subarray.aborts
    message, procedure = stop_with_abort(api, pid)
    assert message == (
        f"Stopped script with ID {pid}, but subarray activity was not aborted:"
        " Abort not sent: the procedure was created without a subarray_id"
    )
    assert "without a subarray_id" in procedure["history"]["reason"]
    assert subarray.aborts == before


# -- a stop is only for a running script: nothing else is ever aborted ------------------

RAISES = """
def init(subarray_id=None):
    pass


def run():
    raise RuntimeError("the script failed")
"""

QUICK_FOR_SUBARRAY = """
def init(subarray_id=None):
    pass


def run():
    pass
"""


def procedure_in(
    state: str, server: Server, api: httpx.Client, script: Callable[[str], str]
) -> int:
    """A procedure for subarray 1 that is ``state`` (no Abort sent on the way)."""
    if state == "CREATED":
        return create_id(api, script(QUICK_FOR_SUBARRAY), subarray_id=1)
    if state == "STOPPED":
        pid = running_procedure(server, api, script(ANNOUNCES_THEN_SLEEPS), subarray_id=1)
        stop(api, pid, abort=False)
        return pid
    source = QUICK_FOR_SUBARRAY if state == "COMPLETED" else RAISES
    pid = create_id(api, script(source), subarray_id=1)
    start(api, pid)
    wait_for(lambda: get(api, pid)["state"] == state, 15, f"procedure {pid} to be {state}")
    return pid


@pytest.mark.e2e
@pytest.mark.both_backends
@pytest.mark.parametrize("state", ["CREATED", "COMPLETED", "FAILED", "STOPPED"])
def test_stop_with_abort_of_a_procedure_whose_script_is_not_running_is_409_and_aborts_nothing(
    subarray: Subarray, server_for: ServerFor, script: Callable[[str], str], state: str
) -> None:
    server, api = server_for(subarray.template)
    pid = procedure_in(state, server, api, script)
    before = subarray.aborts

    response = api.put(f"/procedures/{pid}", json={"state": "STOPPED", "abort": True})

    assert response.status_code == 409, response.text
    assert response.json()["type"] == "StateConflict"
    assert f"Procedure {pid} is {state}" in response.json()["Message"]
    assert "nothing was aborted" in response.json()["Message"]
    assert get(api, pid)["state"] == state
    assert subarray.aborts == before


@pytest.mark.e2e
@pytest.mark.both_backends
def test_oet_stop_of_a_created_procedure_explains_itself_and_aborts_nothing(
    subarray: Subarray, server_for: ServerFor, script: Callable[[str], str]
) -> None:
    server, api = server_for(subarray.template)
    pid = procedure_in("CREATED", server, api, script)
    before = subarray.aborts

    done = subprocess.run(
        [*OET, "stop", f"--pid={pid}", "--run_abort=True"],
        env={**os.environ, "OET_REST_URI": server.procedures},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 1
    assert done.stderr.startswith(f"Error: 409 Conflict: Procedure {pid} is CREATED:")
    assert len(done.stderr.splitlines()) == 1
    assert subarray.aborts == before
    assert get(api, pid)["state"] == "CREATED"


HANGS_IN_INIT = """
import time
from oet import scripting


def init(subarray_id=None):
    scripting.publish("test.in_init")
    time.sleep(3600)


def run():
    pass
"""


@pytest.mark.e2e
@pytest.mark.both_backends
def test_stop_with_abort_of_a_hung_init_interrupts_it_and_aborts_the_subarray(
    subarray: Subarray, server_for: ServerFor, script: Callable[[str], str]
) -> None:
    # init() is script code: it may already be commanding the subarray (docs/rest-api.md)
    server, api = server_for(subarray.template, OET_CREATE_WAIT="0.5")
    with EventStream(f"{server.api}/stream") as stream:
        procedure = create(api, script(HANGS_IN_INIT), init={"kwargs": {"subarray_id": 1}})
        assert procedure["state"] == "INITIALISING"
        pid = pid_of(procedure)
        stream.until_topic("test.in_init", pid, timeout=60)
    before = subarray.aborts

    message, stopped = stop_with_abort(api, pid)

    assert message == f"Successfully stopped script with ID {pid} and aborted subarray activity"
    assert "CREATED" not in stopped["history"]["process_states"]
    assert subarray.aborts == before + 1
