"""Install the Helm chart on the test cluster: the arguments every install there needs.

Why this exists: the chart's install tests all need the same test-cluster values
(`charts/oet/ci/test-cluster-values.yaml`), the node's image, this run's API server port and
ports free on the node (the Pods share its network), and helm pointed at the cluster.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

from tests.chart import CHART, helm
from tests.conftest import free_port
from tests.k8s.cluster import REPO, Cluster

TEST_CLUSTER_VALUES = CHART / "ci" / "test-cluster-values.yaml"
CRD = REPO / "crds" / "procedure.yaml"
RELEASE_KINDS = [
    "deployments", "services", "configmaps", "serviceaccounts", "roles", "rolebindings",
    "ingresses", "poddisruptionbudgets",
]  # fmt: skip


def apply_crd(cluster: Cluster) -> None:
    """Install (or update) the Procedure CRD for real and wait until it is served."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s",
        "crd/procedures.oet.skao.int",
    )  # fmt: skip


def cluster_values(cluster: Cluster) -> list[str]:
    """helm arguments for this cluster: its values file, the node's image, its ports."""
    repository, _, tag = cluster.image.rpartition(":")
    sets = {
        "image.repository": repository,
        "image.tag": tag,
        "pods.extraEnv.KUBERNETES_SERVICE_PORT": str(cluster.ports["apiserver"]),
        "api.port": str(free_port()),
        "operator.port": str(free_port()),
        "operator.metricsPort": str(free_port()),
    }
    args = ["-f", str(TEST_CLUSTER_VALUES)]
    for key, value in sets.items():
        flag = "--set" if key.endswith((".port", ".metricsPort")) else "--set-string"
        args += [flag, f"{key}={value}"]
    return args


def cluster_helm(
    cluster: Cluster, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """helm against this cluster, as its admin."""
    return helm(*args, check=check, env={"KUBECONFIG": str(cluster.kubeconfig)})


def release_objects(cluster: Cluster, namespace: str, release: str) -> list[dict[str, Any]]:
    """Every namespaced object of the kinds the chart makes that carries the release's label."""
    kinds = ",".join(RELEASE_KINDS)
    found = cluster.kubectl(
        "-n", namespace, "get", kinds, "-l", f"app.kubernetes.io/instance={release}", "-o", "json"
    )
    items: list[dict[str, Any]] = json.loads(found.stdout)["items"]
    return items
