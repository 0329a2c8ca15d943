"""The chart installed on the test cluster serves the user docs' session: the acceptance test
of the Helm chart (issue 11) that needs the operator and the API's Kubernetes backend.

A missing component (the operator or the API's Kubernetes backend) fails the test under CI
(CI=true) and skips it, with the reason, on a developer's machine.

The test cluster has no kube-proxy, so the session goes through the API Pod's port on the
node (`api.port`, host network, from charts/oet/ci/test-cluster-values.yaml), not through
the `oet-rest` Service; from a Pod on a real cluster the CLI's default address reaches it.
"""

from __future__ import annotations

import os
import re
import subprocess

import httpx
import pytest

from tests.chart import CHART, missing_components
from tests.commands import OET, Follower
from tests.conftest import wait_for
from tests.k8s.charts import apply_crd, cluster_helm, cluster_values, release_objects
from tests.k8s.cluster import Cluster
from tests.k8s.workloads import Namespace
from tests.prometheus import parse_samples

pytestmark = pytest.mark.timeout(900)

RELEASE = "oet"
# The docs' scripts, from a ConfigMap (scripts.source=configMap): they observe until stopped.
SCRIPT = """\
import time

def init(*args, **kwargs):
    pass

def run(*args, **kwargs):
    while True:
        time.sleep(0.05)
"""


@pytest.fixture(scope="module", autouse=True)
def components() -> None:
    """Fail under CI, skip elsewhere, when the operator or the backend is missing."""
    if missing := missing_components():
        reason = "the chart install test needs " + " and ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)


def arg_of(args: list[str], key: str) -> str:
    """The value a `--set key=value` in helm arguments gives."""
    return next(a.split("=", 1)[1] for a in args if a.startswith(f"{key}="))


def test_the_chart_serves_the_docs_session_and_survives_upgrade_and_uninstall(
    cluster: Cluster, namespace: Namespace
) -> None:
    apply_crd(cluster)
    namespace.apply({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "docs-scripts"},
        "data": {"test.py": SCRIPT, "test2.py": SCRIPT},
    })  # fmt: skip
    values = [*cluster_values(cluster), "--set", "scripts.source=configMap",
              "--set", "scripts.configMapName=docs-scripts"]  # fmt: skip
    cluster_helm(cluster, "install", RELEASE, str(CHART), "--namespace", namespace.name,
                 *values, "--wait", "--timeout", "5m")  # fmt: skip
    for component in ("api", "operator"):
        namespace.kubectl("wait", "--for=condition=Available", "--timeout=300s",
                          f"deployment/{RELEASE}-{component}", timeout=320)  # fmt: skip
    base = f"http://127.0.0.1:{arg_of(values, 'api.port')}"
    procedures = f"{base}/api/v1.0/procedures"
    assert httpx.get(f"{base}/healthz", timeout=10).json() == {"status": "ok"}
    env = {**os.environ, "OET_REST_URI": procedures}

    def oet(*args: str) -> str:
        done = subprocess.run([*OET, *args], env=env, capture_output=True, text=True,
                              timeout=120)  # fmt: skip
        assert done.returncode == 0, f"oet {' '.join(args)} failed: {done.stderr}"
        return done.stdout

    def states() -> list[str]:
        return [line.split()[-1] for line in oet("list").splitlines()[1:]]

    # The docs' session: create two, list, start the second, follow it, stop it.
    assert oet("create", "file:///scripts/test.py", "hello", "--verbose=true").split()[-1] == (
        "CREATED"
    )
    assert oet("create", "file:///scripts/test2.py", "goodbye").split()[-1] == "CREATED"
    assert states() == ["CREATED", "CREATED"]
    assert len(oet("list", "--pid=2").splitlines()) == 2
    with Follower([*OET, "listen", "--raw"], {"OET_REST_URI": procedures}) as listener:
        listener.wait_for_text("event: request.procedure.list", poke=lambda: oet("list"))
        assert oet("start", "--pid=2", "bob", "--simulate=false").split()[-1] == "RUNNING"
        described = oet("describe", "--pid=2")
        assert "['bob']" in described
        assert "{'simulate': 'false'}" in described
        assert oet("stop").startswith("Stopped script with ID 2")
        wait_for(lambda: states() == ["CREATED", "STOPPED"], 120, "procedure 2 STOPPED")
        output = listener.wait_for_text("event: procedure.lifecycle.stopped")
        assert re.search(r"event: procedure.lifecycle.started", output)
        assert listener.interrupt() == 0
    before = httpx.get(procedures, timeout=30).json()["procedures"]

    # The operator's /metrics (on the node: host network) counted both runner Jobs.
    operator_metrics = f"http://127.0.0.1:{arg_of(values, 'operator.metricsPort')}/metrics"
    wait_for(lambda: _operator_counts(operator_metrics) == (2.0, 1.0, 1.0), 120,
             "the operator's /metrics: 2 Jobs created, 1 CREATED and 1 STOPPED")  # fmt: skip

    # An upgrade with changed values rolls the Pods and keeps every procedure.
    cluster_helm(cluster, "upgrade", RELEASE, str(CHART), "--namespace", namespace.name,
                 "--reuse-values", "--set", "settings.maxProcedures=20",
                 "--wait", "--timeout", "5m")  # fmt: skip
    wait_for(lambda: _listed(procedures) == before, 300, "the procedures after the upgrade")

    # Uninstall removes the release's objects and leaves the CRD and the Procedures.
    cluster_helm(cluster, "uninstall", RELEASE, "--namespace", namespace.name, "--wait")
    assert release_objects(cluster, namespace.name, RELEASE) == []
    names = namespace.kubectl("get", "procedures", "-o", "name").stdout.split()
    assert sorted(names) == ["procedure.oet.skao.int/procedure-1",
                             "procedure.oet.skao.int/procedure-2"]  # fmt: skip


def _operator_counts(url: str) -> tuple[float, float, float] | None:
    """Runner Jobs created, CREATED and STOPPED procedures, from the operator's /metrics."""
    try:
        answer = httpx.get(url, timeout=10)
    except httpx.TransportError:
        return None
    seen = parse_samples(answer.text)
    return (
        seen[("oet_operator_runner_jobs_created_total", ())],
        seen[("oet_operator_procedures", (("state", "CREATED"),))],
        seen[("oet_operator_procedures", (("state", "STOPPED"),))],
    )


def _listed(procedures: str) -> object:
    try:
        answer = httpx.get(procedures, timeout=10)
    except httpx.TransportError:
        return None
    return answer.json()["procedures"] if answer.status_code == 200 else None
