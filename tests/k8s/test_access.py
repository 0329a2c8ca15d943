"""RBAC is on: a ServiceAccount gets what its Role grants and is refused the rest.

The OET components will run under ServiceAccounts with minimal Roles; these tests show the
test cluster enforces such Roles, both for a client outside the cluster and for a Pod using
its mounted token (in-cluster config over loopback).
"""

from __future__ import annotations

import pytest

from tests.k8s.workloads import Namespace, container, pod_phase, terminated

POD_READER = {
    "apiVersion": "rbac.authorization.k8s.io/v1",
    "kind": "Role",
    "metadata": {"name": "pod-reader"},
    "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}],
}


@pytest.fixture(scope="module")
def reader(namespace: Namespace) -> Namespace:
    """The namespace, with a ServiceAccount `reader` bound to a Role that only reads Pods."""
    namespace.kubectl("create", "serviceaccount", "reader")
    namespace.apply(POD_READER)
    namespace.kubectl("create", "rolebinding", "reader-reads-pods", "--role=pod-reader",
                      f"--serviceaccount={namespace.name}:reader")  # fmt: skip
    return namespace


def test_service_account_with_a_minimal_role_is_refused_what_it_does_not_grant(
    reader: Namespace,
) -> None:
    config = reader.service_account_kubeconfig("reader")

    def as_reader(*args: str) -> tuple[int, str]:
        done = reader.cluster.kubectl("-n", reader.name, *args, kubeconfig=config, check=False)
        return done.returncode, done.stderr.lower()

    assert as_reader("get", "pods")[0] == 0
    code, error = as_reader("get", "secrets")
    assert code != 0
    assert "forbidden" in error
    code, error = as_reader("create", "configmap", "not-allowed", "--from-literal=a=b")
    assert code != 0
    assert "forbidden" in error
    code, error = as_reader("get", "pods", "-n", "default")
    assert code != 0
    assert "forbidden" in error
    # The refused create changed nothing.
    absent = reader.kubectl("get", "configmap", "not-allowed", check=False)
    assert absent.returncode != 0


IN_CLUSTER_PROBE = """
import json, os, ssl, urllib.error, urllib.request
account = '/var/run/secrets/kubernetes.io/serviceaccount'
host, port = os.environ['KUBERNETES_SERVICE_HOST'], os.environ['KUBERNETES_SERVICE_PORT']
namespace = open(account + '/namespace').read()
context = ssl.create_default_context(cafile=account + '/ca.crt')
token = open(account + '/token').read()
for resource in ('pods', 'secrets'):
    url = f'https://{host}:{port}/api/v1/namespaces/{namespace}/{resource}'
    request = urllib.request.Request(url, headers={'Authorization': 'Bearer ' + token})
    try:
        with urllib.request.urlopen(request, context=context) as response:
            print(resource, response.status)
    except urllib.error.HTTPError as error:
        print(resource, error.code)
"""


def test_pod_reaches_the_api_server_with_its_service_account_and_role(
    reader: Namespace,
) -> None:
    reader.run_pod("in-cluster", container(["python3", "-c", IN_CLUSTER_PROBE]),
                   serviceAccountName="reader")  # fmt: skip

    pod = reader.wait_pod_finished("in-cluster")

    assert pod_phase(pod) == "Succeeded", terminated(pod)
    logs = reader.logs("in-cluster")
    assert "pods 200" in logs
    assert "secrets 403" in logs
