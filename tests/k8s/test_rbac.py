"""The runner's and operator's Roles (k8s/rbac/) grant what they need and nothing more."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from kubernetes.client import ApiClient, CoreV1Api, CustomObjectsApi

from oet.kube import GROUP, PLURAL, VERSION, ProcedureResource
from oet.kube.client import client_configuration
from oet.kube.events import script_event
from tests.k8s.oet_operator import create_procedure, install
from tests.k8s.workloads import Namespace

As = Callable[..., tuple[int, str]]


@pytest.fixture(scope="module")
def installed(namespace: Namespace) -> Namespace:
    install(namespace)
    create_procedure(namespace, 1, "announce.py")
    return namespace


def acting_as(namespace: Namespace, account: str) -> As:
    config = namespace.service_account_kubeconfig(account)

    def run(*args: str, stdin: str | None = None) -> tuple[int, str]:
        done = namespace.cluster.kubectl("-n", namespace.name, *args, kubeconfig=config,
                                         input=stdin, check=False)  # fmt: skip
        return done.returncode, (done.stdout + done.stderr).lower()

    return run


JOB = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "sneaky"},
       "spec": {"template": {"spec": {"restartPolicy": "Never",
                                      "containers": [{"name": "c", "image": "x"}]}}}}  # fmt: skip


def test_runner_reads_its_procedure_and_writes_only_status_and_events(installed: Namespace) -> None:
    # The runner's own calls, with the runner's identity.
    config = client_configuration(str(installed.service_account_kubeconfig("oet-runner")))
    objects = CustomObjectsApi(ApiClient(config))
    ns = installed.name

    procedure: ProcedureResource = objects.get_namespaced_custom_object(  # type: ignore[assignment]
        GROUP, VERSION, ns, PLURAL, "procedure-1"
    )
    objects.patch_namespaced_custom_object_status(
        GROUP, VERSION, ns, PLURAL, "procedure-1", {"status": {"state": "INITIALISING"}}
    )
    body, _ = script_event(procedure, "user.script.announce", {"msg": "hi"}, time.time(), 1, "p")
    CoreV1Api(ApiClient(config)).create_namespaced_event(ns, body)  # type: ignore[arg-type]

    assert installed.get("procedure", "procedure-1")["status"]["state"] == "INITIALISING"
    runner = acting_as(installed, "oet-runner")
    assert runner("auth", "can-i", "watch", "procedures")[1].strip() == "yes"
    assert runner("get", "events", "-l", "oet.skao.int/procedure=procedure-1")[0] != 0


def test_runner_is_refused_jobs_secrets_and_spec_changes(installed: Namespace) -> None:
    runner = acting_as(installed, "oet-runner")

    code, said = runner("create", "-f", "-", stdin=json.dumps(JOB))
    assert code != 0
    assert "forbidden" in said
    code, said = runner("get", "secrets")
    assert code != 0
    assert "forbidden" in said
    code, said = runner("patch", "procedure", "procedure-1", "--type=merge",
                        "-p", '{"spec": {"desiredState": "RUNNING"}}')  # fmt: skip
    assert code != 0
    assert "forbidden" in said
    code, said = runner("delete", "procedure", "procedure-1")
    assert code != 0
    assert "forbidden" in said
    assert installed.kubectl("get", "job", "sneaky", check=False).returncode != 0


def test_operator_is_refused_secrets_and_anything_cluster_wide(installed: Namespace) -> None:
    operator = acting_as(installed, "oet-operator")

    assert operator("auth", "can-i", "create", "jobs")[1].strip() == "yes"
    assert operator("auth", "can-i", "delete", "procedures")[1].strip() == "yes"
    code, said = operator("get", "secrets")
    assert code != 0
    assert "forbidden" in said
    code, said = operator("get", "procedures", "--all-namespaces")
    assert code != 0
    assert "forbidden" in said
    code, said = operator("get", "customresourcedefinitions")
    assert code != 0
    assert "forbidden" in said
