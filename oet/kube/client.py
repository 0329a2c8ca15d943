"""Where the Kubernetes API server is: in-cluster when in a Pod, else kubeconfig.

The API backend, the operator and the runner all connect the same way, so a
developer's ``kubectl`` context works for each of them outside the cluster
and the Pod's ServiceAccount inside it.
"""

import os
from collections.abc import Mapping
from pathlib import Path

from kubernetes.client import ApiClient, Configuration
from kubernetes.config import ConfigException, list_kube_config_contexts, load_kube_config
from kubernetes.config.incluster_config import InClusterConfigLoader

from oet.domain import ClusterUnavailable

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
"""Where the kubelet mounts a Pod's ServiceAccount token, CA and namespace."""


def _in_cluster(environ: Mapping[str, str], service_account_dir: Path) -> bool:
    return (
        bool(environ.get("KUBERNETES_SERVICE_HOST")) and (service_account_dir / "token").is_file()
    )


def _kubeconfig_path(kubeconfig: str | None, environ: Mapping[str, str]) -> str:
    return kubeconfig or environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")


def client_configuration(
    kubeconfig: str | None = None,
    context: str | None = None,
    environ: Mapping[str, str] = os.environ,
    service_account_dir: Path = SERVICE_ACCOUNT_DIR,
) -> Configuration:
    """A client configuration for the API server.

    In a Pod (``KUBERNETES_SERVICE_HOST`` set and a ServiceAccount token
    mounted) the Pod's own identity is used, its token re-read as the kubelet
    rotates it. Elsewhere ``kubeconfig`` (default ``$KUBECONFIG``, then
    ``~/.kube/config``) and its ``context`` (default: the current one).
    Raises ClusterUnavailable, naming what was tried, when neither works.
    """
    configuration = Configuration()
    if _in_cluster(environ, service_account_dir):
        loader = InClusterConfigLoader(
            token_filename=str(service_account_dir / "token"),
            cert_filename=str(service_account_dir / "ca.crt"),
            environ=environ,
        )
        try:
            loader.load_and_set(configuration)
        except ConfigException as exc:
            raise ClusterUnavailable(f"In-cluster Kubernetes configuration failed: {exc}") from exc
        return configuration
    path = _kubeconfig_path(kubeconfig, environ)
    try:
        load_kube_config(
            config_file=path,
            context=context,
            client_configuration=configuration,
            persist_config=False,
        )
    except (ConfigException, OSError) as exc:
        raise ClusterUnavailable(
            f"No Kubernetes API server: not in a Pod, and kubeconfig {path} gave: {exc}"
        ) from exc
    return configuration


def api_client(configuration: Configuration | None = None) -> ApiClient:
    """An API client for ``configuration`` (default: :func:`client_configuration`)."""
    return ApiClient(configuration or client_configuration())


def current_namespace(
    configured: str = "",
    kubeconfig: str | None = None,
    context: str | None = None,
    environ: Mapping[str, str] = os.environ,
    service_account_dir: Path = SERVICE_ACCOUNT_DIR,
) -> str:
    """The namespace OET works in.

    ``configured`` if set; else the Pod's own namespace; else the kubeconfig
    context's namespace; else ``default``, as kubectl decides.
    """
    if configured:
        return configured
    own = service_account_dir / "namespace"
    if _in_cluster(environ, service_account_dir) and own.is_file():
        return own.read_text().strip() or "default"
    try:
        contexts, current = list_kube_config_contexts(_kubeconfig_path(kubeconfig, environ))
    except (ConfigException, OSError):
        return "default"
    chosen = next((c for c in contexts if c.get("name") == context), None) if context else current
    namespace = ((chosen or {}).get("context") or {}).get("namespace")
    return str(namespace) if namespace else "default"
