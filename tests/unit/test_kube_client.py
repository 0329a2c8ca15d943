"""Client configuration: a Pod's ServiceAccount in the cluster, kubeconfig outside it."""

from pathlib import Path

import pytest
from kubernetes.client import Configuration

from oet.domain import ClusterUnavailable
from oet.kube.client import client_configuration, current_namespace

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: "https://127.0.0.1:16443", insecure-skip-tls-verify: true}
users:
- name: admin
  user: {token: admin-token}
contexts:
- name: test
  context: {cluster: test, user: admin, namespace: telescope}
- name: other
  context: {cluster: test, user: admin}
current-context: test
"""


@pytest.fixture
def service_account(tmp_path: Path) -> Path:
    """A ServiceAccount mount as the kubelet makes it."""
    mount = tmp_path / "serviceaccount"
    mount.mkdir()
    (mount / "token").write_text("pod-token")
    (mount / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    (mount / "namespace").write_text("oet-prod")
    return mount


@pytest.fixture
def kubeconfig(tmp_path: Path) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    return str(path)


def bearer(configuration: Configuration) -> str:
    """The Authorization header the client will send."""
    return str(configuration.auth_settings()["BearerToken"]["value"])


IN_POD = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "6443"}


def test_in_a_pod_the_service_account_is_used(service_account: Path, kubeconfig: str) -> None:
    environ = {**IN_POD, "KUBECONFIG": kubeconfig}
    configuration = client_configuration(environ=environ, service_account_dir=service_account)
    assert configuration.host == "https://127.0.0.1:6443"
    assert bearer(configuration).lower() == "bearer pod-token"
    assert configuration.ssl_ca_cert == str(service_account / "ca.crt")
    assert current_namespace(environ=environ, service_account_dir=service_account) == "oet-prod"


def test_outside_a_pod_kubeconfig_and_its_context_are_used(kubeconfig: str, tmp_path: Path) -> None:
    environ = {"KUBECONFIG": kubeconfig}
    nowhere = tmp_path / "no-service-account"
    configuration = client_configuration(environ=environ, service_account_dir=nowhere)
    assert configuration.host == "https://127.0.0.1:16443"
    assert bearer(configuration).lower() == "bearer admin-token"
    assert current_namespace(environ=environ, service_account_dir=nowhere) == "telescope"
    assert current_namespace(context="other", environ=environ, service_account_dir=nowhere) == (
        "default"
    )


def test_a_configured_namespace_wins(service_account: Path) -> None:
    assert current_namespace("site", environ=IN_POD, service_account_dir=service_account) == "site"


def test_no_cluster_anywhere_is_one_clear_error(tmp_path: Path) -> None:
    environ = {"KUBECONFIG": str(tmp_path / "missing")}
    with pytest.raises(ClusterUnavailable, match=r"not in a Pod, and kubeconfig .*missing"):
        client_configuration(environ=environ, service_account_dir=tmp_path)
    assert current_namespace(environ=environ, service_account_dir=tmp_path) == "default"


def test_a_service_account_mount_without_the_service_host_is_not_a_pod(
    service_account: Path, kubeconfig: str
) -> None:
    environ = {"KUBECONFIG": kubeconfig}
    configuration = client_configuration(environ=environ, service_account_dir=service_account)
    assert configuration.host == "https://127.0.0.1:16443"
