"""A stop with abort on the test cluster: the Abort reaches a real Tango device.

The device runs on the host (pytango DeviceTestContext, no database); runner Pods use the
host's network, so the FQDN template `tango://127.0.0.1:<port>/...#dbase=no` reaches it from
inside the Pod as it reaches it from the operator on the host.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from tests.k8s.oet_operator import (
    create_procedure,
    install,
    procedure,
    runner_pids,
    runner_pod,
    set_desired,
    wait,
    wait_state,
)
from tests.k8s.test_operator import OET, ended, status
from tests.k8s.workloads import Namespace
from tests.tango_device import Subarray, run_subarray_device

pytestmark = pytest.mark.tango


@pytest.fixture(scope="module")
def subarray() -> Iterator[Subarray]:
    """The subarray device on the host."""
    yield from run_subarray_device()


@pytest.fixture(scope="module")
def oet(namespace: Namespace, subarray: Subarray) -> Iterator[OET]:
    """OET whose runners and operator abort the host's subarray device."""
    install(namespace)
    running = OET(namespace, OET_ABORT_FQDN_TEMPLATE=subarray.template)
    yield running
    running.operator.stop()


def test_stop_with_abort_stops_the_script_then_aborts_the_subarray(
    oet: OET, subarray: Subarray
) -> None:
    ns = oet.namespace
    before = subarray.aborts
    name = create_procedure(ns, 1, "announce.py", subarray_id=1)
    wait_state(ns, name, "CREATED")
    set_desired(ns, name, "RUNNING", seconds=600)
    wait_state(ns, name, "RUNNING")

    set_desired(ns, name, "STOPPED", abort=True)
    done = ended(oet, name, timeout=90)

    assert status(done)["state"] == "STOPPED"
    assert status(done)["reason"] == "Aborted"
    assert status(done)["abort"]["sent"] is True
    assert "ska_mid/tm_subarray_node/1" in status(done)["abort"]["message"]
    assert subarray.aborts == before + 1


def test_stop_with_abort_after_the_runner_died_is_aborted_by_the_operator(
    oet: OET, subarray: Subarray
) -> None:
    ns = oet.namespace
    before = subarray.aborts
    name = create_procedure(ns, 2, "announce.py", subarray_id=1)
    wait_state(ns, name, "CREATED")
    set_desired(ns, name, "RUNNING", seconds=600)
    wait_state(ns, name, "RUNNING")
    pids = wait(lambda: runner_pids(ns, name), 60, "the runner process")
    oet.operator.stop(signal.SIGKILL)
    os.kill(pids[0], signal.SIGKILL)
    wait(lambda: (runner_pod(ns, name) or {}).get("status", {}).get("phase") == "Failed", 60,
         "the runner Pod to fail")  # fmt: skip
    set_desired(ns, name, "STOPPED", abort=True)
    assert status(procedure(ns, name))["state"] == "RUNNING"

    oet.restart()
    done = wait(lambda: "abort" in status(procedure(ns, name)) and procedure(ns, name), 90,
                "the operator's abort outcome", oet.operator.tail)  # fmt: skip

    assert status(done)["state"] == "STOPPED"
    assert status(done)["reason"] == "Killed"
    assert status(done)["abort"]["sent"] is True
    assert status(done)["abort"]["message"].startswith("sent by the operator")
    assert subarray.aborts == before + 1
