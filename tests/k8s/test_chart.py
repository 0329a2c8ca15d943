"""The chart against the real test cluster's API server: every object it renders is valid,
bad values never reach the cluster, and install, upgrade and uninstall do what docs/deploy.md
says about the release's objects and the Procedures.

These need neither the operator nor the API's Kubernetes backend: they check the objects, not
the Pods' work (tests/k8s/test_chart_install.py does that).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.chart import CHART, CI_VALUES, helm, values_args
from tests.k8s.charts import apply_crd, cluster_helm, cluster_values, release_objects
from tests.k8s.cluster import Cluster
from tests.k8s.workloads import Namespace

pytestmark = pytest.mark.timeout(900)

VALUES_FILES = [None, *CI_VALUES]
IDS = ["defaults", *(p.stem for p in CI_VALUES)]
KINDS = {
    "ConfigMap", "Deployment", "Service", "ServiceAccount", "Role", "RoleBinding",
}  # fmt: skip


@pytest.fixture(scope="module")
def crd(cluster: Cluster) -> None:
    """The Procedure CRD, installed for real: the API server then validates Procedures."""
    apply_crd(cluster)


def procedure(pid: int) -> str:
    """A Procedure as the API would create it (the CRD refuses a malformed one)."""
    return json.dumps({
        "apiVersion": "oet.skao.int/v1alpha1", "kind": "Procedure",
        "metadata": {"name": f"procedure-{pid}"},
        "spec": {"id": pid, "scriptUri": "file:///scripts/hello_world.py",
                 "init": {"args": [], "kwargs": {"subarray_id": 1}},
                 "run": {"args": [], "kwargs": {}}},
    })  # fmt: skip


def test_the_chart_crd_is_the_one_the_api_server_serves(cluster: Cluster, crd: None) -> None:
    dry = cluster.kubectl("apply", "--dry-run=server", "-f", str(CHART / "crds" / "procedure.yaml"))
    assert "procedures.oet.skao.int" in dry.stdout
    # A Procedure is accepted, and the CRD's rules refuse a name that does not match its id.
    good = cluster.kubectl("create", "--dry-run=server", "-n", "default", "-f", "-",
                           input=procedure(7))  # fmt: skip
    assert "procedure-7" in good.stdout
    bad = json.loads(procedure(7))
    bad["metadata"]["name"] = "procedure-8"
    refused = cluster.kubectl("create", "--dry-run=server", "-n", "default", "-f", "-",
                              input=json.dumps(bad), check=False)  # fmt: skip
    assert refused.returncode != 0


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=IDS)
def test_every_rendered_object_passes_the_api_server_s_validation(
    cluster: Cluster, namespace: Namespace, crd: None, values_file: Path | None
) -> None:
    rendered = helm(
        "template", "oet", str(CHART), "--namespace", namespace.name,
        *values_args(values_file),
    ).stdout  # fmt: skip
    done = namespace.kubectl("apply", "--dry-run=server", "-o", "name", "-f", "-", input=rendered)
    kinds = {line.split("/")[0].split(".")[0] for line in done.stdout.split()}
    assert {k.lower() for k in KINDS} <= kinds, done.stdout


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["--set-json", "settings.maxProcedures=-1"],
         "at '/settings/maxProcedures': minimum: got -1, want 1"),
        (["--set-string", "api.port=http"], "at '/api/port': got string, want integer"),
        (["--set", "replicas=2"], "at '': additional properties 'replicas' not allowed"),
    ],
    ids=["negative-retention", "wrong-type", "unknown-top-level-key"],
)  # fmt: skip
def test_helm_install_refuses_values_the_schema_refuses(
    cluster: Cluster, namespace: Namespace, sets: list[str], message: str
) -> None:
    done = cluster_helm(
        cluster, "install", "refused", str(CHART), "--namespace", namespace.name,
        *cluster_values(cluster), *sets, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "values don't meet the specifications of the schema" in done.stderr
    assert message in done.stderr
    listed = cluster_helm(cluster, "list", "--all", "-q", "--namespace", namespace.name)
    assert "refused" not in listed.stdout.split()
    assert release_objects(cluster, namespace.name, "refused") == []


def test_install_upgrade_and_uninstall_keep_the_procedures(
    cluster: Cluster, namespace: Namespace, crd: None
) -> None:
    release = "lifecycle"
    values = cluster_values(cluster)
    notes = cluster_helm(cluster, "install", release, str(CHART), "--namespace", namespace.name,
                         *values).stdout  # fmt: skip
    # NOTES.txt: where the API is, and how to run oet against it on this (host network) cluster.
    assert f"http://oet-rest.{namespace.name}.svc:5000/api/v1.0/procedures" in notes
    port = next(a.split("=", 1)[1] for a in values if a.startswith("api.port="))
    assert f"OET_REST_URI=http://127.0.0.1:{port}/api/v1.0/procedures oet list" in notes
    installed = release_objects(cluster, namespace.name, release)
    assert {o["kind"] for o in installed} == KINDS
    namespace.kubectl("create", "-f", "-", input=procedure(1))
    namespace.kubectl("create", "-f", "-", input=procedure(2))
    uids = {n: namespace.get("procedure", f"procedure-{n}")["metadata"]["uid"] for n in (1, 2)}
    config = namespace.get("configmap", f"{release}-oet-config")["data"]["oet.ini"]
    assert "max_procedures = 10" in config

    cluster_helm(cluster, "upgrade", release, str(CHART), "--namespace", namespace.name,
                 "--reuse-values", "--set", "settings.maxProcedures=20")  # fmt: skip
    config = namespace.get("configmap", f"{release}-oet-config")["data"]["oet.ini"]
    assert "max_procedures = 20" in config
    for n, uid in uids.items():
        assert namespace.get("procedure", f"procedure-{n}")["metadata"]["uid"] == uid

    cluster_helm(cluster, "uninstall", release, "--namespace", namespace.name, "--wait")
    assert release_objects(cluster, namespace.name, release) == []
    # What docs/deploy.md says stays: the CRD and every Procedure.
    cluster.kubectl("get", "crd", "procedures.oet.skao.int")
    for n, uid in uids.items():
        assert namespace.get("procedure", f"procedure-{n}")["metadata"]["uid"] == uid
