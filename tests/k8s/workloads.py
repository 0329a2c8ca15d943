"""Run Pods and Jobs on the test cluster and wait for what happens to them.

Why this exists: tests should read as "run this, expect that", not as Kubernetes plumbing. The
test-cluster specifics every Pod needs (host network, the not-ready toleration, never pull,
the API server on loopback) come from one file, `k8s/testenv/cluster-values.yaml`, and are
applied here, so the manifests tests write stay the ones a real cluster would run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from tests.k8s.cluster import REPO, Cluster

VALUES = REPO / "k8s" / "testenv" / "cluster-values.yaml"
Manifest = dict[str, Any]


@cache
def cluster_values() -> dict[str, Any]:
    """The test-cluster Pod settings, from cluster-values.yaml."""
    values: dict[str, Any] = yaml.safe_load(VALUES.read_text())
    return values


def for_test_cluster(spec: Manifest, cluster: Cluster) -> Manifest:
    """Add the test-cluster settings to a Pod spec (in place) and return it."""
    values = cluster_values()
    spec["hostNetwork"] = values["hostNetwork"]
    spec.setdefault("tolerations", []).extend(values["tolerations"])
    env = {**values["env"], "KUBERNETES_SERVICE_PORT": str(cluster.ports["apiserver"])}
    for container in spec["containers"]:
        container.setdefault("image", cluster.image)
        container["imagePullPolicy"] = values["imagePullPolicy"]
        container.setdefault("env", []).extend({"name": k, "value": v} for k, v in env.items())
    return spec


def container(command: list[str], **fields: Any) -> Manifest:
    """A container named `main` running `command` (image: the OET image unless given)."""
    return {"name": "main", "command": command, **fields}


class Namespace:
    """One test module's namespace on the cluster, and helpers to run workloads in it."""

    def __init__(self, cluster: Cluster, name: str) -> None:
        self.cluster = cluster
        self.name = name

    def kubectl(self, *args: str, **kwargs: Any) -> Any:
        """kubectl in this namespace, as the admin."""
        return self.cluster.kubectl("-n", self.name, *args, **kwargs)

    def apply(self, manifest: Manifest) -> None:
        """Create or update an object from its manifest."""
        self.kubectl("apply", "-f", "-", input=json.dumps(manifest))

    def get(self, kind: str, name: str) -> Manifest:
        """The object as the API server has it now."""
        found: Manifest = json.loads(self.kubectl("get", kind, name, "-o", "json").stdout)
        return found

    def run_pod(self, name: str, *containers: Manifest, **spec: Any) -> None:
        """Create a Pod (restartPolicy Never unless given) with test-cluster settings."""
        pod_spec = {"restartPolicy": "Never", **spec, "containers": list(containers)}
        self.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                    "spec": for_test_cluster(pod_spec, self.cluster)})  # fmt: skip

    def run_job(self, name: str, *containers: Manifest, backoff_limit: int = 0) -> None:
        """Create a Job whose Pods run `containers` once, with test-cluster settings."""
        pod_spec = {"restartPolicy": "Never", "containers": list(containers)}
        self.apply({
            "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"backoffLimit": backoff_limit,
                     "template": {"spec": for_test_cluster(pod_spec, self.cluster)}},
        })  # fmt: skip

    def wait_for(
        self, kind: str, name: str, condition: Callable[[Manifest], bool], timeout: float = 90
    ) -> Manifest:
        """Poll the object until `condition(object)` holds; return it, or fail with its state."""
        deadline = time.monotonic() + timeout
        last: Manifest = {}
        while time.monotonic() < deadline:
            done = self.kubectl("get", kind, name, "-o", "json", check=False)
            if done.returncode == 0:
                last = json.loads(done.stdout)
                if condition(last):
                    return last
            time.sleep(0.3)
        raise AssertionError(
            f"{kind}/{name} did not reach the expected state in {timeout:.0f} s; last seen "
            f"status: {json.dumps(last.get('status', {}), indent=1)[:3000]}"
        )

    def wait_pod_finished(self, name: str, timeout: float = 90) -> Manifest:
        """Wait until the Pod has Succeeded or Failed; return it."""
        return self.wait_for("pod", name, lambda p: pod_phase(p) in {"Succeeded", "Failed"},
                             timeout)  # fmt: skip

    def wait_pod_running(self, name: str, timeout: float = 90) -> Manifest:
        """Wait until the Pod's container is running; return the Pod."""
        return self.wait_for("pod", name, lambda p: pod_phase(p) == "Running", timeout)

    def logs(self, name: str) -> str:
        """The Pod's (or `job/<name>`'s) logs, read back through the API server."""
        return str(self.kubectl("logs", name).stdout)

    def service_account_kubeconfig(self, account: str) -> Path:
        """A kubeconfig for a ServiceAccount of this namespace."""
        return self.cluster.service_account_kubeconfig(self.name, account)


def pod_phase(pod: Manifest) -> str:
    """The Pod's phase (Pending, Running, Succeeded, Failed)."""
    return str(pod.get("status", {}).get("phase", ""))


def terminated(pod: Manifest) -> Manifest:
    """The `main` container's terminated state (reason, exitCode), or {}."""
    for status in pod.get("status", {}).get("containerStatuses", []):
        if status["name"] == "main":
            state: Manifest = status.get("state", {}).get("terminated", {})
            return state
    return {}


def job_condition(job: Manifest, kind: str) -> Manifest | None:
    """The Job's condition of this type (e.g. Failed, Complete) if it is true."""
    for condition in job.get("status", {}).get("conditions", []):
        if condition["type"] == kind and condition["status"] == "True":
            return dict(condition)
    return None
