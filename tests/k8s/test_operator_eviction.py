"""A runner Pod evicted through the real Eviction API ends its procedure, saying so.

Eviction (`POST pods/<name>/eviction`, what `kubectl drain` and a cluster autoscaler use)
marks the Pod with a `DisruptionTarget` condition and then deletes it: the kubelet sends
SIGTERM, the runner stops the script as a stop does and reports STOPPED, and the operator
names the eviction as the reason. A node-pressure eviction (the kubelet evicting for lack of
memory or disk) is not tested: the single test node cannot be pushed into pressure without
starving the other tests on this machine; `oet.operator.deaths` covers its Pod shape.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.k8s.oet_operator import (
    FINAL,
    Operator,
    create_procedure,
    install,
    jobs_of,
    runner_pod,
    set_desired,
    wait,
    wait_state,
)
from tests.k8s.workloads import Namespace


@pytest.fixture(scope="module")
def operator(namespace: Namespace) -> Iterator[Operator]:
    """OET installed in the module's namespace, with a running operator."""
    install(namespace)
    running = Operator(namespace).start()
    yield running
    running.stop()


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


def test_evicted_runner_pod_ends_its_procedure_stopped_with_reason_evicted(
    namespace: Namespace, operator: Operator
) -> None:
    ns = namespace
    name = create_procedure(ns, 1, "announce.py")
    wait_state(ns, name, "CREATED")
    set_desired(ns, name, "RUNNING", seconds=600)
    wait_state(ns, name, "RUNNING")
    pod = runner_pod(ns, name)
    assert pod is not None
    pod_name = pod["metadata"]["name"]

    evict(ns, pod_name)
    try:
        done = wait_state(ns, name, FINAL, timeout=90)
        # The operator names the eviction once it has seen the Pod's DisruptionTarget.
        done = ns.wait_for("procedure", name, lambda p: status(p).get("reason") == "Evicted", 60)
    except AssertionError as error:
        raise AssertionError(f"{error}\noperator log:\n{operator.tail()}") from None

    assert status(done)["state"] == "STOPPED"
    assert pod_name in status(done)["message"]
    assert "evicted" in status(done)["message"]
    assert "the script was stopped" in status(done)["message"]
    finished = [c for c in status(done)["conditions"] if c["type"] == "Finished"]
    assert [(c["status"], c["reason"]) for c in finished] == [("True", "Evicted")]
    assert jobs_of(ns, name) == [f"{name}-runner"]
    assert states(ns) == {name: "STOPPED"}
    wait(lambda: runner_pod(ns, name) is None, 90, "the evicted runner Pod to be gone")
    assert jobs_of(ns, name) == [f"{name}-runner"]  # the Job made no second Pod
