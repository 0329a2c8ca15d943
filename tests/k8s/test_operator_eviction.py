"""A runner Pod evicted through the real Eviction API ends its procedure, saying so.

Eviction (`POST pods/<name>/eviction`, what `kubectl drain` and a cluster autoscaler use)
marks the Pod with a `DisruptionTarget` condition and then deletes it: the kubelet sends
SIGTERM. A runner that stops its script in its grace period reports STOPPED and the operator
names the eviction as the reason; one whose script will not stop is killed when the grace
period ends and the operator ends it FAILED, again naming the eviction. A node-pressure
eviction (the kubelet evicting for lack of memory or disk) is not tested: the single test
node cannot be pushed into pressure without starving the other tests on this machine;
`oet.operator.deaths` covers its Pod shape in unit tests.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.k8s.oet_operator import (
    FINAL,
    create_procedure,
    install,
    jobs_of,
    runner_overrides,
    runner_pod,
    set_desired,
    wait,
    wait_state,
)
from tests.k8s.test_operator import OET
from tests.k8s.workloads import Namespace


@pytest.fixture(scope="module")
def oet(namespace: Namespace) -> Iterator[OET]:
    """OET installed in the module's namespace, with a running operator."""
    install(namespace)
    running = OET(namespace)
    yield running
    running.operator.stop()


def running_procedure(ns: Namespace, pid: int, script: str) -> tuple[str, str]:
    """Procedure `pid` running `script` (for 600 s): its name and its runner Pod's."""
    name = create_procedure(ns, pid, script)
    wait_state(ns, name, "CREATED")
    set_desired(ns, name, "RUNNING", seconds=600)
    wait_state(ns, name, "RUNNING")
    pod = runner_pod(ns, name)
    assert pod is not None
    return name, pod["metadata"]["name"]


def ended_with(oet: OET, name: str, reason: str) -> dict[str, Any]:
    """Wait for a final state with `reason`; fail with the operator's log if it never comes."""
    ns = oet.namespace
    try:
        wait_state(ns, name, FINAL, timeout=90)
        return ns.wait_for("procedure", name, lambda p: status(p).get("reason") == reason, 60)
    except AssertionError as error:
        raise AssertionError(f"{error}\noperator log:\n{oet.operator.tail()}") from None


def evict(namespace: Namespace, pod: str) -> None:
    """Evict `pod` through the Eviction API, as `kubectl drain` does."""
    body = {"apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": {"name": pod, "namespace": namespace.name}}  # fmt: skip
    namespace.kubectl("create", "--raw", f"/api/v1/namespaces/{namespace.name}/pods/{pod}/eviction",
                      "-f", "-", input=json.dumps(body))  # fmt: skip


def states(namespace: Namespace) -> dict[str, str]:
    """Every Procedure of the namespace by name, with its state."""
    found = json.loads(namespace.kubectl("get", "procedures", "-o", "json").stdout)["items"]
    return {p["metadata"]["name"]: p.get("status", {}).get("state") for p in found}


def status(resource: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = resource.get("status", {})
    return found


def test_evicted_runner_pod_ends_its_procedure_stopped_with_reason_evicted(oet: OET) -> None:
    ns = oet.namespace
    name, pod = running_procedure(ns, 1, "announce.py")

    evict(ns, pod)
    # The runner stops the script and says RunnerTerminated; the operator names the eviction.
    done = ended_with(oet, name, "Evicted")

    assert status(done)["state"] == "STOPPED"
    assert status(done)["message"] == (
        f"runner Pod {pod} was evicted: Eviction API: evicting; the script was stopped"
    )
    finished = [c for c in status(done)["conditions"] if c["type"] == "Finished"]
    assert [(c["status"], c["reason"]) for c in finished] == [("True", "Evicted")]
    assert jobs_of(ns, name) == [f"{name}-runner"]
    assert states(ns) == {name: "STOPPED"}
    wait(lambda: runner_pod(ns, name) is None, 90, "the evicted runner Pod to be gone")
    assert jobs_of(ns, name) == [f"{name}-runner"]  # the Job made no second Pod


def test_evicted_runner_that_outlives_its_grace_period_ends_failed_evicted(oet: OET) -> None:
    ns = oet.namespace
    short_grace = runner_overrides(ns)
    short_grace["spec"]["terminationGracePeriodSeconds"] = 2
    oet.restart(OET_RUNNER_POD_OVERRIDES=json.dumps(short_grace))
    try:
        name, pod = running_procedure(ns, 2, "stubborn.py")

        evict(ns, pod)  # the script swallows the stop; the kubelet kills it after 2 s
        done = ended_with(oet, name, "Evicted")
    finally:
        oet.restart()

    assert status(done)["state"] == "FAILED"
    assert status(done)["message"] == f"runner Pod {pod} was evicted: Eviction API: evicting"
    assert jobs_of(ns, name) == [f"{name}-runner"]
    assert all(state != "RUNNING" for state in states(ns).values())
